"""PostgreSQL by configuration, against a real server on loopback (tests/postgres_server.py): the
Dagster instance of config/dagster/postgres.yaml records a job's run and events (SQLite stays the
embedded default), and the dbt project builds on the `postgres` target with the same results as
on DuckDB."""

import logging
import os
import shutil
import subprocess
import sys
import time
from contextlib import closing
from datetime import datetime
from pathlib import Path

import dagster as dg
import dagster._daemon.monitoring.run_monitoring as run_monitoring
import pytest
import yaml
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.test_utils import create_run_for_test
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage
from postgres_server import running_postgres
from psycopg2.extras import execute_values

from assets.definitions import build_definitions
from recs_platform.data import synthetic, warehouse
from recs_platform.data.contract import default_contract
from recs_platform.data.ingestion import ingest_landing
from recs_platform.settings import PlatformPaths

REPO = Path(__file__).resolve().parent.parent
EMBEDDED = REPO / "dagster_home" / "dagster.yaml"
PRODUCTION = REPO / "config" / "dagster" / "postgres.yaml"
DBT_PROJECT = REPO / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
RAW_TABLES = ("events", "users", "items", "served_impressions")
CATALOGS = [dg.AssetKey(["raw", "users"]), dg.AssetKey(["raw", "items"])]


@pytest.fixture(scope="module")
def postgres():
    with running_postgres() as server:
        yield server


def instance_home(folder: Path, config: Path) -> Path:
    folder.mkdir()
    shutil.copy(config, folder / "dagster.yaml")
    return folder


def test_sqlite_stays_the_embedded_default(tmp_path):
    with dg.DagsterInstance.from_config(str(instance_home(tmp_path / "dagster", EMBEDDED))) as instance:
        assert isinstance(instance.run_storage, SqliteRunStorage)


def test_a_run_whose_worker_never_came_up_is_failed_rather_than_left_starting(tmp_path, monkeypatch):
    """As when the demo is stopped while a scheduled run is being launched: the daemon's run
    monitoring, on by the instance's configuration, fails it after the start timeout."""
    with dg.DagsterInstance.from_config(str(instance_home(tmp_path / "dagster", EMBEDDED))) as instance:
        run = create_run_for_test(instance, job_name="check_freshness")
        starting = DagsterEvent(DagsterEventType.RUN_STARTING.value, job_name=run.job_name)
        instance.report_dagster_event(starting, run.run_id)
        record = instance.get_run_records(dg.RunsFilter(run_ids=[run.run_id]))[0]
        run_monitoring.monitor_starting_run(instance, record, logging.getLogger(__name__))
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTING  # still within the timeout
        later = time.time() + instance.run_monitoring_start_timeout_seconds + 1
        monkeypatch.setattr(run_monitoring, "get_current_timestamp", lambda: later)
        run_monitoring.monitor_starting_run(instance, record, logging.getLogger(__name__))
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE


def test_the_production_instance_differs_from_the_embedded_one_only_in_storage():
    embedded, production = yaml.safe_load(EMBEDDED.read_text()), yaml.safe_load(PRODUCTION.read_text())
    assert set(production.pop("storage")) == {"postgres"}
    assert production == embedded


def test_a_job_on_the_postgres_instance_records_its_run_and_events(postgres, tmp_path, monkeypatch):
    database = postgres.create_database("dagster")
    for name, value in {
        "DAGSTER_PG_HOST": postgres.host,
        "DAGSTER_PG_PORT": postgres.port,
        "DAGSTER_PG_USER": postgres.user,
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": database,
    }.items():
        monkeypatch.setenv(name, str(value))
    dagster_home = instance_home(tmp_path / "dagster", PRODUCTION)
    home = tmp_path / "home"
    config = synthetic.SyntheticConfig(n_users=40, n_items=30, n_events=400, days=2, seed=7)
    synthetic.write_to_landing(synthetic.generate(config), PlatformPaths(home).landing)

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        job = build_definitions("ci", home).resolve_job_def("recs_pipeline")
        run_id = job.execute_in_process(instance=instance, asset_selection=CATALOGS).run_id

    # A fresh instance (another process would do the same) reads the run back from PostgreSQL.
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
        events = [entry.dagster_event for entry in instance.all_logs(run_id) if entry.dagster_event]
        assert {e.asset_key for e in events if e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION} == set(
            CATALOGS
        )
        assert instance.get_latest_materialization_event(CATALOGS[0]).run_id == run_id
    with closing(postgres.connect(database)) as connection, connection.cursor() as cursor:
        cursor.execute("select count(*) from event_logs where run_id = %s", [run_id])
        assert cursor.fetchone()[0] == len(events)


def dbt_run(target: str, target_path: Path, env: dict[str, str], *extra: str) -> None:
    command = [str(DBT), "run", "--full-refresh", "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT)]
    command += ["--target", target, "--target-path", str(target_path), "--log-path", str(target_path / "logs"), *extra]
    completed = subprocess.run(
        command, env={**os.environ, **env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stdout[-4000:]


def raw_layer_in_duckdb(home: Path) -> Path:
    """A small raw layer as the platform's ingestion writes it, plus two served requests."""
    config = synthetic.SyntheticConfig(n_users=60, n_items=80, n_events=1200, days=4, seed=11)
    synthetic.write_to_landing(synthetic.generate(config), PlatformPaths(home).landing)
    path = PlatformPaths(home).warehouse
    with warehouse.connect(path) as connection:
        ingest_landing(connection, PlatformPaths(home).landing, contract=default_contract())
        first_user, first_item, served_at = connection.execute(
            "select user_id, item_id, min(timestamp) from raw.events group by all order by 3 limit 1"
        ).fetchone()
        connection.executemany(
            "insert into raw.served_impressions (request_id, served_by, served_at, user_id, k, model_version, "
            "source, history_items, item_ids, scores, source_file, ingested_at) values (?, ?, ?, ?, 3, 'v1', 'model', "
            "?, ?, ?, 'log-1', ?)",
            [
                ["r1", "champion", served_at, first_user, [first_item], [first_item, 7, 8], [0.9, 0.5, 0.1], served_at],
                ["r1", "challenger", served_at, first_user, None, [8, first_item], [0.7, 0.6], datetime(2030, 1, 1)],
            ],
        )
    return path


def postgres_raw_schema() -> str:
    """The raw tables of the default contract, with PostgreSQL's name for DuckDB's double."""
    tables = warehouse.raw_table_columns(default_contract())
    return "create schema raw;" + "".join(
        f"create table raw.{table} ("
        + ", ".join(f'"{name}" {sql_type.replace("double", "double precision")}' for name, sql_type in columns.items())
        + ");"
        for table, columns in tables.items()
    )


def copy_raw_layer(duckdb_path: Path, postgres, database: str) -> None:
    """The raw tables, row for row."""
    ddl = postgres_raw_schema()
    with (
        warehouse.connect(duckdb_path, read_only=True) as source,
        closing(postgres.connect(database)) as target,
        target,  # one transaction
        target.cursor() as cursor,
    ):
        cursor.execute(ddl)
        for table in RAW_TABLES:
            columns = ", ".join(f'"{name}"' for name in warehouse.raw_table_columns(default_contract())[table])
            rows = source.execute(f"select {columns} from raw.{table}").fetchall()
            if rows:
                execute_values(cursor, f"insert into raw.{table} ({columns}) values %s", rows)


def test_the_dbt_project_builds_on_postgres_with_the_results_it_has_on_duckdb(postgres, tmp_path):
    duckdb_path = raw_layer_in_duckdb(tmp_path / "home")
    database = postgres.create_database("warehouse")
    copy_raw_layer(duckdb_path, postgres, database)

    duck_env = {"RECS_WAREHOUSE_PATH": str(duckdb_path), "DBT_TARGET": "local"}
    pg_env = {"RECS_PG_HOST": postgres.host, "RECS_PG_PORT": str(postgres.port), "RECS_PG_DATABASE": database}
    pg_env["RECS_PG_USER"] = postgres.user
    dbt_run("local", tmp_path / "duckdb-target", duck_env)
    dbt_run("postgres", tmp_path / "postgres-target", pg_env)
    assert_same_answers(duckdb_path, postgres, database, COMPARED)

    # The temporal protocol's quantile cutoffs too.
    temporal = ("--select", "interaction_splits", "split_cutoffs", "--vars", "{split_protocol: temporal}")
    dbt_run("local", tmp_path / "duckdb-target", duck_env, *temporal)
    dbt_run("postgres", tmp_path / "postgres-target", pg_env, *temporal)
    assert_same_answers(duckdb_path, postgres, database, [*COMPARED[:1], TEMPORAL_CUTOFFS])


def assert_same_answers(duckdb_path: Path, postgres, database: str, queries: list[str]) -> None:
    with warehouse.connect(duckdb_path, read_only=True) as duck, closing(postgres.connect(database)) as pg:
        for query in queries:
            expected = duck.execute(query).fetchall()
            with pg.cursor() as cursor:
                cursor.execute(query)
                assert normalized(cursor.fetchall()) == normalized(expected), query
            assert expected, query


# Queries both engines answer alike, over every model's dialect-specific columns.
COMPARED = [
    "select split, user_id, item_id from main.interaction_splits order by 2, 3",
    "select user_id, n_interactions, days_since_last_interaction, age_bucket, activity_level "
    "from main.user_features order by 1",
    "select item_id, release_year, genres_list, genres, item_age_days, n_interactions, popularity_rank "
    "from main.item_features order by 1",
    "select user_id, item_sequence, sequence_length from main.user_histories order by 1",
    "select user_id, item_id, n_events, last_value from main.interactions order by 1, 2",
    "select request_id, served_by, position, item_id, score from main.impressions order by 1, 2, 3",
    "select served_by, position, consumed, hours_to_consume, window_closed from main.attributed_feedback order by 1, 2",
    "select request_id, served_by, history_length from main.stg_serving_requests order by 1, 2",
    "select split_protocol, n_train, n_valid, n_test from main.split_cutoffs",
]


TEMPORAL_CUTOFFS = "select split_protocol, valid_cutoff, test_cutoff, n_train, n_valid, n_test from main.split_cutoffs"


def normalized(rows: list[tuple]) -> list[tuple]:
    """Numbers as floats rounded to 1e-9 (Decimal and int across engines), lists as tuples."""

    def value(v):
        if isinstance(v, list):
            return tuple(value(x) for x in v)
        if (isinstance(v, (int, float)) and not isinstance(v, bool)) or type(v).__name__ == "Decimal":
            return round(float(v), 9)
        return v

    return [tuple(value(v) for v in row) for row in rows]
