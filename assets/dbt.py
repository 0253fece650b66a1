"""dbt models as assets; dbt tests become asset checks."""

import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets
from pydantic import Field

from assets.dbt_project import dbt_project
from assets.resources import SplitSettings, StorageResource, WarehouseResource
from recs_platform.data.contract import DEFAULT_CONTRACT


class AutomatedDbtTranslator(DagsterDbtTranslator):
    """dbt models rebuild on their own once new raw data has landed."""

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> dg.AutomationCondition:
        return dg.AutomationCondition.eager()


class DbtRunConfig(dg.Config):
    full_refresh: bool = Field(default=False, description="Rebuild incremental models from scratch.")


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=AutomatedDbtTranslator(),
    pool="warehouse",
)
def dbt_models(
    context: dg.AssetExecutionContext,
    config: DbtRunConfig,
    dbt: DbtCliResource,
    split: SplitSettings,
    storage: StorageResource,
    warehouse: WarehouseResource,
) -> Iterator:
    """Builds staging, the incremental event models, feature marts and split tables, running dbt tests.

    The dataset contract reaches dbt as a variable. dbt unit tests are fixtures in the MovieLens
    contract's columns, so they run when that is the contract.
    """
    # The dbt profile reads the warehouse path from the environment.
    os.environ["RECS_WAREHOUSE_PATH"] = warehouse.path
    # A subset (the ingestion job builds only the models the online store reads) runs the tests
    # whose models are all built, not relationship tests reaching into models it did not build.
    os.environ["DBT_INDIRECT_SELECTION"] = "cautious"
    contract = storage.contract()
    args = ["build", "--vars", json.dumps({**split.dbt_vars(), "contract": contract.dbt_vars()})]
    args += ["--full-refresh"] if config.full_refresh else []
    args += [] if contract.name == DEFAULT_CONTRACT else ["--exclude", "test_type:unit"]
    yield from _build_in_home(dbt, args, context, storage.paths.dbt_targets)


PARTIAL_PARSE = "partial_parse.msgpack"


def _build_in_home(dbt: DbtCliResource, args: list[str], context: dg.AssetExecutionContext, folder: Path) -> Iterator:
    """Run dbt in a target folder of its own under the home, removed once the build succeeded (a
    failed build's folder holds the dbt.log that its error names).

    dagster-dbt's default target folders pile up inside the dbt project (about 5 MB per run). The
    previous build's parse state goes into the new folder and the new state is kept, so dbt
    re-parses only the files that changed instead of the whole project.
    """
    target = folder / f"{context.run.run_id[:8]}-{uuid.uuid4().hex[:8]}"
    target.mkdir(parents=True)
    state = folder / PARTIAL_PARSE
    if state.exists():
        shutil.copy(state, target / PARTIAL_PARSE)
    yield from dbt.cli(args, context=context, target_path=target).stream()
    if (target / PARTIAL_PARSE).exists():
        (target / PARTIAL_PARSE).replace(state)  # atomic: a concurrent build reads the old or the new
    shutil.rmtree(target)
