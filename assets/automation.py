"""Jobs, the landing-zone sensor, and the schedules for retraining and freshness."""

import hashlib
import json
from pathlib import Path

import dagster as dg

from assets.ingestion import EVENTS, RAW_CATALOGS, SERVING_LOGS, LandedFileKind, events_are_fresh
from assets.online import FEEDBACK_MODELS, dbt_key, engagement_drop, online_metrics, online_store, shadow_comparison
from assets.resources import StorageResource, WarehouseResource
from recs_platform.data.events import file_sha256, landed_files
from recs_platform.data.ingestion import ingested_hashes
from recs_platform.data.warehouse import WarehouseBusy

LANDING = dg.AssetSelection.assets("landing_zone")

ingest_events_job = dg.define_asset_job(
    "ingest_events",
    # The online store and the dbt models it reads come along, so new events reach serving within
    # a minute of landing, computed by the same code as the training data.
    selection=dg.AssetSelection.assets(online_store).upstream() - LANDING,
    partitions_def=EVENTS.partitions,
    description="Ingest landed event files (one partition per file), then refresh the online store.",
)

ingest_serving_logs_job = dg.define_asset_job(
    "ingest_serving_logs",
    selection=dg.AssetSelection.assets(
        SERVING_LOGS.key, *(dbt_key(model) for model in FEEDBACK_MODELS), online_metrics, shadow_comparison
    ),
    partitions_def=SERVING_LOGS.partitions,
    description="Ingest the API's serving logs (one partition per file), attribute feedback, update online "
    "metrics and the shadow comparison.",
)

pipeline_job = dg.define_asset_job(
    "recs_pipeline",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(EVENTS.key, SERVING_LOGS.key) - LANDING,
    description="Catalogs → dbt → validated dataset → models → evaluation → gated deployment, on the ingested events.",
)
INGESTION_JOBS = {EVENTS.kind: ingest_events_job, SERVING_LOGS.kind: ingest_serving_logs_job}

freshness_job = dg.define_asset_job(
    "check_freshness",
    selection=dg.AssetSelection.checks(events_are_fresh),
    description="Evaluate the event-freshness alarm.",
)

weekly_retrain = dg.ScheduleDefinition(
    name="weekly_retrain",
    job=pipeline_job,
    cron_schedule="0 3 * * 1",
    description="Retrain and re-gate every Monday at 03:00 even if no new files arrived.",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

freshness_schedule = dg.ScheduleDefinition(
    name="freshness_every_15_minutes",
    job=freshness_job,
    cron_schedule="*/15 * * * *",
    description="Raise the 'weblogs stopped arriving' alarm even when nothing lands to trigger a run.",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


retrain_on_new_data = dg.AutomationConditionSensorDefinition(
    "retrain_on_new_data",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates automation conditions: new raw data → dbt → dataset → models → gated deployment.",
)


def _fingerprints(landing: Path, kind: str, previous: dict[str, list[str]]) -> dict[str, list[str]]:
    """Landed files of one kind by name, as [size:mtime, sha256].

    The content hash is recomputed only when size or mtime moved, so a file rewritten with
    identical bytes (e.g. a replay or a producer retry) does not trigger a re-ingestion.
    """
    prints = {}
    for path in landed_files(landing, kind):
        stamp = f"{path.stat().st_size}:{path.stat().st_mtime_ns}"
        known = previous.get(path.name)
        prints[path.name] = known if known and known[0] == stamp else [stamp, file_sha256(path)]
    return prints


def _run_key(prefix: str, changed: dict[str, str]) -> str:
    return prefix + "-" + hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:16]


@dg.sensor(
    jobs=[*INGESTION_JOBS.values(), pipeline_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def landing_zone_sensor(
    context: dg.SensorEvaluationContext, storage: StorageResource, warehouse: WarehouseResource
) -> dg.SensorResult | dg.SkipReason:
    """Adds a partition per new event or serving-log file and ingests it; a changed catalog reruns
    the pipeline.

    A file is pending when its content hash is neither in the warehouse's ingestion ledger
    (``raw.ingested_files``, whoever ingested it, the daemon or ``recs-platform run``) nor among
    the hashes this sensor already requested (its cursor). New files are ingested in one run over
    their partition range; a file that changed after it was ingested is re-ingested as its own
    partition (its rows are replaced, never duplicated). Downstream assets follow by their
    automation conditions.
    """
    requested = json.loads(context.cursor) if context.cursor else {}
    landing = storage.paths.landing
    current = {kind: _fingerprints(landing, kind, requested.get(kind, {})) for kind in (*INGESTION_JOBS, *RAW_CATALOGS)}
    try:
        ingested = ingested_hashes(Path(warehouse.path))
    except WarehouseBusy:
        return dg.SkipReason("the warehouse is busy (an ingestion or dbt step is writing); checking next tick")
    pending = {
        kind: {
            name: sha
            for name, (_, sha) in files.items()
            if sha not in (ingested.get(kind, {}).get(name), requested.get(kind, {}).get(name, [None, None])[1])
        }
        for kind, files in current.items()
    }
    context.update_cursor(json.dumps(current))
    if not any(pending.values()):
        return dg.SkipReason("every landed file is ingested or already requested")
    requests, additions = [], []
    for spec in (EVENTS, SERVING_LOGS):
        known = set(context.instance.get_dynamic_partitions(spec.partitions.name))
        new = [name for name in pending[spec.kind] if name not in known]
        requests += _ingestion_requests(spec, pending[spec.kind], new)
        additions += [spec.partitions.build_add_request(new)] if new else []
    catalogs = {kind: pending[kind] for kind in RAW_CATALOGS if pending[kind]}
    if catalogs:
        requests.append(dg.RunRequest(run_key=_run_key("catalogs", catalogs), job_name=pipeline_job.name))
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=additions)


def _ingestion_requests(spec: LandedFileKind, changed: dict[str, str], new: list[str]) -> list[dg.RunRequest]:
    """One run over the range of new partitions, plus one run per re-landed (changed) file."""
    job = INGESTION_JOBS[spec.kind]
    requests = [
        dg.RunRequest(run_key=_run_key(name, {name: sha}), job_name=job.name, partition_key=name)
        for name, sha in changed.items()
        if name not in new
    ]
    if new:
        requests.append(
            dg.RunRequest(
                run_key=_run_key(f"new-{spec.kind}", {name: changed[name] for name in new}),
                job_name=job.name,
                tags={
                    "dagster/asset_partition_range_start": new[0],
                    "dagster/asset_partition_range_end": new[-1],
                    "landed_files": str(len(new)),
                },
            )
        )
    return requests


ENGAGEMENT_CHECK = dg.AssetCheckKey(online_metrics.key, engagement_drop.check_key.name)


@dg.sensor(job=pipeline_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def retrain_on_engagement_drop(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """Retrains (through the same blocking gates) once for each failed evaluation of the engagement
    alarm: if users stopped consuming what is served, the next model learns from what they did instead."""
    record = context.instance.get_latest_asset_check_evaluation_record(ENGAGEMENT_CHECK)
    if record is None or record.status.value != "FAILED":
        return dg.SkipReason("the engagement alarm is not failing")
    if context.cursor == str(record.id):
        return dg.SkipReason("a retrain was already requested for this alarm")
    context.update_cursor(str(record.id))
    evaluation = record.event.asset_check_evaluation if record.event else None
    reason = evaluation.description if evaluation is not None else "engagement dropped"
    return dg.RunRequest(
        run_key=f"engagement-drop-{record.id}", tags={"retrain_reason": f"engagement alarm: {reason}"[:200]}
    )
