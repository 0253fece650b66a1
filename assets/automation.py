"""Jobs, the landing-zone sensor and the retraining schedule."""

import hashlib
import json

import dagster as dg

from recs_platform.data.events import LANDING_KINDS, landed_files
from recs_platform.settings import PlatformPaths

pipeline_job = dg.define_asset_job(
    "recs_pipeline",
    selection=dg.AssetSelection.all() - dg.AssetSelection.keys("landing_zone"),
    description="Landing files → raw → dbt → validated dataset → models → evaluation → gated deployment.",
)

weekly_retrain = dg.ScheduleDefinition(
    name="weekly_retrain",
    job=pipeline_job,
    cron_schedule="0 3 * * 1",
    description="Retrain and re-gate every Monday at 03:00 even if no new files arrived.",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


def _landing_listing() -> dict[str, str]:
    """Every landed file, keyed by path, with a size/mtime fingerprint."""
    landing = PlatformPaths.from_env().landing
    listing = {}
    for kind in LANDING_KINDS:
        for path in landed_files(landing, kind):
            stat = path.stat()
            listing[f"{kind}/{path.name}"] = f"{stat.st_size}:{stat.st_mtime_ns}"
    return listing


@dg.sensor(job=pipeline_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def landing_zone_sensor(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """Runs the pipeline once for each batch of new or changed files in the landing zone."""
    seen = json.loads(context.cursor) if context.cursor else {}
    listing = _landing_listing()
    changed = sorted(name for name, stamp in listing.items() if seen.get(name) != stamp)
    if not changed:
        return dg.SkipReason("no new files in the landing zone")
    run_key = hashlib.sha256(json.dumps({n: listing[n] for n in changed}).encode()).hexdigest()[:16]
    context.update_cursor(json.dumps(listing))
    return dg.RunRequest(run_key=run_key, tags={"landed_files": str(len(changed))})
