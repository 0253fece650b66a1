"""Fast checks of the DuckDB (Parquet) ingestion path: same reasons as the text path, cross-file
duplicate ids, and row accounting on a synthetic landing zone. The timing runs live in
bench/ingestion_scale.py."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recs_platform.data import ingestion
from recs_platform.data.contract import load_contract
from recs_platform.data.ingestion import CROSS_FILE_DUPLICATE, ingest_landing
from recs_platform.data.synthetic import SyntheticConfig, generate, write_to_landing
from recs_platform.data.warehouse import connect, ensure_raw_schema

NOW = datetime(2024, 6, 1, 12, 0, 0)
MOVIELENS = load_contract("movielens")

# Malformed and good rows that Parquet can carry with plain column types; None/NaN are missing.
ROWS = [
    {"event_id": "e1", "user_id": 1.0, "item_id": 10.0, "event_type": "click", "value": None, "timestamp": 1704067200},
    {"event_id": "e2", "user_id": None, "item_id": 10.0, "event_type": "click", "value": None, "timestamp": 1704067200},
    {"event_id": "e3", "user_id": 1.0, "item_id": None, "event_type": None, "value": None, "timestamp": None},
    {"event_id": "e4", "user_id": 1.0, "item_id": 10.0, "event_type": None, "value": None, "timestamp": 1704067200},
    {"event_id": "e5", "user_id": 1.0, "item_id": 20.0, "event_type": "click", "value": None, "timestamp": None},
    {"event_id": "e6", "user_id": 1.0, "item_id": 10.0, "event_type": "teleport", "value": None, "timestamp": 1704067200},  # noqa: E501
    {"event_id": "e7", "user_id": 1.0, "item_id": 10.0, "event_type": " PLAY ", "value": 3.0, "timestamp": 1704067200},
    {"event_id": "e8", "user_id": 1.0, "item_id": 10.0, "event_type": "click", "value": None, "timestamp": -86400},
    {"event_id": "e9", "user_id": 1.0, "item_id": 10.0, "event_type": "click", "value": None, "timestamp": 4102444800},
    {"event_id": "e10", "user_id": 1.0, "item_id": 10.0, "event_type": "click", "value": None, "timestamp": 10**12},
    {"event_id": "e1", "user_id": 2.0, "item_id": 20.0, "event_type": "view", "value": None, "timestamp": 1704153600},
    {"event_id": None, "user_id": 3.0, "item_id": 30.0, "event_type": "view", "value": 1.0, "timestamp": 1704153600},
    {"event_id": None, "user_id": 3.0, "item_id": 30.0, "event_type": "view", "value": 1.0, "timestamp": 1704153600},
    {"event_id": "e2", "user_id": 4.0, "item_id": 40.0, "event_type": "rating", "value": 4.0, "timestamp": 1704240000},
]  # fmt: skip
EXPECTED = [
    None,
    "missing field user_id",
    "missing field item_id",
    "missing field event_type",
    "missing field timestamp",
    "unknown event_type",
    None,
    "timestamp is before 1970",
    "timestamp is in the future",
    "timestamp is not parsable",
    "duplicated event_id",
    None,
    "duplicated event_id",  # same content, so the same derived id
    "duplicated event_id",  # e2's first row was rejected, but its id still counts
]


def frame() -> pd.DataFrame:
    rows = pd.DataFrame(ROWS)
    for column in ("user_id", "item_id", "timestamp"):  # integer columns with nulls, as Parquet holds them
        rows[column] = rows[column].astype("Int64")
    rows["device"] = ["ios", None, "web", None, None, None, "tv", None, None, None, None, "ios", None, None]
    return rows


def write_parquet(landing: Path, name: str, rows: pd.DataFrame) -> Path:
    path = landing / "events" / f"{name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(path, index=False)
    return path


def write_jsonl(landing: Path, name: str, rows: pd.DataFrame) -> Path:
    path = landing / "events" / f"{name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for row in rows.to_dict(orient="records"):
        row = {
            k: (None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else v)
            for k, v in row.items()
        }
        lines.append(
            json.dumps({k: (int(v) if isinstance(v, np.integer) else v) for k, v in row.items() if v is not None})
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def ingest_one(tmp_path: Path, writer, name: str, force_pandas=False, monkeypatch=None, rows=None, contract=MOVIELENS):
    landing = tmp_path / name
    writer(landing, name, frame() if rows is None else rows)
    if force_pandas:
        monkeypatch.setattr(ingestion, "_parquet_events_plan", lambda connection, path, contract: None)
    with connect(tmp_path / f"{name}.duckdb") as connection:
        [report] = ingest_landing(connection, landing, kinds=("events",), now=NOW, contract=contract)
        quarantine = connection.execute("select line_number, reason from raw.quarantine order by 1").fetchall()
        events = connection.execute(
            'select event_id, user_id, item_id, event_type, value, "timestamp", context from raw.events '
            "order by user_id, event_id"
        ).df()
    if force_pandas:
        monkeypatch.undo()
    return report, dict(quarantine), events


def test_parquet_fast_path_is_taken_for_plain_types(tmp_path):
    path = write_parquet(tmp_path, "plain", frame())
    with connect(tmp_path / "w.duckdb") as connection:
        assert ingestion._parquet_events_plan(connection, path, MOVIELENS) is not None


def test_parquet_fast_path_and_text_paths_give_the_same_reasons_and_rows(tmp_path, monkeypatch):
    expected = {line: reason for line, reason in enumerate(EXPECTED, start=1) if reason}
    fast = ingest_one(tmp_path, write_parquet, "fast")
    slow = ingest_one(tmp_path, write_parquet, "slow", force_pandas=True, monkeypatch=monkeypatch)
    text = ingest_one(tmp_path, write_jsonl, "text")
    for report, quarantine, _ in (fast, slow, text):
        assert quarantine == expected
        assert report.rows_in == report.rows_loaded + report.rows_quarantined == len(ROWS)
    assert fast[0].reasons == slow[0].reasons == text[0].reasons
    for other in (slow[2], text[2]):
        pd.testing.assert_frame_equal(fast[2].drop(columns="context"), other.drop(columns="context"))
        assert [json.loads(c) for c in fast[2].context] == [json.loads(c) for c in other.context]
    assert set(fast[2].event_type) == {"click", "play", "view"}


def same_on_every_path(tmp_path, monkeypatch, rows: pd.DataFrame, contract) -> tuple:
    """Ingest ``rows`` as Parquet (fast path), as Parquet through pandas, and as JSON lines; the
    quarantine and the loaded events must agree. Returns the fast path's (report, quarantine, events)."""
    fast = ingest_one(tmp_path, write_parquet, "fast", rows=rows, contract=contract)
    slow = ingest_one(tmp_path, write_parquet, "slow", True, monkeypatch, rows=rows, contract=contract)
    text = ingest_one(tmp_path, write_jsonl, "text", rows=rows, contract=contract)
    for report, quarantine, events in (slow, text):
        assert quarantine == fast[1] and report.reasons == fast[0].reasons
        pd.testing.assert_frame_equal(events.drop(columns="context"), fast[2].drop(columns="context"))
    return fast


def test_float_and_boolean_ids_are_not_integer_ids_on_any_path(tmp_path, monkeypatch):
    """3.0 is a float, not the id 3: a float or boolean id column quarantines its rows, never rounds."""
    rows = pd.DataFrame(
        {
            "event_id": ["f1", "f2", "f3"],
            "user_id": [3.0, 1.5, None],
            "item_id": pd.array([10, 11, 12], dtype="Int64"),
            "event_type": "click",
            "timestamp": pd.array([1704067200] * 3, dtype="Int64"),
        }
    )
    report, quarantine, events = same_on_every_path(tmp_path, monkeypatch, rows, MOVIELENS)
    assert quarantine == {1: "user_id is not an integer", 2: "user_id is not an integer", 3: "missing field user_id"}
    assert events.empty and report.rows_in == 3
    flags = rows.assign(user_id=[True, False, None], event_id=["b1", "b2", "b3"])
    report, quarantine, events = same_on_every_path(tmp_path / "bools", monkeypatch, flags, MOVIELENS)
    assert quarantine == {1: "user_id is not an integer", 2: "user_id is not an integer", 3: "missing field user_id"}


def test_string_ids_are_checked_alike_on_every_path(tmp_path, monkeypatch):
    """String-id contract: ids are kept exactly as written; blank, over-long or control-character ids
    are quarantined with the same reason by the DuckDB and the pandas paths."""
    shop = load_contract("shop")
    ids = ["sku-1", " spaced ", "", "   ", "x" * 257, "tab\there", "ünï-✓", "x" * 256, None]
    rows = pd.DataFrame(
        {
            "event_id": [f"s{i}" for i in range(len(ids))],
            "user_id": ["u1"] * len(ids),
            "item_id": ids,
            "event_type": "click",
            "timestamp": pd.array([1704067200] * len(ids), dtype="Int64"),
        }
    )
    _, quarantine, events = same_on_every_path(tmp_path, monkeypatch, rows, shop)
    assert quarantine == {
        3: "item_id is blank",
        4: "item_id is blank",
        5: "item_id is longer than 256 characters",
        6: "item_id has control characters",
        9: "missing field item_id",
    }
    assert sorted(events.item_id) == sorted(["sku-1", " spaced ", "ünï-✓", "x" * 256])
    numbered = rows.iloc[:2].assign(user_id=pd.array([7, 8], dtype="Int64"), item_id=["a", "b"])
    _, _, events = same_on_every_path(tmp_path / "numbered", monkeypatch, numbered, shop)
    assert events.user_id.tolist() == ["7", "8"]  # an integer written for a string id is its decimal text


def test_rules_are_one_ordered_list_for_both_paths():
    reasons = [rule.reason for rule in ingestion.event_rules(MOVIELENS)]
    assert len(reasons) == len(set(reasons))
    assert reasons[0] == "missing field user_id" and reasons[-1] == "duplicated event_id"


@pytest.mark.parametrize("writer", [write_parquet, write_jsonl], ids=["parquet", "jsonl"])
def test_cross_file_duplicate_ids_are_quarantined(tmp_path, writer):
    landing = tmp_path / "landing"
    day1 = pd.DataFrame(
        {"event_id": ["a", "b"], "user_id": [1, 2], "item_id": [10, 20], "event_type": "click",
         "value": [None, None], "timestamp": [1704067200, 1704067200]}
    )  # fmt: skip
    day2 = day1.assign(event_id=["b", "c"], user_id=[3, 4])
    writer(landing, "day1", day1)
    second = writer(landing, "day2", day2)
    with connect(tmp_path / "w.duckdb") as connection:
        ensure_raw_schema(connection, MOVIELENS)
        first, report = ingest_landing(connection, landing, kinds=("events",), now=NOW, contract=MOVIELENS)
        source1 = f"events/day1{second.suffix}"
        reason = CROSS_FILE_DUPLICATE.format(source1)
        assert (first.rows_loaded, first.rows_quarantined) == (2, 0)
        assert (report.rows_in, report.rows_loaded, report.rows_quarantined) == (2, 1, 1)
        assert report.reasons == {reason: 1}
        assert reason == f"duplicated event_id (already ingested from {source1})"
        events = connection.execute("select event_id, user_id from raw.events order by 1").fetchall()
        assert events == [("a", 1), ("b", 2), ("c", 4)]
        [(line, raw_text, stored)] = connection.execute(
            "select line_number, raw_text, reason from raw.quarantine"
        ).fetchall()
        assert line == 1 and stored == reason and '"b"' in raw_text
        # Re-ingesting a changed file still replaces its own rows: no self-duplicates.
        writer(landing, "day1", day1.assign(user_id=[5, 6]))
        again = ingest_landing(connection, landing, kinds=("events",), now=NOW, contract=MOVIELENS)
        assert [r.skipped for r in again] == [False, True]
        assert again[0].rows_loaded == 2 and again[0].rows_quarantined == 0
        events = connection.execute("select event_id, user_id from raw.events order by 1").fetchall()
        assert events == [("a", 5), ("b", 6), ("c", 4)]


def test_parquet_fast_path_rolls_back_on_failure(tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    write_parquet(landing, "day", frame())
    original = ingestion._replace_file_rows

    def replace_then_crash(connection, *args, **kwargs):
        original(connection, *args, **kwargs)
        raise RuntimeError("simulated failure")

    with connect(tmp_path / "w.duckdb") as connection:
        monkeypatch.setattr(ingestion, "_replace_file_rows", replace_then_crash)
        with pytest.raises(RuntimeError):
            ingest_landing(connection, landing, kinds=("events",), now=NOW, contract=MOVIELENS)
        monkeypatch.undo()
        for name in ("events", "quarantine", "ingested_files"):
            assert connection.execute(f"select count(*) from raw.{name}").fetchone()[0] == 0
        [report] = ingest_landing(connection, landing, kinds=("events",), now=NOW, contract=MOVIELENS)
        assert report.rows_loaded == EXPECTED.count(None)


def test_synthetic_landing_ingests_every_event(tmp_path):
    synthetic = generate(SyntheticConfig(n_users=500, n_items=2000, n_events=50_000, days=30))
    landing = tmp_path / "landing"
    write_to_landing(synthetic, landing)
    with connect(tmp_path / "w.duckdb") as connection:
        reports = ingest_landing(connection, landing, now=NOW, contract=MOVIELENS)
        events = [r for r in reports if r.kind == "events"]
        assert len(events) >= 28
        for report in reports:
            assert report.rows_in == report.rows_loaded + report.rows_quarantined
            assert report.rows_quarantined == 0, report
        assert sum(r.rows_loaded for r in events) == 50_000
        assert connection.execute("select count(distinct event_id) from raw.events").fetchone()[0] == 50_000
        assert connection.execute("select count(*) from raw.quarantine").fetchone()[0] == 0
