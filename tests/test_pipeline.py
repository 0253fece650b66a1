"""The whole asset graph, materialized in-process on MovieLens-100K.

One module-scoped run lands MovieLens, ingests, builds dbt, validates, trains, evaluates and
deploys; later tests reuse its home to exercise the failing gate and a failing validation.
"""

import json
import os
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from assets.definitions import build_definitions
from assets.runner import materialize_all
from recs_platform.data import movielens
from recs_platform.data.events import write_landing_file
from recs_platform.registry import ModelRegistry
from recs_platform.settings import PlatformPaths

REPO = Path(__file__).resolve().parent.parent
MOVIELENS = Path(os.environ.get("RECS_MOVIELENS_DIR", REPO.parent / "shared" / "data" / "ml-100k"))
GATES = {"threshold", "beats_baselines", "no_regression"}
FEW_EPOCHS = {
    "ops": {"bpr_model": {"ops": {"bpr_configurations": {"config": {"override_params_json": '{"epochs": 5}'}}}}}
}


def run_pipeline(
    home: Path, run_config: dict | None = None, selection: list[str] | None = None
) -> dg.ExecuteInProcessResult:
    """Ingest and run the pipeline (or only a subset of it) on the home's persistent instance."""
    defs = build_definitions("ci", home)
    (home / "dagster").mkdir(exist_ok=True)
    instance = dg.DagsterInstance.local_temp(str(home / "dagster"))
    if selection is None:
        return materialize_all(defs, instance, PlatformPaths(home), run_config)
    keys = [dg.AssetKey.from_user_string(key) for key in selection]
    job = defs.resolve_job_def("recs_pipeline")
    return job.execute_in_process(instance=instance, run_config=run_config, asset_selection=keys, raise_on_error=False)


def registry_of(home: Path) -> ModelRegistry:
    paths = PlatformPaths(home)
    return ModelRegistry(paths.bentoml_home / "models", paths.registry)


def gate_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations() if e.check_name in GATES}


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dg.ExecuteInProcessResult]:
    movielens.verify(MOVIELENS)  # CI points RECS_MOVIELENS_DIR at the shared copy; fail loudly if not
    home = tmp_path_factory.mktemp("home")
    movielens.import_to_landing(MOVIELENS, PlatformPaths(home).landing)
    return home, run_pipeline(home)


def test_full_graph_deploys_the_gated_model(deployed):
    home, result = deployed
    assert result.success
    assert {
        "raw/users",
        "raw/items",
        "stg_events",
        "interactions",
        "user_features",
        "item_features",
        "split_train",
        "dataset",
        "dataset_statistics_report",
        "popularity_model",
        "bpr_model",
        "evaluation_report",
        "candidate_model",
        "deployment",
    } <= materialized(result)
    gates = gate_results(result)
    assert set(gates) == GATES and all(g.passed for g in gates.values())

    record = registry_of(home).production()
    assert record is not None and record.reason == "all deployment gates passed"
    report = result.output_for_node("evaluation_report")
    chosen = report.best_learned()
    assert (
        chosen.recommender
        == max((s for s in report.scores.values() if s.is_learned), key=lambda s: s.valid["ndcg@10"]).recommender
    )
    assert record.metrics == pytest.approx(chosen.test)
    assert all(chosen.test["ndcg@10"] > baseline.test["ndcg@10"] for baseline in report.baselines())
    bpr_materialization = next(
        m.materialization for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey("bpr_model")
    )
    assert "valid_ndcg@10" in bpr_materialization.metadata["sweep"].value
    assert bpr_materialization.metadata["trained_on"].value == "train+valid"
    metadata = registry_of(home).metadata(record.tag)
    assert metadata["data_version"] == result.output_for_node("dataset").version
    assert metadata["code_version"].startswith("src-")
    assert metadata["config"]["recommender"] == chosen.recommender
    assert metadata["trained_on"] == "train+valid"
    # The candidate was chosen on the validation score of its train-only fit, which the report keeps.
    assert metadata["valid_metrics"] == chosen.valid and chosen.valid["ndcg@10"] > 0.1


def test_one_invocation_builds_each_asset_once(deployed):
    """The ingestion before the pipeline loads the raw events only: the catalogs, dbt models and the
    online store it used to refresh are the pipeline's, so one ``recs-platform run`` builds them once."""
    home, result = deployed
    instance = dg.DagsterInstance.local_temp(str(home / "dagster"))
    ingestion = next(r for r in instance.get_run_records() if r.dagster_run.job_name == "ingest_events")
    assert ingestion.dagster_run.asset_selection == {dg.AssetKey(["raw", "events"])}
    for key in ("raw/items", "stg_events", "interactions", "online_store"):
        materializations = instance.fetch_materializations(dg.AssetKey.from_user_string(key), limit=10).records
        assert [m.run_id for m in materializations] == [result.run_id], key


def test_dbt_builds_leave_only_their_parse_state_behind(deployed):
    """Each dbt build ran in a target folder of its own under the home, removed after it; the last
    one's parse state stays for the next build, and nothing piled up inside the dbt project."""
    home, result = deployed
    assert [path.name for path in PlatformPaths(home).dbt_targets.iterdir()] == ["partial_parse.msgpack"]
    assert not list((REPO / "dbt_project" / "target").glob(f"*-{result.run_id[:7]}-*"))


def test_every_landed_event_file_is_an_ingested_partition(deployed):
    home, _ = deployed
    instance = dg.DagsterInstance.local_temp(str(home / "dagster"))
    partitions = instance.get_materialized_partitions(dg.AssetKey(["raw", "events"]))
    assert len(partitions) == 213
    assert "ml100k-1997-09-20.parquet" in partitions


def test_evaluation_suite_reports_beyond_accuracy_slices_significance_and_html(deployed):
    _, result = deployed
    suite = next(
        m.materialization.metadata
        for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey("evaluation_suite")
    )
    assert "map@10" in suite["accuracy"].value and "ndcg@20" in suite["accuracy"].value
    assert "novelty@10" in suite["beyond_accuracy"].value and "long_tail_share@10" in suite["beyond_accuracy"].value
    assert "cold" in suite["slices"].value and "activity_level" in suite["slices"].value
    assert "ci_low" in suite["significance"].value
    assert "data:image/png;base64," in suite["plot_metric_by_model"].value
    html = Path(suite["html_report"].value).read_text()
    assert "popularity" in html and "<img" in html


def test_raw_and_split_counts_match_movielens(deployed):
    home, _ = deployed
    with duckdb.connect(str(PlatformPaths(home).warehouse), read_only=True) as connection:
        events = connection.execute("select count(*) from raw.events").fetchone()[0]
        splits = dict(connection.execute("select split, count(*) from interaction_splits group by 1").fetchall())
    assert events == 100_000
    # RecBole's per-user 80/10/10 rule on MovieLens-100K (see dbt_project/models/marts/interaction_splits.sql).
    assert splits == {"train": 80_808, "valid": 9_596, "test": 9_596}


def test_run_files_let_anyone_recompute_the_metrics(deployed):
    _, result = deployed
    report = result.output_for_node("evaluation_report")
    from recs_platform.evaluation.evaluate import score_run

    for name, scores in report.scores.items():
        run = pd.read_parquet(Path(scores.run_dir) / "run.parquet")
        truth = pd.read_parquet(Path(scores.run_dir) / "ground_truth.parquet")
        assert list(run.columns) == ["user_id", "item_id", "rank", "score"]
        assert list(truth.columns) == ["user_id", "item_id"]
        recomputed = score_run(run, truth, k=10)
        assert recomputed["ndcg@10"].mean() == pytest.approx(scores.test["ndcg@10"]), name


def test_rerun_on_unchanged_inputs_registers_no_copy(deployed):
    home, _ = deployed
    before = registry_of(home).production()
    tags = registry_of(home).tags()
    result = run_pipeline(home, selection=["candidate_model", "deployment"])

    assert result.success
    status = next(
        m.materialization.metadata["deployment_status"].value
        for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey("deployment")
    )
    assert status == "already_serving"
    assert registry_of(home).tags() == tags
    assert registry_of(home).production() == before


def test_failing_gate_keeps_the_champion(deployed, monkeypatch):
    home, _ = deployed
    before = registry_of(home).production()
    monkeypatch.setenv("RECS_GATE_MIN_METRIC", "0.99")
    result = run_pipeline(home, run_config=FEW_EPOCHS)

    gates = gate_results(result)
    assert not gates["threshold"].passed
    assert "is below the threshold 0.9900" in gates["threshold"].description
    assert "deployment" not in materialized(result)
    assert registry_of(home).production() == before
    assert json.loads(PlatformPaths(home).aliases.read_text())["champion"]["tag"] == before.tag


def test_drift_check_compares_the_newest_data_with_the_production_training_data(deployed):
    home, first = deployed
    checks = {e.check_name: e for e in first.get_asset_check_evaluations()}
    assert checks["feature_drift_vs_production"].description == "no production model yet: nothing to compare with"
    result = run_pipeline(home, selection=["dataset"])
    drift = {e.check_name: e for e in result.get_asset_check_evaluations()}["feature_drift_vs_production"]
    psi_table = drift.metadata["newest_data_psi"].value
    assert "popularity_bucket" in psi_table and "age_bucket" in psi_table
    assert "data:image/png;base64," in drift.metadata["newest_data_plots"].value


def test_statistics_are_saved_next_to_the_dataset(deployed):
    _, result = deployed
    version = result.output_for_node("dataset")
    stats = json.loads((Path(version.path) / "statistics.json").read_text())
    train = {row["column"]: row for row in stats["train"]}
    assert train["user_id"]["distinct"] == 943 and train["user_id"]["missing"] == 0


def test_invalid_dataset_stops_everything_downstream(deployed):
    home, _ = deployed
    with duckdb.connect(str(PlatformPaths(home).warehouse)) as connection:
        connection.execute("create or replace table split_test as select * from split_test")
        connection.execute("insert into split_test values (999999, 1, timestamp '1998-01-01')")
    defs = build_definitions("ci", home)
    job = defs.resolve_implicit_global_asset_job_def()
    selection = [dg.AssetKey(k) for k in ("dataset", "popularity_model", "bpr_model", "evaluation_report")]
    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), asset_selection=selection, raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "dataset"
    metadata = failure.event_specific_data.error_display_string or ""
    assert "dataset validation failed" in metadata
    sample = failure.event_specific_data.user_failure_data.metadata["failure_sample"].value
    assert "999999" in sample and "user_id not in catalog" in sample
    assert materialized(result) == set()


def test_the_sensor_requests_nothing_for_files_the_in_process_run_ingested(deployed):
    """What ``make demo`` does: the graph ran in-process, then the daemon's sensor starts with an
    empty cursor on the same instance. It must launch nothing, and exactly one run for a new file."""
    home, _ = deployed
    defs = build_definitions("ci", home)
    instance = dg.DagsterInstance.local_temp(str(home / "dagster"))
    sensor = defs.resolve_sensor_def("landing_zone_sensor")
    resources = {name: defs.resources[name] for name in ("storage", "warehouse")}

    first = sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert isinstance(first, dg.SkipReason)

    landing = PlatformPaths(home).landing
    new_day = pd.DataFrame(
        {
            "user_id": [1],
            "item_id": [2],
            "event_type": ["rating"],
            "value": [4.0],
            "timestamp": [pd.Timestamp("1998-05-01")],
        }
    )
    path = write_landing_file(new_day, landing, "events", "ml100k-1998-05-01")
    try:
        second = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        (request,) = second.run_requests
        assert request.job_name == "ingest_events"
        assert request.tags["dagster/asset_partition_range_start"] == path.name
        assert second.dynamic_partitions_requests[0].partition_keys == [path.name]
    finally:
        path.unlink()
