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

from recs_platform.data.contract import ID_SQL_TYPES, DatasetContract

# Tables whose shape does not depend on the dataset contract.
FIXED_SCHEMA_SQL = """
create schema if not exists raw;
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
BOOKKEEPING = {"source_file": "varchar", "ingested_at": "timestamp"}


class SchemaMismatch(ValueError):
    """The warehouse's raw tables were created for another dataset contract."""


def raw_table_columns(contract: DatasetContract) -> dict[str, dict[str, str]]:
    """``{table: {column: DuckDB type}}`` of the contract-shaped raw tables (bookkeeping included)."""
    user_id, item_id = ID_SQL_TYPES[contract.user_id_type], ID_SQL_TYPES[contract.item_id_type]
    bookkeeping = BOOKKEEPING

    def catalog(key: str, id_type: str, kind: str) -> dict[str, str]:
        return {key: id_type, **{column.name: column.sql_type for column in contract.catalog(kind)}, **bookkeeping}

    return {
        "events": {
            "event_id": "varchar", "user_id": user_id, "item_id": item_id, "event_type": "varchar",
            "value": "double", "timestamp": "timestamp", "context": "varchar", **bookkeeping,
        },
        "users": catalog("user_id", user_id, "users"),
        "items": catalog("item_id", item_id, "items"),
        "served_impressions": {
            "request_id": "varchar", "served_by": "varchar", "served_at": "timestamp", "user_id": user_id,
            "k": "integer", "model_version": "varchar", "source": "varchar", "path": "varchar",
            "history_source": "varchar", "history_items": f"{item_id}[]", "user_features": "varchar",
            "item_ids": f"{item_id}[]", "scores": "double[]", "latency_ms": "double", "online_version": "varchar",
            **bookkeeping,
        },
    }  # fmt: skip


# Columns a raw row cannot lack; the others may be null.
NOT_NULL = frozenset(
    {"event_id", "user_id", "item_id", "event_type", "timestamp", "request_id", "served_by", "served_at"}
    | {"model_version", "source", "item_ids", "source_file", "ingested_at"}
)


def _create_table(table: str, columns: dict[str, str]) -> str:
    definitions = ", ".join(
        f'"{name}" {sql_type}' + (" not null" if name in NOT_NULL else "") for name, sql_type in columns.items()
    )
    return f"create table if not exists raw.{table} ({definitions});"


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


def ensure_raw_schema(connection: duckdb.DuckDBPyConnection, contract: DatasetContract) -> None:
    """Create the raw tables the contract describes if they are missing.

    Raises ``SchemaMismatch`` when existing tables were created for another contract (other id
    types or catalogue columns): loading into them would fail row by row, or silently mix shapes.
    """
    connection.execute(FIXED_SCHEMA_SQL)
    expected = raw_table_columns(contract)
    for table, columns in expected.items():
        connection.execute(_create_table(table, columns))
    found: dict[str, dict[str, str]] = {}
    query = "select table_name, column_name, data_type from information_schema.columns where table_schema = 'raw'"
    for table, column, data_type in connection.execute(query + " order by ordinal_position").fetchall():
        found.setdefault(table, {})[column] = data_type.lower()
    for table, columns in expected.items():
        has = found.get(table, {})
        if has != columns:
            differing = [name for name in {**has, **columns} if has.get(name) != columns.get(name)]
            raise SchemaMismatch(
                f"the warehouse's raw.{table} was made for another dataset contract: it has "
                f"{_describe(has, differing)} where contract {contract.name!r} ({contract.source or 'no file'}) "
                f"declares {_describe(columns, differing)}; ingest into a fresh warehouse or use the contract it was "
                "built with"
            )


def _describe(columns: dict[str, str], names: list[str]) -> str:
    return ", ".join(f"{name} {columns[name]}" for name in names if name in columns) or "no such columns"


def has_raw_schema(connection: duckdb.DuckDBPyConnection) -> bool:
    """False before the first ingestion created the raw tables."""
    query = (
        "select count(*) from information_schema.tables where table_schema = 'raw' and table_name = 'ingested_files'"
    )
    return connection.execute(query).fetchone()[0] > 0
