"""dbt models as assets; dbt tests become asset checks."""

import json
import os
from collections.abc import Iterator, Mapping
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
    yield from dbt.cli(args, context=context).stream()
