"""One setting names the platform's metric: ``GateSettings.metric`` (``RECS_GATE_METRIC``) drives
early stopping, sweep selection, the candidate choice, the gates and the reports.

The whole graph runs in-process on a small synthetic dataset with ``recall@10``; every place that
used to say ``ndcg@10`` must now say, and choose by, ``recall@10``.
"""

from pathlib import Path

import dagster as dg
import pytest

from assets.definitions import build_definitions
from assets.runner import materialize_all
from recs_platform.data import synthetic
from recs_platform.models.base import load_recommender
from recs_platform.settings import PlatformPaths

METRIC = "recall@10"
FEW_EPOCHS = {
    "ops": {
        "bpr_model": {
            "ops": {"bpr_configurations": {"config": {"override_params_json": '{"epochs": 4, "eval_every": 2}'}}}
        }
    }
}


@pytest.fixture(scope="module")
def recall_run(tmp_path_factory) -> tuple[dg.ExecuteInProcessResult, dg.DagsterInstance]:
    home = tmp_path_factory.mktemp("recall-home")
    config = synthetic.SyntheticConfig(n_users=150, n_items=200, n_events=6000, days=20, seed=3)
    synthetic.write_to_landing(synthetic.generate(config), PlatformPaths(home).landing)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECS_GATE_METRIC", METRIC)
        patch.setenv("RECS_GATE_MIN_METRIC", "0.0")
        defs = build_definitions("ci", home)
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_all(defs, instance, PlatformPaths(home), FEW_EPOCHS)
    assert result.success
    return result, instance


def metadata_of(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    key = dg.AssetKey.from_user_string(asset)
    return next(e.materialization.metadata for e in result.get_asset_materialization_events() if e.asset_key == key)


def test_sweeps_select_and_stop_early_on_the_configured_metric(recall_run):
    recall_run, instance = recall_run
    for model in ("ease", "dlae", "bpr"):
        metadata = metadata_of(recall_run, f"{model}_model")
        assert f"valid_{METRIC}" in metadata and "valid_ndcg@10" not in metadata
        table = metadata["sweep"].value
        header = [cell.strip() for cell in table.splitlines()[0].strip("|").split("|")]
        rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]
        scores = [float(row[header.index(f"valid_{METRIC}")]) for row in rows]
        assert scores == sorted(scores, reverse=True)  # the table is ranked by the metric
        assert metadata["chosen_config"].value == rows[0][header.index("config_id")]
    # BPR's early stopping scored recall, not NDCG, at every validation epoch.
    messages = [entry.user_message for entry in instance.all_logs(recall_run.run_id)]
    validated = [message for message in messages if message.startswith("bpr epoch") and ", valid " in message]
    assert validated and all(f"valid {METRIC}" in message for message in validated)
    assert not [message for message in messages if "valid ndcg@10" in message]


def test_candidate_gates_and_reports_use_the_configured_metric(recall_run):
    recall_run, _ = recall_run
    report = recall_run.output_for_node("evaluation_report")
    assert report.metric == METRIC
    learned = [s for s in report.scores.values() if s.is_learned]
    candidate = recall_run.output_for_node("candidate_model")
    assert candidate.scores.recommender == max(learned, key=lambda s: s.valid[METRIC]).recommender
    assert f"test_{METRIC}" in metadata_of(recall_run, "candidate_model")
    evaluations = recall_run.get_asset_check_evaluations()
    gates = {e.check_name: e for e in evaluations if e.asset_key.path == ["candidate_model"]}
    assert set(gates) == {"threshold", "beats_baselines", "no_regression"}
    assert all(f"test {METRIC}" in gates[name].description for name in ("threshold", "beats_baselines"))
    table = report.table("test")
    assert table[METRIC].tolist() == sorted(table[METRIC], reverse=True)
    suite = metadata_of(recall_run, "evaluation_suite")
    assert METRIC in suite["significance"].value and "ndcg@10" not in suite["significance"].value
    deployed = metadata_of(recall_run, "deployment")
    assert deployed["deployment_status"].value == "deployed"
    served = load_recommender(Path(candidate.scores.artifact_path))
    assert served.name == candidate.scores.recommender


def test_an_unknown_metric_fails_at_definitions_load(tmp_path, monkeypatch):
    monkeypatch.setenv("RECS_GATE_METRIC", "ndgc@10")
    with pytest.raises(Exception, match="ndgc@10"):
        build_definitions("ci", tmp_path)
