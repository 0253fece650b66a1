"""Incremental dbt: a new day's file rewrites only the interaction pairs it touches.

Two days are landed, ingested and built; a third day brings new pairs, a new event on an
existing pair, a re-landed copy of an old event, a non-positive event, an event of an unknown
user and the catalog entry of a user whose events arrived the day before. The incremental build
must rewrite exactly the changed pairs and end up equal to a --full-refresh build.

dbt-duckdb reports no rows_affected in run_results.json, so "rows written by a run" is counted
with the dbt_invocation_id column, matched against run_results.json's metadata.invocation_id.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from recs_platform.data.contract import load_contract
from recs_platform.data.events import write_landing_file
from recs_platform.data.ingestion import ingest_landing
from recs_platform.data.warehouse import connect

DBT_PROJECT = Path(__file__).resolve().parent.parent / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
# Staging, interactions and the tests on them (cautious: not the tests of downstream marts).
SELECT = "+interactions"

USERS = pd.DataFrame(
    {
        "user_id": [1, 2, 3],
        "age": [25, 35, 45],
        "gender": ["F", "M", "F"],
        "occupation": ["writer", "artist", "doctor"],
        "zip_code": ["11111", "22222", "33333"],
    }
)
NEW_USER = pd.DataFrame({"user_id": [4], "age": [52], "gender": ["M"], "occupation": ["other"], "zip_code": ["44444"]})
ITEMS = pd.DataFrame(
    {
        "item_id": [10, 20, 30, 40, 50],
        "title": [f"Item {i}" for i in range(1, 6)],
        "release_date": ["2019-01-01", "2019-06-01", None, "2018-03-01", "2019-12-01"],
        "genres": ["Comedy", "Drama|Comedy", "", "Action", "Drama"],
    }
)


LOADED_AT = {day: datetime(2020, 1, day, 23, 0) for day in (1, 2, 3)}


def events(rows: list[tuple]) -> pd.DataFrame:
    columns = ["event_id", "user_id", "item_id", "event_type", "value", "timestamp"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    return frame


DAY_1 = events(
    [
        ("e01", 1, 10, "rating", 4.0, "2020-01-01 08:00"),
        ("e02", 1, 20, "rating", 3.0, "2020-01-01 09:00"),
        ("e03", 2, 10, "click", None, "2020-01-01 10:00"),
        ("e04", 2, 30, "rating", 5.0, "2020-01-01 11:00"),
        ("e05", 3, 40, "play", None, "2020-01-01 12:00"),
    ]
)
DAY_2 = events(
    [
        ("e06", 1, 10, "rating", 5.0, "2020-01-02 08:00"),
        ("e07", 2, 20, "view", None, "2020-01-02 09:00"),  # not positive: no interaction
        ("e08", 3, 50, "purchase", 1.0, "2020-01-02 10:00"),
        ("e09", 3, 40, "play", None, "2020-01-02 11:00"),
        ("e10", 4, 10, "rating", 2.0, "2020-01-02 12:00"),  # user 4 is not in the catalog yet
    ]
)
DAY_3 = events(
    [
        ("e11", 1, 30, "rating", 4.0, "2020-01-03 08:00"),  # new pair
        ("e12", 2, 40, "add_to_cart", None, "2020-01-03 09:00"),  # new pair
        ("e13", 1, 20, "rating", 5.0, "2020-01-03 10:00"),  # new event on an existing pair
        ("e14", 3, 50, "view", None, "2020-01-03 11:00"),  # not positive: (3, 50) is unchanged
        ("e15", 9, 10, "rating", 5.0, "2020-01-03 12:00"),  # unknown user: dropped
        # A re-landed copy of a day-1 event: ingestion may load or quarantine it; either way
        # stg_events keeps the day-1 copy and (1, 10) is unchanged.
        ("e01", 1, 10, "rating", 4.0, "2020-01-01 08:00"),
    ]
)
# (1, 30), (2, 40), (1, 20) from day 3's events, (4, 10) from user 4's catalog entry on day 3.
CHANGED_PAIRS = {(1, 30), (2, 40), (1, 20), (4, 10)}


def land_and_ingest(landing: Path, warehouse: Path, day: int, files: dict[str, pd.DataFrame]) -> None:
    for kind, frame in files.items():
        write_landing_file(frame, landing, kind, f"{kind}-day{day}")
    with connect(warehouse) as connection:
        ingest_landing(connection, landing, now=LOADED_AT[day], contract=load_contract("movielens"))


def dbt_build(warehouse: Path, target: Path, *extra: str) -> dict:
    env = {**os.environ, "RECS_WAREHOUSE_PATH": str(warehouse), "DBT_TARGET": "local"}
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    command = [
        str(DBT), "build", "--select", SELECT, "--indirect-selection", "cautious",
        "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT),
        "--target-path", str(target), "--log-path", str(target / "logs"), *extra,
    ]  # fmt: skip
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    results = json.loads((target / "run_results.json").read_text())
    assert all(result["status"] in ("success", "pass") for result in results["results"])
    return results


def model_result(results: dict, model: str) -> dict:
    return next(r for r in results["results"] if r["unique_id"] == f"model.recs_platform.{model}")


def read(warehouse: Path, table: str) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(f"select * from {table}").df()


def written_by(frame: pd.DataFrame, results: dict) -> pd.DataFrame:
    return frame[frame["dbt_invocation_id"] == results["metadata"]["invocation_id"]]


def content(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.drop(columns="dbt_invocation_id").sort_values(keys).reset_index(drop=True)


@pytest.mark.skipif(not DBT.exists(), reason="dbt is not installed next to this interpreter")
def test_incremental_run_after_a_new_day_touches_only_new_rows(tmp_path: Path) -> None:
    landing, warehouse, target = tmp_path / "landing", tmp_path / "warehouse.duckdb", tmp_path / "target"
    pairs = ["user_id", "item_id"]

    land_and_ingest(landing, warehouse, 1, {"users": USERS, "items": ITEMS, "events": DAY_1})
    land_and_ingest(landing, warehouse, 2, {"events": DAY_2})
    first = dbt_build(warehouse, target)
    before = read(warehouse, "interactions")
    assert len(before) == 6  # (1,10) (1,20) (2,10) (2,30) (3,40) (3,50); user 4 is unknown
    assert len(written_by(before, first)) == len(before)

    land_and_ingest(landing, warehouse, 3, {"users": NEW_USER, "events": DAY_3})
    second = dbt_build(warehouse, target)
    incremental = read(warehouse, "interactions")

    # Only the changed pairs were rewritten; every other row is the one the first run wrote.
    rewritten = written_by(incremental, second)
    assert set(zip(rewritten.user_id, rewritten.item_id, strict=True)) == CHANGED_PAIRS
    assert len(incremental) == len(before) + 3  # (1, 20) was replaced, three pairs are new
    untouched = incremental[incremental["dbt_invocation_id"] != second["metadata"]["invocation_id"]]
    pd.testing.assert_frame_equal(
        content(untouched, pairs),
        content(before[~before.set_index(pairs).index.isin(list(CHANGED_PAIRS))], pairs),
    )
    # stg_events took in only the event ids loaded on day 3 (a re-landed e01 keeps its day-1 copy).
    staged = read(warehouse, "stg_events")
    raw = read(warehouse, "raw.events")
    day_3_ids = sorted(raw.loc[raw["ingested_at"] == LOADED_AT[3], "event_id"])
    assert set(day_3_ids) >= {"e11", "e12", "e13", "e14", "e15"}
    assert sorted(written_by(staged, second)["event_id"]) == day_3_ids
    assert staged.set_index("event_id").loc["e01", "source_file"] == "events/events-day1.parquet"
    for model in ("stg_events", "interactions"):
        # dbt-duckdb's adapter_response carries no rows_affected; use it if a later version does.
        rows_affected = model_result(second, model)["adapter_response"].get("rows_affected")
        expected = len(CHANGED_PAIRS) if model == "interactions" else len(day_3_ids)
        assert rows_affected in (None, expected)

    pair = incremental.set_index(pairs).loc[(1, 20)]
    assert (pair.n_events, pair.last_value) == (2, 5.0)
    assert pair.first_interaction_at == pd.Timestamp("2020-01-01 09:00")

    # A full refresh rebuilds every row and gives the same table.
    refreshed = dbt_build(warehouse, target, "--full-refresh")
    rebuilt = read(warehouse, "interactions")
    assert len(written_by(rebuilt, refreshed)) == len(rebuilt)
    assert len(written_by(read(warehouse, "stg_events"), refreshed)) == len(staged)
    pd.testing.assert_frame_equal(content(incremental, pairs), content(rebuilt, pairs))
    pd.testing.assert_frame_equal(content(staged, ["event_id"]), content(read(warehouse, "stg_events"), ["event_id"]))
