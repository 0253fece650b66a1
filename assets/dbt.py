"""dbt models as assets; dbt tests become asset checks."""

import json
import os
from collections.abc import Iterator

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from assets.dbt_project import dbt_project
from assets.resources import SplitSettings, WarehouseResource


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, pool="warehouse")
def dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, split: SplitSettings, warehouse: WarehouseResource
) -> Iterator:
    """Builds staging views, interaction and feature marts and the split tables, running dbt tests."""
    # The dbt profile reads the warehouse path from the environment.
    os.environ["RECS_WAREHOUSE_PATH"] = warehouse.path
    yield from dbt.cli(["build", "--vars", json.dumps(split.dbt_vars())], context=context).stream()
