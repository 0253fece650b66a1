"""Materialize everything once: ingest every landed event and serving-log file, then run the pipeline."""

import dagster as dg

from assets.automation import INGESTION_JOBS, pipeline_job
from assets.ingestion import EVENTS, SERVING_LOGS, LandedFileKind
from recs_platform.data.events import landed_files
from recs_platform.settings import PlatformPaths


def ingest_landed(
    defs: dg.Definitions, instance: dg.DagsterInstance, home: PlatformPaths, spec: LandedFileKind = EVENTS
) -> dg.ExecuteInProcessResult | None:
    """Register a partition per landed file of ``spec``'s kind and ingest them all in one run
    (None when nothing of that kind has landed)."""
    names = [path.name for path in landed_files(home.landing, spec.kind)]
    if not names:
        return None
    known = set(instance.get_dynamic_partitions(spec.partitions.name))
    instance.add_dynamic_partitions(spec.partitions.name, [n for n in names if n not in known])
    keys = instance.get_dynamic_partitions(spec.partitions.name)
    return defs.resolve_job_def(INGESTION_JOBS[spec.kind].name).execute_in_process(
        instance=instance,
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
        raise_on_error=False,
    )


def materialize_all(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    home: PlatformPaths,
    run_config: dict | None = None,
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    """Ingest all landed events and serving logs, then run catalogs → dbt → … → deployment; returns
    the pipeline run (or the first ingestion run that failed)."""
    for spec in (EVENTS, SERVING_LOGS):
        ingestion = ingest_landed(defs, instance, home, spec)
        if ingestion is not None and not ingestion.success:
            return ingestion
    return defs.resolve_job_def(pipeline_job.name).execute_in_process(
        instance=instance, run_config=run_config, tags=tags, raise_on_error=False
    )
