"""Definitions load, the lineage is complete, and the automation reacts to landed files."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from assets.automation import landing_zone_sensor
from assets.cli import add_graph_commands
from assets.definitions import build_definitions
from assets.resources import StorageResource, WarehouseResource
from recs_platform.cli import build_parser
from recs_platform.data import warehouse
from recs_platform.data.contract import contract_for_home
from recs_platform.data.events import write_landing_file
from recs_platform.data.ingestion import ingest_landing
from recs_platform.settings import PlatformPaths


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


def sensor_context(home: Path, instance: dg.DagsterInstance, cursor: str | None = None) -> dg.SensorEvaluationContext:
    resources = {
        "storage": StorageResource(home=str(home)),
        "warehouse": WarehouseResource(path=str(PlatformPaths(home).warehouse)),
    }
    return dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)


def _event(day: str) -> pd.DataFrame:
    return pd.DataFrame(
        {"user_id": [1], "item_id": [2], "event_type": ["click"], "value": [1.0], "timestamp": [pd.Timestamp(day)]}
    )


def test_sensor_adds_a_partition_per_new_file_and_ingests_only_new_files(tmp_path, monkeypatch):
    monkeypatch.setenv("RECS_HOME", str(tmp_path))
    landing = tmp_path / "landing"
    instance = dg.DagsterInstance.ephemeral()
    write_landing_file(_event("2024-01-01"), landing, "events", "2024-01-01")
    write_landing_file(_event("2024-01-02"), landing, "events", "2024-01-02")

    context = sensor_context(tmp_path, instance)
    first = landing_zone_sensor(context)
    assert first.dynamic_partitions_requests[0].partition_keys == ["2024-01-01.parquet", "2024-01-02.parquet"]
    (request,) = first.run_requests
    assert request.job_name == "ingest_events"
    assert request.tags["dagster/asset_partition_range_start"] == "2024-01-01.parquet"
    assert request.tags["dagster/asset_partition_range_end"] == "2024-01-02.parquet"
    instance.add_dynamic_partitions("landed_event_files", first.dynamic_partitions_requests[0].partition_keys)
    cursor = context.cursor

    assert isinstance(landing_zone_sensor(sensor_context(tmp_path, instance, cursor)), dg.SkipReason)

    write_landing_file(_event("2024-01-03"), landing, "events", "2024-01-03")
    second = landing_zone_sensor(sensor_context(tmp_path, instance, cursor))
    assert second.dynamic_partitions_requests[0].partition_keys == ["2024-01-03.parquet"]
    (only,) = second.run_requests
    assert only.tags["dagster/asset_partition_range_start"] == "2024-01-03.parquet"
    assert only.tags["landed_files"] == "1"


@pytest.fixture
def one_file_seen(tmp_path, monkeypatch) -> tuple[Path, dg.DagsterInstance, str]:
    """A landing zone with one ingested event file, and the sensor cursor after seeing it."""
    monkeypatch.setenv("RECS_HOME", str(tmp_path))
    landing = tmp_path / "landing"
    instance = dg.DagsterInstance.ephemeral()
    write_landing_file(_event("2024-01-01"), landing, "events", "2024-01-01")
    context = sensor_context(tmp_path, instance)
    landing_zone_sensor(context)
    instance.add_dynamic_partitions("landed_event_files", ["2024-01-01.parquet"])
    return landing, instance, context.cursor


def test_sensor_reingests_a_rewritten_file_as_its_own_partition(one_file_seen, tmp_path):
    landing, instance, cursor = one_file_seen

    write_landing_file(pd.concat([_event("2024-01-01")] * 2), landing, "events", "2024-01-01")
    context = sensor_context(tmp_path, instance, cursor)
    result = landing_zone_sensor(context)
    assert not result.dynamic_partitions_requests
    (request,) = result.run_requests
    assert request.partition_key == "2024-01-01.parquet"
    # The next tick does not ask again for the run it already requested.
    assert isinstance(landing_zone_sensor(sensor_context(tmp_path, instance, context.cursor)), dg.SkipReason)


def test_sensor_ignores_a_file_rewritten_with_identical_bytes(one_file_seen, tmp_path):
    landing, instance, cursor = one_file_seen

    write_landing_file(_event("2024-01-01"), landing, "events", "2024-01-01")  # same content, new mtime
    result = landing_zone_sensor(sensor_context(tmp_path, instance, cursor))
    assert isinstance(result, dg.SkipReason)


def test_sensor_skips_files_ingested_outside_it_even_with_an_empty_cursor(tmp_path, monkeypatch):
    """The warehouse's ledger, not the sensor's memory, says what is ingested: a file loaded by an
    in-process run (or a daemon whose cursor was lost) is never requested again."""
    monkeypatch.setenv("RECS_HOME", str(tmp_path))
    landing = PlatformPaths(tmp_path).landing
    for day in ("2024-01-01", "2024-01-02"):
        write_landing_file(_event(day), landing, "events", day)
    with warehouse.connect(PlatformPaths(tmp_path).warehouse) as connection:
        ingest_landing(connection, landing, contract=contract_for_home(tmp_path))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("landed_event_files", ["2024-01-01.parquet", "2024-01-02.parquet"])
    assert isinstance(landing_zone_sensor(sensor_context(tmp_path, instance)), dg.SkipReason)

    write_landing_file(pd.concat([_event("2024-01-02")] * 2), landing, "events", "2024-01-02")  # re-landed
    write_landing_file(_event("2024-01-03"), landing, "events", "2024-01-03")  # new
    result = landing_zone_sensor(sensor_context(tmp_path, instance))
    requested = sorted(r.partition_key or r.tags["dagster/asset_partition_range_start"] for r in result.run_requests)
    assert requested == ["2024-01-02.parquet", "2024-01-03.parquet"]
    assert result.dynamic_partitions_requests[0].partition_keys == ["2024-01-03.parquet"]


def test_sensor_waits_while_the_warehouse_is_locked(tmp_path, monkeypatch):
    from assets import automation

    def busy(path):
        raise warehouse.WarehouseBusy("locked")

    monkeypatch.setattr(automation, "ingested_hashes", busy)
    write_landing_file(_event("2024-01-01"), PlatformPaths(tmp_path).landing, "events", "2024-01-01")
    result = landing_zone_sensor(sensor_context(tmp_path, dg.DagsterInstance.ephemeral()))
    assert isinstance(result, dg.SkipReason) and "busy" in result.skip_message


def test_sensor_reruns_the_pipeline_when_a_catalog_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("RECS_HOME", str(tmp_path))
    users = pd.DataFrame({"user_id": [1], "age": [30], "gender": ["F"], "occupation": ["x"], "zip_code": ["1"]})
    write_landing_file(users, tmp_path / "landing", "users", "users")
    result = landing_zone_sensor(sensor_context(tmp_path, dg.DagsterInstance.ephemeral()))
    assert [r.job_name for r in result.run_requests] == ["recs_pipeline"]


def test_cli_help_documents_every_subcommand(capsys):
    parser = build_parser(add_graph_commands)
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = capsys.readouterr().out
    for command in ("import", "synth", "bootstrap", "run", "serve", "status", "rollback", "demo"):
        assert command in text


def test_next_item_evaluation_exists_only_with_a_sequential_model(tmp_path, monkeypatch):
    from assets.resources import CONFIG_DIR

    monkeypatch.setenv("RECS_HOME", str(tmp_path))
    assert (
        dg.AssetKey("next_item_evaluation")
        not in build_definitions("ci", tmp_path).resolve_asset_graph().get_all_asset_keys()
    )
    monkeypatch.setenv("RECS_SWEEPS", f"{CONFIG_DIR / 'recommenders'}:{CONFIG_DIR / 'recommenders.neural'}")
    graph = build_definitions("dev", tmp_path).resolve_asset_graph()
    parents = {key.to_user_string() for key in graph.get(dg.AssetKey("next_item_evaluation")).parent_keys}
    assert parents == {"dataset", "sasrec_model", "popularity_model", "bpr_model"}


def test_the_dbt_resource_knows_its_cli_version_without_running_dbt(monkeypatch):
    """The version dagster-dbt asks ``dbt --version`` for at every dbt step is the installed one."""
    import subprocess

    import dagster_dbt.core.resource
    from packaging import version

    from assets.dbt_project import DBT_EXECUTABLE, LocalDbtCliResource, dbt_project

    answer = subprocess.run([DBT_EXECUTABLE, "--version"], capture_output=True, text=True, check=True).stdout
    cli_version = version.parse(answer.split("installed:")[1].split()[0])

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"ran {args}")

    monkeypatch.setattr(dagster_dbt.core.resource, "check_output", no_subprocess)
    resource = LocalDbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)
    assert resource._cli_version == cli_version
