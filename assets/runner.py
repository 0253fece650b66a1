"""Materialize everything once: ingest every landed event file, then run the pipeline."""

import dagster as dg

from assets.automation import ingest_events_job, pipeline_job
from assets.ingestion import landed_event_files
from recs_platform.data.events import landed_files
from recs_platform.settings import PlatformPaths


def ingest_all_events(
    defs: dg.Definitions, instance: dg.DagsterInstance, home: PlatformPaths
) -> dg.ExecuteInProcessResult | None:
    """Register a partition per landed event file and ingest them all in one run."""
    names = [path.name for path in landed_files(home.landing, "events")]
    if not names:
        return None
    known = set(instance.get_dynamic_partitions(landed_event_files.name))
    instance.add_dynamic_partitions(landed_event_files.name, [n for n in names if n not in known])
    keys = instance.get_dynamic_partitions(landed_event_files.name)
    return defs.resolve_job_def(ingest_events_job.name).execute_in_process(
        instance=instance,
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
        raise_on_error=False,
    )


def materialize_all(
    defs: dg.Definitions, instance: dg.DagsterInstance, home: PlatformPaths, run_config: dict | None = None
) -> dg.ExecuteInProcessResult:
    """Ingest all landed events, then run catalogs → dbt → … → deployment; returns the pipeline run."""
    ingestion = ingest_all_events(defs, instance, home)
    if ingestion is not None and not ingestion.success:
        return ingestion
    return defs.resolve_job_def(pipeline_job.name).execute_in_process(
        instance=instance, run_config=run_config, raise_on_error=False
    )
