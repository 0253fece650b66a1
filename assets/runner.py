"""Materialize everything once: ingest every landed event and serving-log file, then run the pipeline."""

import dagster as dg

from assets.automation import INGESTION_JOBS, pipeline_job
from assets.ingestion import EVENTS, SERVING_LOGS, LandedFileKind
from recs_platform.data.events import landed_files
from recs_platform.settings import PlatformPaths

INGESTED = (EVENTS, SERVING_LOGS)


def planned_jobs(home: PlatformPaths) -> list[str]:
    """The jobs ``materialize_all`` runs, in order."""
    ingestions = [INGESTION_JOBS[spec.kind].name for spec in INGESTED if landed_files(home.landing, spec.kind)]
    return [*ingestions, pipeline_job.name]


def ingest_landed(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    home: PlatformPaths,
    spec: LandedFileKind = EVENTS,
    run_config: dict | None = None,
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
        run_config=run_config,
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
        raise_on_error=False,
    )


def materialize_all(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    home: PlatformPaths,
    run_config: dict | None = None,
    tags: dict[str, str] | None = None,
    loggers: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """Ingest all landed events and serving logs, then run catalogs → dbt → … → deployment; returns
    the pipeline run (or the first ingestion run that failed).

    ``loggers`` (the run config's section) applies to every run, ``run_config`` to the pipeline.
    """
    logging_config = {"loggers": loggers} if loggers else {}
    for spec in INGESTED:
        ingestion = ingest_landed(defs, instance, home, spec, logging_config)
        if ingestion is not None and not ingestion.success:
            return ingestion
    return defs.resolve_job_def(pipeline_job.name).execute_in_process(
        instance=instance, run_config={**(run_config or {}), **logging_config}, tags=tags, raise_on_error=False
    )
