"""Raw ingestion into DuckDB: typing, quarantine, row accounting, idempotency, crash safety."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from recs_platform.data import ingestion
from recs_platform.data.contract import load_contract
from recs_platform.data.events import write_landing_file
from recs_platform.data.ingestion import ingest_file, ingest_landing
from recs_platform.data.warehouse import connect, ensure_raw_schema

NOW = datetime(2024, 6, 1, 12, 0, 0)
MOVIELENS = load_contract("movielens")

# -- landed files ---------------------------------------------------------------------------------

CSV_HEADER = "event_id,user_id,item_id,event_type,value,timestamp"
# (line text, expected reason or None); line numbers count the header as line 1.
CSV_ROWS: list[tuple[bytes, str | None]] = [
    (b"c1,1,10,click,,2024-01-01T00:00:00", None),
    (b"c2,2,20,rating,4,2024-01-02 10:00:00", None),
    (b"c3,3,30,view,,1704067200", None),  # epoch seconds
    (b"c4,1,10,click", "malformed CSV line: expected 6 fields, got 4"),
    (b"c5,,10,click,,2024-01-01", "missing field user_id"),
    (b"c6,1,abc,click,,2024-01-01", "item_id is not an integer"),
    (b"c7,1,10,teleport,,2024-01-01", "unknown event_type"),
    (b"c8,1,10,click,,not-a-time", "timestamp is not parsable"),
    (b"c9,1,10,click,,-86400", "timestamp is before 1970"),
    (b"c10,1,10,click,,2100-01-01", "timestamp is in the future"),
    (b"c1,4,40,click,,2024-01-03", "duplicated event_id"),
    (b"c11,1,10,click,,2024-01-01\xff\xfe", "encoding error"),
    (b"c12,4,40,PURCHASE,9.5,2024-03-01T08:00:00Z", None),  # case-insensitive event type
]

JSON_ROWS: list[tuple[bytes, str | None]] = [
    (
        b'{"event_id": "j1", "user_id": 1, "item_id": 10, "event_type": "click", "timestamp": "2024-01-01T00:00:00Z",'
        b' "device": "ios"}',
        None,
    ),
    (b'{"event_id": "j2", "user_id": 2, "item_id": 20, "event_type": "play", "timestamp": 1704067200}', None),
    (b'{"event_id": "j3", "user_id": 1, "item_id": 10, "event_type": "click"', "unparsable JSON"),
    (b"[1, 2, 3]", "unparsable JSON: line is not an object"),
    (b'{"event_id": "j4", "item_id": 10, "event_type": "click", "timestamp": "2024-01-01"}', "missing field user_id"),
    (
        b'{"event_id": "j5", "user_id": 1, "item_id": "x1", "event_type": "click", "timestamp": "2024-01-01"}',
        "item_id is not an integer",
    ),
    (
        b'{"event_id": "j6", "user_id": 1, "item_id": 1.5, "event_type": "click", "timestamp": "2024-01-01"}',
        "item_id is not an integer",
    ),
    (
        b'{"event_id": "j7", "user_id": 1, "item_id": 10, "event_type": "teleport", "timestamp": "2024-01-01"}',
        "unknown event_type",
    ),
    (
        b'{"event_id": "j8", "user_id": 1, "item_id": 10, "event_type": "click", "timestamp": "yesterday-ish"}',
        "timestamp is not parsable",
    ),
    (
        b'{"event_id": "j9", "user_id": 1, "item_id": 10, "event_type": "click", "timestamp": -5}',
        "timestamp is before 1970",
    ),
    (
        b'{"event_id": "j10", "user_id": 1, "item_id": 10, "event_type": "click", "timestamp": "2030-01-01T00:00:00"}',
        "timestamp is in the future",
    ),
    (
        b'{"event_id": "j2", "user_id": 3, "item_id": 30, "event_type": "view", "timestamp": "2024-01-05"}',
        "duplicated event_id",
    ),
    (
        b'{"event_id": "j11", "user_id": 1, "item_id": 10, "event_type": "click",'
        b' "timestamp": "2024-01-01", "x": "\xe9"}',
        "encoding error",
    ),
    (
        b'{"event_id": "j12", "user_id": 1, "item_id": 10, "event_type": "rating", "value": "lots",'
        b' "timestamp": "2024-01-01"}',
        "value is not a number",
    ),
    (b"", None),  # blank lines are skipped, not counted
    (b'{"user_id": 5, "item_id": 50, "event_type": "view", "timestamp": "2024-02-01"}', None),  # derived event_id
]


def write_csv_events(landing: Path, name: str = "day1.csv") -> Path:
    path = landing / "events" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join([CSV_HEADER.encode(), *(line for line, _ in CSV_ROWS)]) + b"\n")
    return path


def write_json_events(landing: Path, name: str = "day2.jsonl") -> Path:
    path = landing / "events" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(line for line, _ in JSON_ROWS) + b"\n")
    return path


def expected_rows(rows: list[tuple[bytes, str | None]], first_line: int) -> tuple[int, dict[int, str]]:
    """(number of good rows, {line number: expected reason}) for non-blank lines."""
    good, bad = 0, {}
    for number, (line, reason) in enumerate(rows, start=first_line):
        if not line:
            continue
        if reason is None:
            good += 1
        else:
            bad[number] = reason
    return good, bad


@pytest.fixture
def warehouse(tmp_path: Path):
    with connect(tmp_path / "warehouse.duckdb") as connection:
        ensure_raw_schema(connection, MOVIELENS)
        yield connection


def table(connection, sql: str) -> pd.DataFrame:
    return connection.execute(sql).df()


def count(connection, sql: str) -> int:
    return connection.execute(sql).fetchone()[0]


def rows_per_table(connection) -> dict[str, int]:
    return {name: count(connection, f"select count(*) from raw.{name}") for name in ("events", "quarantine")}


# -- events: typing and quarantine ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("writer", "rows", "first_line"),
    [(write_csv_events, CSV_ROWS, 2), (write_json_events, JSON_ROWS, 1)],
    ids=["csv", "jsonl"],
)
def test_events_file_good_rows_load_and_bad_rows_are_quarantined(warehouse, tmp_path, writer, rows, first_line):
    landing = tmp_path / "landing"
    path = writer(landing)
    source = path.relative_to(landing).as_posix()
    n_good, bad = expected_rows(rows, first_line)

    [report] = ingest_landing(warehouse, landing, kinds=("events",), now=NOW, contract=MOVIELENS)

    assert report.source_file == source and report.kind == "events" and not report.skipped
    assert report.rows_loaded == n_good
    assert report.rows_quarantined == len(bad)
    assert report.rows_in == report.rows_loaded + report.rows_quarantined == n_good + len(bad)
    assert sum(report.reasons.values()) == len(bad)

    events = table(warehouse, "select * from raw.events order by event_id")
    assert len(events) == n_good
    assert (events.source_file == source).all()
    assert (events.ingested_at == pd.Timestamp(NOW)).all()
    assert events.event_id.is_unique

    quarantine = table(warehouse, "select * from raw.quarantine order by line_number")
    assert (quarantine.source_file == source).all()
    assert dict(zip(quarantine.line_number, quarantine.reason, strict=True)).keys() == bad.keys()
    raw_lines = dict(enumerate((line for line, _ in rows), start=first_line))
    for row in quarantine.itertuples():
        assert row.reason.startswith(bad[row.line_number]), (row.line_number, row.reason)
        # The source text is quoted (bytes that are not UTF-8 are shown as Latin-1).
        assert row.raw_text == raw_lines[row.line_number].decode("latin-1"), row.line_number

    files = table(warehouse, "select * from raw.ingested_files")
    assert len(files) == 1
    record = files.iloc[0]
    assert record.source_file == source and record.kind == "events"
    assert (record.rows_in, record.rows_loaded, record.rows_quarantined) == (
        report.rows_in,
        report.rows_loaded,
        report.rows_quarantined,
    )


def test_csv_event_values_are_typed(warehouse, tmp_path):
    landing = tmp_path / "landing"
    write_csv_events(landing)
    ingest_landing(warehouse, landing, kinds=("events",), now=NOW, contract=MOVIELENS)
    events = table(warehouse, "select * from raw.events order by event_id").set_index("event_id")
    assert events.loc["c1", "timestamp"] == pd.Timestamp("2024-01-01 00:00:00")
    assert events.loc["c2", "timestamp"] == pd.Timestamp("2024-01-02 10:00:00")
    assert events.loc["c3", "timestamp"] == pd.Timestamp("2024-01-01 00:00:00")  # 1704067200 s
    assert events.loc["c2", "value"] == 4.0 and pd.isna(events.loc["c1", "value"])
    assert events.loc["c12", "event_type"] == "purchase"
    assert events.loc["c12", "timestamp"] == pd.Timestamp("2024-03-01 08:00:00")  # Z converted to naive UTC
    assert events.loc["c1", ["user_id", "item_id"]].tolist() == [1, 10]


def test_jsonl_context_and_derived_event_ids(warehouse, tmp_path):
    landing = tmp_path / "landing"
    write_json_events(landing)
    ingest_landing(warehouse, landing, kinds=("events",), now=NOW, contract=MOVIELENS)
    events = table(warehouse, "select * from raw.events").set_index("user_id", drop=False)
    assert json.loads(events.set_index("event_id").loc["j1", "context"]) == {"device": "ios"}
    derived = events.loc[5, "event_id"]
    assert isinstance(derived, str) and len(derived) == 40  # sha1 of the event's content


def test_same_landing_twice_adds_nothing(warehouse, tmp_path):
    landing = tmp_path / "landing"
    write_csv_events(landing)
    write_json_events(landing)
    first = ingest_landing(warehouse, landing, kinds=("events",), now=NOW, contract=MOVIELENS)
    before = rows_per_table(warehouse)
    second = ingest_landing(warehouse, landing, kinds=("events",), now=datetime(2024, 6, 2), contract=MOVIELENS)
    assert rows_per_table(warehouse) == before
    assert [r.skipped for r in first] == [False, False]
    assert [r.skipped for r in second] == [True, True]
    for a, b in zip(first, second, strict=True):
        assert (a.rows_in, a.rows_loaded, a.rows_quarantined) == (b.rows_in, b.rows_loaded, b.rows_quarantined)
    # The first ingestion's time stays recorded.
    assert (table(warehouse, "select ingested_at from raw.ingested_files").ingested_at == pd.Timestamp(NOW)).all()


def test_rewritten_file_replaces_its_rows(warehouse, tmp_path):
    landing = tmp_path / "landing"
    path = write_csv_events(landing)
    ingest_landing(warehouse, landing, kinds=("events",), now=NOW, contract=MOVIELENS)
    path.write_text(f"{CSV_HEADER}\nc1,1,10,click,,2024-01-01\nn2,7,70,view,,2024-01-04\nbad,line\n")
    [report] = ingest_landing(warehouse, landing, kinds=("events",), now=NOW, contract=MOVIELENS)
    assert not report.skipped and (report.rows_in, report.rows_loaded, report.rows_quarantined) == (3, 2, 1)
    events = table(warehouse, "select event_id, user_id from raw.events order by event_id")
    assert events.event_id.tolist() == ["c1", "n2"]
    assert count(warehouse, "select count(*) from raw.quarantine") == 1
    files = table(warehouse, "select * from raw.ingested_files")
    assert len(files) == 1 and files.rows_in.iloc[0] == 3


def test_files_are_independent(warehouse, tmp_path):
    # Rewriting one file does not touch another file's rows; ids another file loaded are quarantined.
    landing = tmp_path / "landing"
    write_csv_events(landing, "a.csv")
    b = write_csv_events(landing, "b.csv")
    ingest_landing(warehouse, landing, kinds=("events",), now=NOW, contract=MOVIELENS)
    n_good, _ = expected_rows(CSV_ROWS, 2)
    assert count(warehouse, "select count(*) from raw.events") == n_good
    duplicates = (
        "select count(*) from raw.quarantine where reason = 'duplicated event_id (already ingested from events/a.csv)'"
    )
    assert count(warehouse, duplicates) == n_good
    b.write_text(f"{CSV_HEADER}\nz1,1,10,click,,2024-01-01\n")
    ingest_landing(warehouse, landing, kinds=("events",), now=NOW, contract=MOVIELENS)
    by_file = table(warehouse, "select source_file, count(*) as n from raw.events group by 1 order by 1")
    assert by_file.n.tolist() == [n_good, 1]
    assert count(warehouse, "select count(*) from raw.quarantine where source_file = 'events/b.csv'") == 0


class _CrashBeforeCommit:
    """Delegates to a DuckDB connection but fails when the ingestion is about to be recorded."""

    def __init__(self, connection) -> None:
        self._connection = connection

    def execute(self, sql: str, *args, **kwargs):
        if sql.lstrip().lower().startswith("insert or replace into raw.ingested_files"):
            raise RuntimeError("simulated crash")
        return self._connection.execute(sql, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._connection, name)


def test_crash_before_commit_then_rerun_loads_each_event_once(tmp_path):
    landing = tmp_path / "landing"
    db = tmp_path / "warehouse.duckdb"
    write_csv_events(landing)
    n_good, bad = expected_rows(CSV_ROWS, 2)
    # A first, complete ingestion of an earlier version, then a rewrite that crashes mid-way.
    with connect(db) as connection:
        ingest_landing(connection, landing, kinds=("events",), now=NOW, contract=MOVIELENS)
    (landing / "events" / "day1.csv").write_bytes(
        (landing / "events" / "day1.csv").read_bytes() + b"c99,9,90,view,,2024-02-02\n"
    )
    with pytest.raises(RuntimeError, match="simulated crash"), connect(db) as connection:
        ingest_landing(_CrashBeforeCommit(connection), landing, kinds=("events",), now=NOW, contract=MOVIELENS)
    # The crashed process never committed: the previous version is intact.
    with connect(db) as connection:
        assert count(connection, "select count(*) from raw.events") == n_good
        assert count(connection, "select count(*) from raw.quarantine") == len(bad)
        assert count(connection, "select rows_loaded from raw.ingested_files") == n_good
        [report] = ingest_landing(connection, landing, kinds=("events",), now=NOW, contract=MOVIELENS)
        assert not report.skipped and report.rows_loaded == n_good + 1
        events = table(connection, "select event_id from raw.events")
        assert len(events) == n_good + 1 and events.event_id.is_unique
        assert count(connection, "select count(*) from raw.quarantine") == len(bad)


def test_crash_on_first_ingestion_leaves_nothing_behind(tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    db = tmp_path / "warehouse.duckdb"
    write_json_events(landing)
    original = ingestion._replace_file_rows

    def replace_then_crash(connection, *args, **kwargs):
        original(connection, *args, **kwargs)  # the delete + insert ran inside the open transaction
        raise RuntimeError("simulated crash after insert")

    monkeypatch.setattr(ingestion, "_replace_file_rows", replace_then_crash)
    with pytest.raises(RuntimeError), connect(db) as connection:
        ingest_landing(connection, landing, kinds=("events",), now=NOW, contract=MOVIELENS)
    monkeypatch.undo()
    with connect(db) as connection:
        for name in ("events", "quarantine", "ingested_files"):
            assert count(connection, f"select count(*) from raw.{name}") == 0, name
        ingest_landing(connection, landing, kinds=("events",), now=NOW, contract=MOVIELENS)
        ingest_landing(connection, landing, kinds=("events",), now=NOW, contract=MOVIELENS)
        n_good, bad = expected_rows(JSON_ROWS, 1)
        assert count(connection, "select count(*) from raw.events") == n_good
        assert count(connection, "select count(distinct event_id) from raw.events") == n_good
        assert count(connection, "select count(*) from raw.quarantine") == len(bad)


def test_failed_ingest_rolls_back_on_the_same_connection(warehouse, tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    write_csv_events(landing)
    original = ingestion._replace_file_rows

    def replace_then_crash(connection, *args, **kwargs):
        original(connection, *args, **kwargs)
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(ingestion, "_replace_file_rows", replace_then_crash)
    with pytest.raises(RuntimeError):
        ingest_landing(warehouse, landing, kinds=("events",), now=NOW, contract=MOVIELENS)
    monkeypatch.undo()
    # The failed attempt must not be visible, and a retry on the same connection must work.
    assert count(warehouse, "select count(*) from raw.events") == 0
    [report] = ingest_landing(warehouse, landing, kinds=("events",), now=NOW, contract=MOVIELENS)
    assert report.rows_loaded == expected_rows(CSV_ROWS, 2)[0]


# -- Parquet events ---------------------------------------------------------------------------------


def test_parquet_events_via_write_landing_file(warehouse, tmp_path):
    landing = tmp_path / "landing"
    frame = pd.DataFrame(
        {
            "user_id": [1, 2, 3, 4],
            "item_id": [10, 20, 30, 40],
            "event_type": ["rating", "click", "teleport", "view"],
            "value": [5.0, None, None, None],
            "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2099-01-01"]).tz_localize("UTC"),
            "session": ["s1", "s2", "s3", "s4"],
        }
    )
    path = write_landing_file(frame, landing, "events", "2024-01-03")
    assert path == landing / "events" / "2024-01-03.parquet"
    assert [p.name for p in (landing / "events").iterdir()] == ["2024-01-03.parquet"]  # no partial left
    [report] = ingest_landing(warehouse, landing, kinds=("events",), now=NOW, contract=MOVIELENS)
    assert (report.rows_in, report.rows_loaded, report.rows_quarantined) == (4, 2, 2)
    assert report.reasons == {"unknown event_type": 1, "timestamp is in the future": 1}
    events = table(warehouse, "select * from raw.events order by user_id")
    assert events.user_id.tolist() == [1, 2]
    assert events.timestamp.tolist() == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02")]
    assert json.loads(events.context.iloc[0]) == {"session": "s1"}
    quarantine = table(warehouse, "select * from raw.quarantine order by line_number")
    assert quarantine.line_number.tolist() == [3, 4]  # row numbers in the file, from 1
    quoted = json.loads(quarantine.raw_text.iloc[0])  # columnar rows are quoted as JSON of their values
    assert quoted["event_type"] == "teleport" and quoted["user_id"] == "3"
    # Idempotent too.
    assert ingest_landing(warehouse, landing, kinds=("events",), now=NOW, contract=MOVIELENS)[0].skipped


def test_ingest_file_directly_skips_an_unchanged_file(warehouse, tmp_path):
    landing = tmp_path / "landing"
    path = write_csv_events(landing)
    first = ingest_file(warehouse, landing, path, "events", NOW, MOVIELENS)
    second = ingest_file(warehouse, landing, path, "events", NOW, MOVIELENS)
    assert not first.skipped and second.skipped and second.reasons == {}
    assert second.rows_loaded == first.rows_loaded


# -- catalogs ----------------------------------------------------------------------------------------


def test_user_catalog_quarantines_bad_rows(warehouse, tmp_path):
    landing = tmp_path / "landing"
    (landing / "users").mkdir(parents=True)
    (landing / "users" / "users.csv").write_text(
        "user_id,age,gender,occupation,zip_code\n"
        "1,25,M,engineer,02139\n"  # line 2: good, zip code keeps its leading zero
        "2,abc,F,artist,55555\n"  # line 3: bad age
        ",30,F,doctor,11111\n"  # line 4: missing id
        "4,inf,M,writer,22222\n"  # line 5: age not finite
        "1,40,F,lawyer,33333\n"  # line 6: duplicated id
        "x,40,F,lawyer,33333\n"  # line 7: id not an integer
        "7,,F,,44444\n"  # line 8: good, unknown age and occupation
        "8,130,M,writer,22222\n"  # line 9: good: the contract declares age numeric, with no range
    )
    [report] = ingest_landing(warehouse, landing, kinds=("users",), now=NOW, contract=MOVIELENS)
    assert (report.rows_in, report.rows_loaded, report.rows_quarantined) == (8, 3, 5)
    users = table(warehouse, "select * from raw.users order by user_id")
    assert users.user_id.tolist() == [1, 7, 8]
    assert users.zip_code.tolist() == ["02139", "44444", "22222"]
    assert users.age.iloc[0] == 25 and pd.isna(users.age.iloc[1]) and users.age.iloc[2] == 130
    quarantine = table(warehouse, "select * from raw.quarantine order by line_number")
    assert dict(zip(quarantine.line_number, quarantine.reason, strict=True)) == {
        3: "age is not a number",
        4: "missing field user_id",
        5: "age is not a number",
        6: "duplicated user_id",
        7: "user_id is not an integer",
    }
    assert (quarantine.source_file == "users/users.csv").all()
    assert quarantine.raw_text.iloc[0] == "2,abc,F,artist,55555"


def test_item_catalog_quarantines_bad_rows(warehouse, tmp_path):
    landing = tmp_path / "landing"
    (landing / "items").mkdir(parents=True)
    (landing / "items" / "items.csv").write_text(
        "item_id,title,release_date,genres\n"
        '10,"Toy Story, The",1995-01-01,Animation|Comedy\n'  # quoted comma
        ",Nameless,1995-01-01,Drama\n"  # missing id
        "12,Bad Date,not-a-date,Drama\n"
        "13,No Date,,\n"
    )
    [report] = ingest_landing(warehouse, landing, kinds=("items",), now=NOW, contract=MOVIELENS)
    assert (report.rows_in, report.rows_loaded, report.rows_quarantined) == (4, 2, 2)
    items = table(warehouse, "select * from raw.items order by item_id")
    assert items.item_id.tolist() == [10, 13]
    assert items.title.tolist() == ["Toy Story, The", "No Date"]
    assert items.genres.tolist() == ["Animation|Comedy", None]  # an empty field stays missing
    quarantine = table(warehouse, "select line_number, reason from raw.quarantine order by line_number")
    assert quarantine.values.tolist() == [[3, "missing field item_id"], [4, "release_date is not a date"]]


def test_ingest_landing_covers_all_kinds(warehouse, tmp_path):
    landing = tmp_path / "landing"
    write_csv_events(landing)
    (landing / "users").mkdir()
    (landing / "users" / "u.csv").write_text("user_id,age\n1,20\n")
    (landing / "events" / ".tmp.parquet.partial").write_text("ignored")
    reports = ingest_landing(warehouse, landing, now=NOW, contract=MOVIELENS)
    assert [(r.kind, r.source_file) for r in reports] == [("users", "users/u.csv"), ("events", "events/day1.csv")]
    totals = table(
        warehouse, "select sum(rows_in) i, sum(rows_loaded) l, sum(rows_quarantined) q from raw.ingested_files"
    )
    assert totals.i.iloc[0] == totals.l.iloc[0] + totals.q.iloc[0]
