"""The DuckDB warehouse: one file, one writer at a time.

DuckDB lets a single process hold the write lock. Writers and readers therefore connect for
short, bounded sections and retry while another process holds the lock, instead of failing the
run; training and serving never connect at all (they read frozen Parquet and the model store).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

RAW_SCHEMA_SQL = """
create schema if not exists raw;
create table if not exists raw.events (
    event_id varchar not null, user_id bigint not null, item_id bigint not null,
    event_type varchar not null, value double, "timestamp" timestamp not null,
    context varchar, source_file varchar not null, ingested_at timestamp not null
);
create table if not exists raw.users (
    user_id bigint not null, age integer, gender varchar, occupation varchar, zip_code varchar,
    source_file varchar not null, ingested_at timestamp not null
);
create table if not exists raw.items (
    item_id bigint not null, title varchar, release_date date, genres varchar,
    source_file varchar not null, ingested_at timestamp not null
);
create table if not exists raw.served_impressions (
    request_id varchar not null, served_by varchar not null, served_at timestamp not null,
    user_id bigint not null, k integer,
    model_version varchar not null, source varchar not null, path varchar, history_source varchar,
    history_items bigint[], user_features varchar, item_ids bigint[] not null, scores double[],
    latency_ms double, online_version varchar, source_file varchar not null, ingested_at timestamp not null
);
create table if not exists raw.quarantine (
    source_file varchar not null, line_number bigint, raw_text varchar, reason varchar not null,
    quarantined_at timestamp not null
);
create table if not exists raw.ingested_files (
    source_file varchar primary key, kind varchar not null, sha256 varchar not null,
    rows_in bigint not null, rows_loaded bigint not null, rows_quarantined bigint not null,
    ingested_at timestamp not null
);
"""


class WarehouseBusy(RuntimeError):
    """Another process kept the warehouse lock for longer than the retry budget."""


@contextmanager
def connect(path: Path, read_only: bool = False, timeout_s: float = 120.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse, retrying while another process holds the lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            connection = duckdb.connect(str(path), read_only=read_only and path.exists())
            break
        except duckdb.IOException as error:
            if "lock" not in str(error).lower() or time.monotonic() > deadline:
                raise WarehouseBusy(f"warehouse {path} is locked: {error}") from error
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    try:
        yield connection
    finally:
        connection.close()


def ensure_raw_schema(connection: duckdb.DuckDBPyConnection) -> None:
    """Create the raw tables if they are missing."""
    connection.execute(RAW_SCHEMA_SQL)


def has_raw_schema(connection: duckdb.DuckDBPyConnection) -> bool:
    """False before the first ingestion created the raw tables."""
    query = (
        "select count(*) from information_schema.tables where table_schema = 'raw' and table_name = 'ingested_files'"
    )
    return connection.execute(query).fetchone()[0] > 0
