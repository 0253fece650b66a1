"""PostgreSQL by configuration, against a real server on loopback (tests/postgres_server.py): the
Dagster instance of config/dagster/postgres.yaml records a job's run and events; SQLite stays the
embedded default."""

import shutil
from contextlib import closing
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.storage.runs import SqliteRunStorage
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage
from postgres_server import running_postgres

from assets.definitions import build_definitions
from recs_platform.data import synthetic
from recs_platform.settings import PlatformPaths

REPO = Path(__file__).resolve().parent.parent
EMBEDDED = REPO / "dagster_home" / "dagster.yaml"
PRODUCTION = REPO / "config" / "dagster" / "postgres.yaml"
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
