"""The same Definitions on other engines, chosen by configuration (assets/executors.py): the sweep
steps on a real dask.distributed cluster of two worker processes on loopback, and the Kubernetes
executor's documented configuration."""

import os
import socket
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dask.distributed import Client, LocalCluster

import assets.definitions
from assets.definitions import build_definitions
from assets.executors import EXECUTOR_CONFIG_DIR, engine_config
from recs_platform.data import synthetic, warehouse
from recs_platform.data.ingestion import ingest_landing
from recs_platform.settings import PlatformPaths

# One baseline and a four-point EASE grid: four training steps to spread over the workers.
SWEEPS = "popularity: {}\nease:\n  grid:\n    l2: [50.0, 200.0, 500.0, 1000.0]\n"
EASE_TRAIN = "ease_train["


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def engine_environment(patch: pytest.MonkeyPatch, root: Path, engine: str) -> Path:
    """A home with a small synthetic landing zone and the variables a worker process reads."""
    home = root / "home"
    (root / "sweeps.yaml").write_text(SWEEPS)
    for name, value in {
        "RECS_HOME": home,
        "RECS_ENV": "ci",
        "RECS_SWEEPS": root / "sweeps.yaml",
        "RECS_EXECUTOR": engine,
    }.items():
        patch.setenv(name, str(value))
    config = synthetic.SyntheticConfig(n_users=120, n_items=150, n_events=4000, days=8, seed=5)
    synthetic.write_to_landing(synthetic.generate(config), PlatformPaths(home).landing)
    return home


def test_sweep_steps_spread_over_two_dask_workers_and_outputs_pass_through_shared_storage(tmp_path, monkeypatch):
    home = engine_environment(monkeypatch, tmp_path, "dask")
    port = free_port()
    monkeypatch.setenv("RECS_DASK_SCHEDULER", f"tcp://127.0.0.1:{port}")
    # Worker processes start with this environment; each loads assets.definitions as a code location would.
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", scheduler_port=port, dashboard_address=None
    )
    with cluster, Client(cluster) as client:
        defs = build_definitions("ci", home)
        # The orchestrating process resolves the job from the same code location as the workers.
        monkeypatch.setattr(assets.definitions, "defs", defs)
        (tmp_path / "dagster").mkdir()
        instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster"))
        # The landed events go straight to the raw layer; the run does the rest, dbt included.
        with warehouse.connect(PlatformPaths(home).warehouse) as connection:
            ingest_landing(connection, PlatformPaths(home).landing, kinds=("events",))

        job = ReconstructableRepository.for_module("assets.definitions", "defs").get_reconstructable_job(
            "recs_pipeline"
        )
        ingested = dg.AssetSelection.assets(["raw", "events"], ["raw", "served_impressions"], "landing_zone")
        selection = (dg.AssetSelection.assets("ease_model").upstream() - ingested).resolve(defs.resolve_asset_graph())
        with dg.execute_job(job, instance, asset_selection=sorted(selection)) as result:
            assert result.success
            starts = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START]
            materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        worker_pids = set(client.run(os.getpid).values())

    train_pids = {e.pid for e in starts if e.step_key.startswith(f"ease_model.{EASE_TRAIN}")}
    assert len([e for e in starts if EASE_TRAIN in e.step_key]) == 4
    assert len(train_pids) == 2 and train_pids <= worker_pids
    assert {e.pid for e in starts} <= worker_pids and os.getpid() not in worker_pids
    assert {"dataset", "ease_model", "split_train"} <= materialized
    # Every step's output went through the shared folder, where the next step (on either worker) read it.
    stored = {path.parent.name for path in (home / "step_outputs").rglob("result")}
    assert sum(EASE_TRAIN in name for name in stored) == 4, stored
