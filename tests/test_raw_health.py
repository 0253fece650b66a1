"""Quarantine-rate and freshness checks, as library functions and as Dagster asset checks."""

from datetime import datetime, timedelta

import dagster as dg
import pandas as pd
import pytest

from assets.definitions import build_definitions
from recs_platform.data.contract import load_contract
from recs_platform.data.events import write_landing_file
from recs_platform.data.ingestion import ingest_landing
from recs_platform.data.warehouse import connect, ensure_raw_schema
from recs_platform.monitoring.raw_health import events_freshness, quarantine_rates

LANDED_AT = datetime(2024, 3, 1, 12, 0)


def _events(n: int, bad: int = 0, item: int = 7) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "user_id": range(1, n + 1),
            "item_id": [item] * n,
            "event_type": ["click"] * (n - bad) + ["teleport"] * bad,
            "value": [1.0] * n,
            "timestamp": [pd.Timestamp("2024-02-28")] * n,
        }
    )
    return frame


@pytest.fixture
def warehouse(tmp_path):
    write_landing_file(_events(4, bad=1), tmp_path / "landing", "events", "day1")
    write_landing_file(_events(10, item=8), tmp_path / "landing", "events", "day2")
    with connect(tmp_path / "wh.duckdb") as connection:
        ingest_landing(connection, tmp_path / "landing", now=LANDED_AT, contract=load_contract("movielens"))
        yield connection


def test_quarantine_rate_per_file(warehouse):
    rates = quarantine_rates(warehouse).set_index("source_file").quarantine_rate
    assert rates["events/day1.parquet"] == pytest.approx(0.25)
    assert rates["events/day2.parquet"] == 0.0


def test_freshness_passes_inside_and_fails_outside_the_window(warehouse):
    window = timedelta(hours=24)
    fresh = events_freshness(warehouse, LANDED_AT + timedelta(hours=2), window)
    stale = events_freshness(warehouse, LANDED_AT + timedelta(hours=30), window)
    assert fresh.fresh and "within" in fresh.describe()
    assert not stale.fresh and "OUTSIDE" in stale.describe()
    assert stale.newest_event_at == datetime(2024, 2, 28)


def test_freshness_fails_before_anything_landed(tmp_path):
    with connect(tmp_path / "wh.duckdb") as connection:
        ensure_raw_schema(connection, load_contract("movielens"))
        result = events_freshness(connection, LANDED_AT, timedelta(hours=1))
    assert not result.fresh and result.describe() == "no events have ever landed"


def _ingest_partition(home, key: str) -> dg.ExecuteInProcessResult:
    """Only raw/events (and its checks) of the ``ingest_events`` job: these landing zones hold no
    catalogs, so the online store downstream has nothing to build from."""
    defs = build_definitions("ci", home)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("landed_event_files", [key])
    job = defs.resolve_job_def("ingest_events")
    return job.execute_in_process(
        instance=instance, partition_key=key, raise_on_error=False, asset_selection=[dg.AssetKey(["raw", "events"])]
    )


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_ingestion_run_reports_counts_and_flags_a_dirty_file(tmp_path, monkeypatch):
    monkeypatch.setenv("RECS_MAX_QUARANTINE_RATE", "0.1")
    write_landing_file(_events(4, bad=1), tmp_path / "landing", "events", "dirty")
    result = _ingest_partition(tmp_path, "dirty.parquet")

    (materialization,) = result.get_asset_materialization_events()
    metadata = materialization.materialization.metadata
    assert (metadata["rows_in"].value, metadata["rows_loaded"].value, metadata["rows_quarantined"].value) == (4, 3, 1)
    checks = _checks(result)
    assert not checks["quarantine_rate"].passed
    assert "1 of 1 files above 10.0%" in checks["quarantine_rate"].description
    assert checks["events_are_fresh"].passed


def test_freshness_check_alarms_when_events_stop_landing(tmp_path, monkeypatch):
    write_landing_file(_events(3), tmp_path / "landing", "events", "day1")
    assert _ingest_partition(tmp_path, "day1.parquet").success
    monkeypatch.setenv("RECS_FRESHNESS_WINDOW_HOURS", "0")
    result = (
        build_definitions("ci", tmp_path)
        .resolve_job_def("check_freshness")
        .execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    )
    check = _checks(result)["events_are_fresh"]
    assert not check.passed and "OUTSIDE" in check.description
