"""dbt models as assets; dbt tests become asset checks."""

import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets
from pydantic import Field

from assets.dbt_project import dbt_project
from assets.resources import SplitSettings, WarehouseResource


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
    warehouse: WarehouseResource,
) -> Iterator:
    """Builds staging, the incremental event models, feature marts and split tables, running dbt tests."""
    # The dbt profile reads the warehouse path from the environment.
    os.environ["RECS_WAREHOUSE_PATH"] = warehouse.path
    # A subset (the ingestion job builds only the models the online store reads) runs the tests
    # whose models are all built, not relationship tests reaching into models it did not build.
    os.environ["DBT_INDIRECT_SELECTION"] = "cautious"
    args = ["build", "--vars", json.dumps(split.dbt_vars())] + (["--full-refresh"] if config.full_refresh else [])
    yield from dbt.cli(args, context=context).stream()
