"""The same Definitions on other engines, chosen by configuration (assets/executors.py): the sweep
steps on a real dask.distributed cluster of two worker processes on loopback, and the Kubernetes
executor's documented configuration."""

import os
import socket
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dask.distributed import Client, LocalCluster

import assets.definitions
import assets.executors
from assets.definitions import build_definitions
from assets.executors import engine_config
from recs_platform.data import synthetic, warehouse
from recs_platform.data.contract import contract_for_home
from recs_platform.data.ingestion import ingest_landing
from recs_platform.settings import PlatformPaths

# One baseline and a four-point BPR grid: four training steps to spread over the workers (sweeps
# that share fit work, such as EASE's or item-kNN's, fit their whole grid in one step).
SWEEPS = "popularity: {}\nbpr:\n  params: {epochs: 2}\n  grid:\n    factors: [4, 8, 16, 32]\n"
TRAIN = "bpr_train["


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


def prepare_dataset(defs: dg.Definitions, instance: dg.DagsterInstance, home: Path) -> None:
    """Raw layer, dbt models (their tests left out, for time) and the validated dataset, in-process,
    for a later run on another engine to read."""
    with warehouse.connect(PlatformPaths(home).warehouse) as connection:
        ingest_landing(connection, PlatformPaths(home).landing, kinds=("events",), contract=contract_for_home(home))
    ingested = dg.AssetSelection.assets(["raw", "events"], ["raw", "served_impressions"], "landing_zone")
    upstream = (dg.AssetSelection.assets("dataset").upstream() - ingested).resolve(defs.resolve_asset_graph())
    job = defs.resolve_job_def("recs_pipeline").get_subset(asset_selection=upstream, asset_check_selection=set())
    assert job.execute_in_process(instance=instance).success


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
        prepare_dataset(defs, instance, home)
        assert (home / "step_outputs" / "dataset").exists()  # the shared storage the workers read

        job = ReconstructableRepository.for_module("assets.definitions", "defs").get_reconstructable_job(
            "recs_pipeline"
        )
        with dg.execute_job(job, instance, asset_selection=[dg.AssetKey("bpr_model")]) as result:
            assert result.success
            starts = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START]
            materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        worker_pids = set(client.run(os.getpid).values())

    train_pids = {e.pid for e in starts if e.step_key.startswith(f"bpr_model.{TRAIN}")}
    assert len([e for e in starts if TRAIN in e.step_key]) == 4
    assert len(train_pids) == 2 and train_pids <= worker_pids
    assert {e.pid for e in starts} <= worker_pids and os.getpid() not in worker_pids
    assert materialized == {"bpr_model"}
    # The dataset came from the shared folder (written by the preparing process), and every sweep
    # step's output went through it to the step that read it, on either worker.
    stored = {path.parent.name for path in (home / "step_outputs").rglob("result")}
    assert sum(TRAIN in name for name in stored) == 4, stored


def test_the_default_engine_runs_steps_forked_from_a_preloaded_code_location(tmp_path, monkeypatch):
    home = engine_environment(monkeypatch, tmp_path, "multiprocess")
    (tmp_path / "sweeps.yaml").write_text("popularity: {}\n")
    defs = build_definitions("ci", home)
    workspace = yaml.safe_load((Path(__file__).resolve().parents[1] / "workspace.yaml").read_text())
    code_location = workspace["load_from"][0]["python_module"]["module_name"]
    preloaded = engine_config("multiprocess")["multiprocess"]["start_method"]["forkserver"]["preload_modules"]
    assert preloaded == [code_location]
    (tmp_path / "dagster").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster"))
    prepare_dataset(defs, instance, home)

    job = ReconstructableRepository.for_module("assets.definitions", "defs").get_reconstructable_job("recs_pipeline")
    with dg.execute_job(job, instance, asset_selection=[dg.AssetKey("popularity_model")]) as result:
        assert result.success
        starts = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START]
    assert {e.step_key.split("[")[0] for e in starts} == {
        f"popularity_model.popularity_{op}" for op in ("configurations", "train", "select")
    }
    assert os.getpid() not in {e.pid for e in starts}


def test_the_documented_kubernetes_executor_configuration_is_valid_for_the_pipeline(tmp_path, monkeypatch):
    monkeypatch.setenv("RECS_EXECUTOR", "k8s")
    monkeypatch.delenv("RECS_SWEEPS", raising=False)
    defs = build_definitions("ci", tmp_path)
    job = defs.resolve_job_def("recs_pipeline")

    assert job.executor_def.name == "k8s"
    dg.validate_run_config(job)  # raises DagsterInvalidConfigError on a wrong key or type
    assert set(engine_config("k8s")["per_step_k8s_config"]) <= {node.name for node in job.all_node_defs}
    assert defs.resources["io_manager"].base_dir == str(tmp_path.resolve() / "step_outputs")


def test_a_misspelt_executor_setting_is_rejected(tmp_path, monkeypatch):
    misspelt = tmp_path / "executors"
    misspelt.mkdir()
    (misspelt / "k8s.yaml").write_text(yaml.safe_dump({**engine_config("k8s"), "max_concurent": 8}))
    monkeypatch.setattr(assets.executors, "EXECUTOR_CONFIG_DIR", misspelt)
    monkeypatch.setenv("RECS_EXECUTOR", "k8s")
    job = build_definitions("ci", tmp_path).resolve_job_def("recs_pipeline")
    with pytest.raises(dg.DagsterInvalidConfigError, match="max_concurent"):
        dg.validate_run_config(job)


def test_the_engine_is_named_in_one_place(tmp_path, monkeypatch):
    monkeypatch.setenv("RECS_EXECUTOR", "spark")
    with pytest.raises(ValueError, match="RECS_EXECUTOR must be one of multiprocess, dask, k8s"):
        build_definitions("ci", tmp_path)
    monkeypatch.delenv("RECS_EXECUTOR")
    defs = build_definitions("ci", tmp_path)
    assert defs.resolve_job_def("recs_pipeline").executor_def.name == "multi_or_in_process_executor"
    assert "io_manager" not in defs.resources  # in-process runs keep outputs in memory, as before
