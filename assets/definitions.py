"""The one `Definitions` of recs-platform, loaded by workspace.yaml."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from assets.automation import landing_zone_sensor, pipeline_job, weekly_retrain
from assets.datasets import dataset
from assets.dbt import dbt_models
from assets.deployment import candidate_model, deployment, deployment_gates
from assets.evaluation import evaluation_report
from assets.ingestion import landing_zone, raw_tables
from assets.models import MODEL_ASSETS
from assets.resources import resources_for


def build_definitions(env: str | None = None, home: Path | None = None) -> dg.Definitions:
    """Definitions for one environment; tests pass a temporary home."""
    return dg.Definitions(
        assets=[
            landing_zone,
            raw_tables,
            dbt_models,
            dataset,
            *MODEL_ASSETS,
            evaluation_report,
            candidate_model,
            deployment,
        ],
        asset_checks=[deployment_gates],
        jobs=[pipeline_job],
        schedules=[weekly_retrain],
        sensors=[landing_zone_sensor],
        resources=resources_for(env, home),
    )


defs = build_definitions()
