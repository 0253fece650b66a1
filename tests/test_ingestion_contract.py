"""Ingestion by the dataset contract: raw tables shaped by it, catalogue kinds, whole-file problems,
and the one-sentence errors a person gets for what they can get wrong."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from assets.definitions import build_definitions
from recs_platform.data.contract import load_contract
from recs_platform.data.events import write_landing_file
from recs_platform.data.ingestion import IngestionError, ingest_landing, raise_for_problems
from recs_platform.data.warehouse import SchemaMismatch, ensure_raw_schema

NOW = datetime(2024, 6, 1)
MOVIELENS, SHOP, TRACKS = (load_contract(name) for name in ("movielens", "shop", "tracks"))


def land(landing: Path, kind: str, name: str, content: bytes) -> Path:
    path = landing / kind / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def columns(connection: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    return {name: kind for name, kind, *_ in connection.execute(f"describe raw.{table}").fetchall()}


# -- the raw schema ----------------------------------------------------------------------------------


def test_raw_tables_follow_the_contract():
    connection = duckdb.connect()
    ensure_raw_schema(connection, SHOP)
    assert (
        columns(connection, "events")["user_id"] == "VARCHAR" and columns(connection, "events")["item_id"] == "VARCHAR"
    )
    assert columns(connection, "users") == {"user_id": "VARCHAR", "source_file": "VARCHAR", "ingested_at": "TIMESTAMP"}
    assert columns(connection, "items") == {
        "item_id": "VARCHAR", "name": "VARCHAR", "category": "VARCHAR", "price": "DOUBLE", "tags": "VARCHAR",
        "launched": "DATE", "source_file": "VARCHAR", "ingested_at": "TIMESTAMP",
    }  # fmt: skip
    served = columns(connection, "served_impressions")
    assert (served["user_id"], served["item_ids"], served["history_items"]) == ("VARCHAR", "VARCHAR[]", "VARCHAR[]")
    ensure_raw_schema(connection, SHOP)  # idempotent


def test_a_warehouse_made_for_another_contract_is_one_clear_sentence():
    connection = duckdb.connect()
    ensure_raw_schema(connection, MOVIELENS)
    with pytest.raises(SchemaMismatch) as error:
        ensure_raw_schema(connection, SHOP)
    message = str(error.value)
    assert message.startswith("the warehouse's raw.events was made for another dataset contract")
    assert "user_id bigint, item_id bigint where contract 'shop'" in message and "\n" not in message


# -- catalogues --------------------------------------------------------------------------------------


def test_catalog_columns_are_typed_by_kind_and_an_absent_catalog_is_not_ingested(tmp_path):
    landing = tmp_path / "landing"
    land(
        landing, "items", "items.jsonl",
        b'{"item_id": 1, "artists": "a;b", "styles": "rock", "duration_s": 181.5}\n'
        b'{"item_id": 2, "artists": ["a"], "duration_s": 3}\n'  # a list is not the separated text
        b'{"item_id": 3, "duration_s": "long"}\n'
        b'{"item_id": 4, "duration_s": 1e400}\n'  # overflows to infinity
        b'{"item_id": 5, "styles": 7, "duration_s": true}\n'
        b'{"item_id": 6, "styles": 7}\n',  # an integer is its decimal text
    )  # fmt: skip
    connection = duckdb.connect()
    [report] = ingest_landing(connection, landing, kinds=("items",), now=NOW, contract=TRACKS)
    assert (report.rows_in, report.rows_loaded) == (6, 2)
    rows = connection.execute("select item_id, artists, styles, duration_s from raw.items order by 1").fetchall()
    assert rows == [(1, "a;b", "rock", 181.5), (6, None, "7", None)]
    reasons = dict(connection.execute("select line_number, reason from raw.quarantine").fetchall())
    assert reasons == {
        2: "artists is not text",
        3: "duration_s is not a number",
        4: "duration_s is not a number",
        5: "duration_s is not a number",
    }

    shop_landing = tmp_path / "shop"
    land(shop_landing, "users", "users.csv", b"user_id\nu1\n")
    land(shop_landing, "items", "items.csv", b"item_id,launched,price\ns1,2024-01-02,9.5\ns2,2024-01-02 10:30,1\n")
    shop = duckdb.connect()
    reports = ingest_landing(shop, shop_landing, now=NOW, contract=SHOP)
    assert [r.kind for r in reports] == ["items"]  # no user catalogue in the contract: none ingested
    assert shop.execute("select count(*) from raw.users").fetchone() == (0,)
    assert shop.execute("select reason from raw.quarantine").fetchall() == [("launched is not a date",)]


# -- whole files -------------------------------------------------------------------------------------


def test_empty_header_only_missing_column_and_corrupt_files_are_recorded_not_crashed_on(tmp_path):
    landing = tmp_path / "landing"
    land(landing, "events", "a-empty.csv", b"")
    land(landing, "events", "b-header.csv", b"event_id,user_id,item_id,event_type,timestamp\n")
    land(landing, "events", "c-no-item.csv", b"user_id,event_type,timestamp\n1,click,2024-01-01\n2,view,2024-01-02\n")
    land(landing, "events", "d-corrupt.parquet", b"PAR1 truncated")
    land(landing, "events", "e-good.jsonl", b'{"user_id": 1, "item_id": 2, "event_type": "click", "timestamp": 1}\n')
    land(landing, "events", "f-bool.jsonl", b'{"user_id": true, "item_id": 2, "event_type": "click", "timestamp": 1}\n')
    connection = duckdb.connect()
    reports = {
        r.source_file: r for r in ingest_landing(connection, landing, kinds=("events",), now=NOW, contract=MOVIELENS)
    }
    ledger = connection.execute("select source_file, rows_in, rows_loaded, rows_quarantined from raw.ingested_files")
    assert sorted(ledger.fetchall()) == [
        ("events/a-empty.csv", 0, 0, 0),
        ("events/b-header.csv", 0, 0, 0),
        ("events/c-no-item.csv", 2, 0, 2),
        ("events/d-corrupt.parquet", 1, 0, 1),
        ("events/e-good.jsonl", 1, 1, 0),
        ("events/f-bool.jsonl", 1, 0, 1),
    ]
    assert reports["events/c-no-item.csv"].reasons == {"file has no item_id column": 2}
    assert reports["events/c-no-item.csv"].problem == (
        "events/c-no-item.csv: lacks the column item_id that contract 'movielens' requires for events "
        "(it has user_id, event_type, timestamp), so its 2 rows were quarantined"
    )
    assert reports["events/d-corrupt.parquet"].problem.startswith("events/d-corrupt.parquet: could not be read")
    assert reports["events/f-bool.jsonl"].reasons == {"user_id is not an integer": 1}
    assert connection.execute("select user_id from raw.events").fetchall() == [(1,)]
    quoted = connection.execute("select raw_text from raw.quarantine where source_file like '%no-item%' order by 1")
    assert quoted.fetchall() == [("1,click,2024-01-01",), ("2,view,2024-01-02",)]  # nothing lost
    with pytest.raises(IngestionError, match=r"^events/c-no-item.csv: lacks the column item_id .* could not be read"):
        raise_for_problems(list(reports.values()), 1, "events")


def test_a_contract_listing_none_of_the_data_event_types_and_an_all_quarantined_table_say_so(tmp_path):
    landing = tmp_path / "landing"
    land(landing, "events", "day.csv", b"user_id,item_id,event_type,timestamp\n1,2,rating,2024-01-01\n1,3,rating,x\n")
    connection = duckdb.connect()
    [report] = ingest_landing(connection, landing, kinds=("events",), now=NOW, contract=SHOP)
    assert report.problem == (
        "events/day.csv: none of its event types ('rating') is declared in contract 'shop' (declared: add_to_cart, "
        f"click, impression, purchase), so no row was loaded; declare them under 'events' in {SHOP.source}"
    )
    land(landing, "events", "later.csv", b"user_id,item_id,event_type,timestamp\n1,2,click,nonsense\n")
    reports = ingest_landing(connection, landing, kinds=("events",), now=NOW, contract=SHOP)
    with pytest.raises(IngestionError) as error:
        raise_for_problems(reports[1:], 0, "events")
    assert str(error.value) == (
        "raw.events is empty: all 1 rows of the 1 landed files were quarantined (most often: "
        "'timestamp is not parsable'); see raw.quarantine"
    )


# -- the run's failure description -------------------------------------------------------------------


def _ingest_partition(home: Path, key: str) -> dg.ExecuteInProcessResult:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("landed_event_files", [key])
    job = build_definitions("ci", home).resolve_job_def("ingest_events")
    return job.execute_in_process(
        instance=instance, partition_key=key, raise_on_error=False, asset_selection=[dg.AssetKey(["raw", "events"])]
    )


def _failure_description(result: dg.ExecuteInProcessResult) -> str:
    [failure] = result.get_step_failure_events()
    return failure.step_failure_data.user_failure_data.description


def test_ingestion_runs_fail_with_one_sentence_not_a_traceback(tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    land(landing, "events", "no-item.csv", b"user_id,event_type,timestamp\n1,click,2024-01-01\n")
    result = _ingest_partition(tmp_path, "no-item.csv")
    assert not result.success
    assert _failure_description(result).startswith("events/no-item.csv: lacks the column item_id that contract")

    write_landing_file(pd.DataFrame({"user_id": ["u1"]}), landing, "events", "strings")
    monkeypatch.setenv("RECS_CONTRACT", "shop")  # the warehouse was made for MovieLens above
    result = _ingest_partition(tmp_path, "strings.parquet")
    assert _failure_description(result).startswith("the warehouse's raw.events was made for another dataset contract")


def test_serving_logs_hold_the_contract_id_types(tmp_path):
    landing = tmp_path / "landing"
    base = '"served_at": "2024-05-01T10:00:00", "model_version": "m1", "source": "model", "scores": [0.9, 0.5]'
    land(
        landing, "serving_logs", "log.jsonl",
        ('{"request_id": "r1", "user_id": "u-1", "item_ids": ["sku:1", "sku:2"], ' + base + "}\n"
         '{"request_id": "r2", "user_id": "u-1", "item_ids": ["sku:1", true], ' + base + "}\n"
         '{"request_id": "r3", "user_id": 4.0, "item_ids": ["sku:1", "sku:2"], ' + base + "}\n"
         '{"request_id": "r4", "user_id": "u-2", "item_ids": ["sku:1", 7], "history_items": [" "], ' + base + "}\n"
         ).encode(),
    )  # fmt: skip
    connection = duckdb.connect()
    [report] = ingest_landing(connection, landing, kinds=("serving_logs",), now=NOW, contract=SHOP)
    assert (report.rows_in, report.rows_loaded) == (4, 1)
    served = connection.execute("select request_id, user_id, item_ids from raw.served_impressions").fetchall()
    assert served == [("r1", "u-1", ["sku:1", "sku:2"])]
    assert dict(connection.execute("select line_number, reason from raw.quarantine").fetchall()) == {
        2: "item_ids is not a list of string ids",
        3: "user_id is not text",
        4: "history_items is not a list of string ids",
    }
