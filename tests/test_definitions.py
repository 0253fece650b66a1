"""Definitions load, the lineage is complete, and the automation reacts to landed files."""

import dagster as dg
import pandas as pd
import pytest

from assets.automation import landing_zone_sensor
from assets.definitions import build_definitions
from recs_platform.cli import build_parser
from recs_platform.data.events import write_landing_file


@pytest.fixture
def defs(tmp_path, monkeypatch) -> dg.Definitions:
    monkeypatch.setenv("RECS_HOME", str(tmp_path))
    return build_definitions("ci", tmp_path)


def upstream_closure(graph, key: dg.AssetKey) -> set[str]:
    seen, frontier = set(), [key]
    while frontier:
        for parent in graph.get(frontier.pop()).parent_keys:
            if parent.to_user_string() not in seen:
                seen.add(parent.to_user_string())
                frontier.append(parent)
    return seen


def test_lineage_runs_from_landing_files_to_deployment(defs):
    graph = defs.resolve_asset_graph()
    upstream = upstream_closure(graph, dg.AssetKey("deployment"))
    assert {
        "landing_zone",
        "raw/events",
        "raw/users",
        "raw/items",
        "stg_events",
        "interactions",
        "user_features",
        "item_features",
        "split_train",
        "split_test",
        "dataset",
        "popularity_model",
        "bpr_model",
        "evaluation_report",
        "candidate_model",
    } <= upstream


def test_dbt_tests_are_asset_checks_and_gates_are_blocking(defs):
    graph = defs.resolve_asset_graph()
    checks = {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys}
    assert "unique_combination_split_train_user_id__item_id" in checks
    gates = {name: spec for name, spec in checks.items() if spec.asset_key == dg.AssetKey("candidate_model")}
    assert set(gates) == {"threshold", "beats_baselines", "no_regression"}
    assert all(spec.blocking for spec in gates.values())


def test_sensor_requests_one_run_per_batch_of_new_files(tmp_path, monkeypatch):
    monkeypatch.setenv("RECS_HOME", str(tmp_path))
    landing = tmp_path / "landing"
    frame = pd.DataFrame(
        {
            "user_id": [1],
            "item_id": [2],
            "event_type": ["click"],
            "value": [1.0],
            "timestamp": [pd.Timestamp("2024-01-01")],
        }
    )
    write_landing_file(frame, landing, "events", "2024-01-01")

    context = dg.build_sensor_context()
    first = landing_zone_sensor(context)
    assert isinstance(first, dg.RunRequest)
    cursor = context.cursor

    unchanged = landing_zone_sensor(dg.build_sensor_context(cursor=cursor))
    assert isinstance(unchanged, dg.SkipReason)

    write_landing_file(frame, landing, "events", "2024-01-02")
    second = landing_zone_sensor(dg.build_sensor_context(cursor=cursor))
    assert isinstance(second, dg.RunRequest)
    assert second.tags["landed_files"] == "1"
    assert second.run_key != first.run_key


def test_cli_help_documents_every_subcommand(capsys):
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = capsys.readouterr().out
    for command in ("import", "synth", "bootstrap", "run", "serve", "status", "rollback", "demo"):
        assert command in text
