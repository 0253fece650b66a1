"""The online half: the online store serving reads, precomputed lists, online metrics and the
engagement alarm that retrains."""

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from assets.dbt import dbt_models
from assets.deployment import deployment
from assets.resources import EngagementSettings, GateSettings, RegistryResource, StorageResource, WarehouseResource
from recs_platform.evaluation.metrics import parse_metric
from recs_platform.evaluation.plots import lines_by_group, markdown_image
from recs_platform.files import write_parquet_atomically
from recs_platform.monitoring import online as online_monitoring
from recs_platform.monitoring.shadow import read_lists
from recs_platform.monitoring.shadow import shadow_comparison as compare_shadow
from recs_platform.online.store import export_snapshot, read_state
from recs_platform.registry.bundle import precompute_lists
from recs_platform.serving.model import precomputed_path

# The dbt models that hold each user's current state; the ingestion job rebuilds them.
ONLINE_STATE_MODELS = ("user_histories", "user_features")
# The dbt models between the serving logs and the online metrics.
FEEDBACK_MODELS = ("stg_serving_requests", "impressions", "attributed_feedback")
PRECOMPUTED_K = 100  # the API's largest k


def dbt_key(model: str) -> dg.AssetKey:
    return get_asset_key_for_model([dbt_models], model)


@dg.asset(
    deps=[dbt_key(model) for model in ONLINE_STATE_MODELS],
    group_name="online",
    automation_condition=dg.AutomationCondition.eager(),
    pool="warehouse",
)
def online_store(storage: StorageResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Every user's current history and features, exported from the same dbt models the training
    data comes from, as a snapshot that serving loads (and swaps in within seconds). Rebuilt by
    every ingestion run, so new events reach serving without a retrain."""
    with warehouse.connect(read_only=True) as connection:
        state = read_state(connection, storage.contract())
    pointer = export_snapshot(state, storage.paths.online)
    sample = state.head(5).assign(item_sequence=state.item_sequence.head(5).map(lambda items: list(items)[-5:]))
    return dg.MaterializeResult(
        metadata={
            "version": pointer["version"],
            "users": pointer["users"],
            "interactions": pointer["interactions"],
            "path": dg.MetadataValue.path(pointer["path"]),
            "sample (last 5 items)": dg.MetadataValue.md(
                sample.drop(columns="timestamp_sequence").to_markdown(index=False)
            ),
        }
    )


@dg.asset(
    deps=[deployment],
    group_name="online",
    automation_condition=dg.AutomationCondition.eager(),
)
def batch_recommendations(storage: StorageResource, registry: RegistryResource) -> dg.MaterializeResult:
    """The production bundle's top-k for every user it knows, precomputed after each deployment;
    serving answers from it while a user's history has not changed since training."""
    models = registry.registry()
    record = models.production()
    if record is None:
        return dg.MaterializeResult(metadata={"status": "no production bundle yet"})
    bundle = models.load_production()
    lists = precompute_lists(bundle.model, PRECOMPUTED_K)
    path = write_parquet_atomically(lists, precomputed_path(storage.paths, record.tag))
    return dg.MaterializeResult(
        metadata={
            "bundle": record.tag,
            "users": len(lists),
            "k": PRECOMPUTED_K,
            "path": dg.MetadataValue.path(str(path)),
        }
    )


# The assets computed from the serving logs and what users did next.
FROM_FEEDBACK = {
    "deps": [dbt_key(model) for model in FEEDBACK_MODELS],
    "group_name": "online",
    "automation_condition": dg.AutomationCondition.eager(),
    "pool": "warehouse",
}


@dg.asset(**FROM_FEEDBACK)
def online_metrics(storage: StorageResource, warehouse: WarehouseResource, gate: GateSettings) -> dg.MaterializeResult:
    """Per model version and day: requests, answer sources, consumption and hit rate at k within the
    attribution window, catalogue coverage and latency, from the serving logs and later events."""
    k = parse_metric(gate.metric)[1]
    with warehouse.connect(read_only=True) as connection:
        feedback, requests = online_monitoring.read_online_tables(connection)
        catalog_size = connection.execute("select count(*) from stg_items").fetchone()[0]
    table = online_monitoring.online_metrics(feedback, requests, k, catalog_size)
    path = write_parquet_atomically(table, storage.paths.online / "metrics.parquet")
    rate = f"consumption_rate@{k}"
    return dg.MaterializeResult(
        metadata={
            "requests": int(table.requests.sum()) if len(table) else 0,
            "model_versions": int(table.model_version.nunique()) if len(table) else 0,
            "by_version_and_day": dg.MetadataValue.md(table.to_markdown(index=False, floatfmt=".4f") or "_none_"),
            "consumption_rate_plot": dg.MetadataValue.md(
                markdown_image(rate, lines_by_group(table, "day", rate, "model_version")) if len(table) else "_none_"
            ),
            "path": dg.MetadataValue.path(str(path)),
        }
    )


@dg.asset(**FROM_FEEDBACK)
def shadow_comparison(
    storage: StorageResource, warehouse: WarehouseResource, gate: GateSettings
) -> dg.MaterializeResult:
    """Each challenger against the champion on the requests it answered in shadow: agreement,
    latency, and how well each list anticipated what users then consumed (paired bootstrap)."""
    k = parse_metric(gate.metric)[1]
    with warehouse.connect(read_only=True) as connection:
        lists = read_lists(connection)
    table = compare_shadow(lists, k)
    path = write_parquet_atomically(table, storage.paths.online / "shadow.parquet")
    return dg.MaterializeResult(
        metadata={
            "challengers": len(table),
            "comparison": dg.MetadataValue.md(
                table.to_markdown(index=False, floatfmt=".4f") if len(table) else "_no shadow traffic yet_"
            ),
            "path": dg.MetadataValue.path(str(path)),
        }
    )


@dg.asset_check(asset=online_metrics, description="Alarms when engagement falls below its trailing baseline.")
def engagement_drop(
    warehouse: WarehouseResource, gate: GateSettings, engagement: EngagementSettings
) -> dg.AssetCheckResult:
    """Fails when the newest mature day's consumption rate fell more than the configured margin below
    the trailing baseline, on enough requests; the engagement sensor then retrains through the gates."""
    k = parse_metric(gate.metric)[1]
    with warehouse.connect(read_only=True) as connection:
        feedback, _ = online_monitoring.read_online_tables(connection)
    verdict = online_monitoring.engagement_drop(
        feedback, k, engagement.margin, engagement.min_requests, engagement.baseline_days
    )
    return dg.AssetCheckResult(
        passed=not verdict.dropped,
        description=verdict.description,
        metadata={
            "day": verdict.day or "none",
            "rate": verdict.rate if verdict.rate is not None else float("nan"),
            "baseline": verdict.baseline if verdict.baseline is not None else float("nan"),
            "requests": verdict.requests,
            "margin": engagement.margin,
        },
    )
