"""Where the graph's steps run, chosen by configuration: ``RECS_EXECUTOR`` names an engine and
``config/executors/<name>.yaml`` holds its settings (``{env: VAR}`` reads a variable at run time).

- unset or ``multiprocess``: Dagster's default (steps in subprocesses of the run's machine, forked
  from a server that has imported the code location once);
- ``dask``: every step is a task on an existing ``dask.distributed`` cluster;
- ``k8s``: every step is a Kubernetes Job (dagster-k8s ``k8s_job_executor``).

The engines that run steps on other machines also move step outputs to a filesystem IO manager
under ``RECS_STEP_STORAGE`` (default ``<RECS_HOME>/step_outputs``), a folder every worker must reach,
as they must reach ``RECS_HOME`` itself (datasets, artifacts, the warehouse).

Why not dagster-dask's ``dask_executor``: it plans the whole run up front and cannot run dynamic
map/collect (dagster-io/dagster#9785), which every recommender sweep uses. The ``dask`` engine
here is Dagster's step-delegating executor (the one behind ``k8s_job_executor``), which resolves
the dynamic fan-out as steps finish, with a step handler that runs each step as a task in a Dask
worker's process, as ``dagster api execute_step`` would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.definitions.executor_definition import multiple_process_executor_requirements
from dagster._core.events import DagsterEvent
from dagster._core.execution.retries import RetryMode
from dagster._core.executor.step_delegating import (
    CheckStepHealthResult,
    StepDelegatingExecutor,
    StepHandler,
    StepHandlerContext,
)

EXECUTOR_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config" / "executors"
DISTRIBUTED_ENGINES = ("dask", "k8s")


def engine_name() -> str:
    """The engine ``RECS_EXECUTOR`` names (``multiprocess`` when unset)."""
    name = os.environ.get("RECS_EXECUTOR", "multiprocess")
    known = ("multiprocess", *DISTRIBUTED_ENGINES)
    if name not in known:
        raise ValueError(f"RECS_EXECUTOR must be one of {', '.join(known)}, got {name!r}")
    return name


def engine_config(name: str) -> dict:
    """The executor settings of engine ``name`` from ``config/executors/<name>.yaml``."""
    return yaml.safe_load((EXECUTOR_CONFIG_DIR / f"{name}.yaml").read_text()) or {}


def executor_for(name: str | None = None) -> dg.ExecutorDefinition:
    """The configured executor of the chosen engine."""
    name = name or engine_name()
    if name == "dask":
        return dask_step_executor.configured(engine_config(name))
    if name == "k8s":
        from dagster_k8s import k8s_job_executor  # the Kubernetes client is only imported when chosen

        return k8s_job_executor.configured(engine_config(name))
    return dg.multi_or_in_process_executor.configured(engine_config(name))


def step_storage(home: Path) -> dg.FilesystemIOManager | None:
    """The IO manager step outputs pass through when steps run on other machines, else None
    (Dagster's default: in memory in-process, the instance's folder otherwise)."""
    if engine_name() not in DISTRIBUTED_ENGINES:
        return None
    return dg.FilesystemIOManager(base_dir=os.environ.get("RECS_STEP_STORAGE", str(home / "step_outputs")))


def _execute_step_on_worker(run_id: str, step_keys: list[str], known_state: object, instance_ref: object) -> int:
    """Runs on a Dask worker: the body of ``dagster api execute_step`` for ``step_keys``, in the
    worker's process. Events go to the instance, where the orchestrating executor reads them."""
    from dagster._core.execution.api import create_execution_plan, execute_plan_iterator
    from dagster._utils.hosted_user_process import recon_job_from_origin

    with dg.DagsterInstance.from_ref(instance_ref) as instance:
        run = instance.get_run_by_id(run_id)
        job = recon_job_from_origin(run.job_code_origin).get_subset(
            op_selection=run.resolved_op_selection,
            asset_selection=run.asset_selection,
            asset_check_selection=run.asset_check_selection,
        )
        plan = create_execution_plan(
            job, run_config=run.run_config, step_keys_to_execute=step_keys, known_state=known_state
        )
        for _ in execute_plan_iterator(plan, job, run, instance, run_config=run.run_config):
            pass
    return os.getpid()


class DaskStepHandler(StepHandler):
    """Submits each step to a ``dask.distributed`` scheduler and reports a task that failed outside
    the step (a lost worker, an import error) as an unhealthy step."""

    def __init__(self, address: str) -> None:
        self._address = address
        self._client = None
        self._futures: dict[str, object] = {}

    def _connected(self):
        if self._client is None:
            from dask.distributed import Client

            self._client = Client(self._address, set_as_default=False)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def name(self) -> str:
        return "DaskStepHandler"

    def _key(self, context: StepHandlerContext) -> str:
        args = context.execute_step_args
        return f"{args.run_id}:{','.join(args.step_keys_to_execute or [])}"

    def launch_step(self, step_handler_context: StepHandlerContext) -> Iterator[DagsterEvent]:
        args = step_handler_context.execute_step_args
        key = self._key(step_handler_context)
        self._futures[key] = self._connected().submit(
            _execute_step_on_worker,
            args.run_id,
            list(args.step_keys_to_execute or []),
            args.known_state,
            args.instance_ref,
            key=key,
            pure=False,
        )
        yield from ()

    def check_step_health(self, step_handler_context: StepHandlerContext) -> CheckStepHealthResult:
        future = self._futures.get(self._key(step_handler_context))
        if future is not None and future.status == "error":
            return CheckStepHealthResult.unhealthy(f"Dask task failed: {future.exception()!r}")
        return CheckStepHealthResult.healthy()

    def terminate_step(self, step_handler_context: StepHandlerContext) -> Iterator[DagsterEvent]:
        future = self._futures.pop(self._key(step_handler_context), None)
        if future is not None:
            future.cancel()
        yield from ()


class DaskStepExecutor(StepDelegatingExecutor):
    """Closes the connection to the scheduler when the run's steps are done."""

    def __init__(self, step_handler: DaskStepHandler, **kwargs: object) -> None:
        super().__init__(step_handler, **kwargs)
        self._dask_handler = step_handler

    def execute(self, plan_context, execution_plan):  # noqa: ANN001, ANN201 - Executor's signature
        try:
            yield from super().execute(plan_context, execution_plan)
        finally:
            self._dask_handler.close()


@dg.executor(
    name="dask",
    config_schema={
        "scheduler_address": dg.Field(dg.StringSource, description="tcp://host:port of the Dask scheduler."),
        "max_concurrent": dg.Field(int, is_required=False, description="Most steps submitted at once."),
    },
    requirements=multiple_process_executor_requirements(),
)
def dask_step_executor(init_context: dg.InitExecutorContext) -> DaskStepExecutor:
    """Runs each step as a task on an existing ``dask.distributed`` cluster."""
    config = init_context.executor_config
    return DaskStepExecutor(
        DaskStepHandler(config["scheduler_address"]),
        retries=RetryMode.DISABLED,
        max_concurrent=config.get("max_concurrent"),
        # The handler polls futures, not pods: a short interval notices a lost task quickly.
        check_step_health_interval_seconds=5,
    )
