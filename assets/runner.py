"""Materialize everything once: ingest every landed event file, then run the pipeline."""

import dagster as dg

from assets.automation import ingest_events_job, pipeline_job
from assets.ingestion import landed_event_files
from recs_platform.data.events import landed_files
from recs_platform.settings import PlatformPaths


def planned_jobs(home: PlatformPaths) -> list[str]:
    """The jobs ``materialize_all`` runs, in order."""
    return ([ingest_events_job.name] if landed_files(home.landing, "events") else []) + [pipeline_job.name]


def ingest_all_events(
    defs: dg.Definitions, instance: dg.DagsterInstance, home: PlatformPaths, run_config: dict | None = None
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
        run_config=run_config,
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
        raise_on_error=False,
    )


def materialize_all(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    home: PlatformPaths,
    run_config: dict | None = None,
    loggers: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """Ingest all landed events, then run catalogs → dbt → … → deployment; returns the pipeline run.

    ``loggers`` (the run config's section) applies to both runs, ``run_config`` to the pipeline.
    """
    logging_config = {"loggers": loggers} if loggers else {}
    ingestion = ingest_all_events(defs, instance, home, logging_config)
    if ingestion is not None and not ingestion.success:
        return ingestion
    return defs.resolve_job_def(pipeline_job.name).execute_in_process(
        instance=instance, run_config={**(run_config or {}), **logging_config}, raise_on_error=False
    )
