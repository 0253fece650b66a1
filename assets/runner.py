"""Materialize everything once: ingest every landed event and serving-log file, then run the pipeline."""

import dagster as dg

from assets.automation import INGESTION_JOBS, pipeline_job
from assets.ingestion import EVENTS, SERVING_LOGS, LandedFileKind
from recs_platform.data.events import landed_files
from recs_platform.settings import PlatformPaths

INGESTED = (EVENTS, SERVING_LOGS)


def planned_runs(defs: dg.Definitions, home: PlatformPaths) -> list[dg.JobDefinition]:
    """The runs ``materialize_all`` makes, in order, each as the subset of its job that runs: the
    raw load of each kind of landed file, then the pipeline."""
    loads = [
        defs.resolve_job_def(INGESTION_JOBS[spec.kind].name).get_subset(asset_selection={spec.key})
        for spec in INGESTED
        if landed_files(home.landing, spec.kind)
    ]
    return [*loads, defs.resolve_job_def(pipeline_job.name)]


def ingest_landed(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    home: PlatformPaths,
    spec: LandedFileKind = EVENTS,
    run_config: dict | None = None,
    raw_only: bool = False,
) -> dg.ExecuteInProcessResult | None:
    """Register a partition per landed file of ``spec``'s kind and ingest them all in one run
    (None when nothing of that kind has landed). ``raw_only`` loads the raw table (and runs its
    checks) but leaves what the job refreshes after it (catalogs, dbt models, online store) to a
    pipeline run that follows, which would otherwise build it a second time."""
    names = [path.name for path in landed_files(home.landing, spec.kind)]
    if not names:
        return None
    known = set(instance.get_dynamic_partitions(spec.partitions.name))
    instance.add_dynamic_partitions(spec.partitions.name, [n for n in names if n not in known])
    keys = instance.get_dynamic_partitions(spec.partitions.name)
    return defs.resolve_job_def(INGESTION_JOBS[spec.kind].name).execute_in_process(
        instance=instance,
        asset_selection=[spec.key] if raw_only else None,
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
    """Load all landed events and serving logs into their raw tables, then run catalogs → dbt → … →
    deployment once; returns the pipeline run (or the first load that failed).

    ``loggers`` (the run config's section) applies to every run, ``run_config`` to the pipeline.
    """
    logging_config = {"loggers": loggers} if loggers else {}
    for spec in INGESTED:
        ingestion = ingest_landed(defs, instance, home, spec, logging_config, raw_only=True)
        if ingestion is not None and not ingestion.success:
            return ingestion
    return defs.resolve_job_def(pipeline_job.name).execute_in_process(
        instance=instance, run_config={**(run_config or {}), **logging_config}, tags=tags, raise_on_error=False
    )
