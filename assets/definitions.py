"""The one `Definitions` of recs-platform, loaded by workspace.yaml."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from assets.automation import (
    freshness_job,
    freshness_schedule,
    ingest_events_job,
    ingest_serving_logs_job,
    landing_zone_sensor,
    pipeline_job,
    retrain_on_engagement_drop,
    retrain_on_new_data,
    weekly_retrain,
)
from assets.datasets import dataset
from assets.dbt import dbt_models
from assets.deployment import candidate_model, deployment, deployment_gates
from assets.evaluation import evaluation_report, evaluation_suite, next_item_evaluation, next_item_models, over_models
from assets.executors import executor_for
from assets.ingestion import (
    events_are_fresh,
    landing_zone,
    quarantine_rate,
    raw_catalogs,
    raw_events,
    raw_served_impressions,
)
from assets.models import model_assets
from assets.monitoring import dataset_statistics_report, feature_drift_vs_production
from assets.online import batch_recommendations, engagement_drop, online_metrics, online_store, shadow_comparison
from assets.progress import run_events
from assets.resources import resources_for, sweeps_paths
from recs_platform.sweeps import load_sweeps


def build_definitions(env: str | None = None, home: Path | None = None) -> dg.Definitions:
    """Definitions for one environment; tests pass a temporary home."""
    models = model_assets(load_sweeps(*sweeps_paths(env)))
    model_keys = [model.key for model in models]
    sequential = next_item_models(model_keys)
    return dg.Definitions(
        assets=[
            landing_zone,
            raw_events,
            raw_catalogs,
            raw_served_impressions,
            dbt_models,
            online_store,
            dataset,
            dataset_statistics_report,
            *models,
            over_models(evaluation_report, model_keys),
            over_models(evaluation_suite, model_keys, after=["evaluation_report"]),
            *([over_models(next_item_evaluation, sequential)] if sequential else []),
            candidate_model,
            deployment,
            batch_recommendations,
            online_metrics,
            shadow_comparison,
        ],
        asset_checks=[
            quarantine_rate,
            events_are_fresh,
            feature_drift_vs_production,
            deployment_gates,
            engagement_drop,
        ],
        jobs=[ingest_events_job, ingest_serving_logs_job, pipeline_job, freshness_job],
        schedules=[weekly_retrain, freshness_schedule],
        sensors=[landing_zone_sensor, retrain_on_new_data, retrain_on_engagement_drop],
        resources=resources_for(env, home),
        # RECS_EXECUTOR and config/executors/ choose where steps run (see assets/executors.py).
        executor=executor_for(),
        # Dagster's console logger unless a run config names others; the command line names run_events.
        loggers={**dg.default_loggers(), "run_events": run_events},
    )


defs = build_definitions()
