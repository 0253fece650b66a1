"""Load landed files into the warehouse's raw schema, quarantining malformed rows.

Each file is loaded in one transaction that first removes whatever an earlier attempt loaded
from the same file, and is recorded in ``raw.ingested_files`` with its content hash. Re-ingesting
an unchanged file is a no-op; a crash half-way leaves nothing behind; a changed file replaces
its earlier rows. For every file, rows in = rows loaded + rows quarantined.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from recs_platform.data import serving_log
from recs_platform.data.events import (
    EVENT_COLUMNS,
    EVENT_TYPES,
    ITEM_COLUMNS,
    RAW_TABLES,
    USER_COLUMNS,
    file_sha256,
    landed_files,
)
from recs_platform.data.warehouse import connect, ensure_raw_schema, has_raw_schema

# Allowance for clock skew between producers and the platform before a timestamp is "future".
FUTURE_TOLERANCE = timedelta(hours=1)
REQUIRED = {
    "events": ("user_id", "item_id", "event_type", "timestamp"),
    "users": ("user_id",),
    "items": ("item_id",),
    "serving_logs": ("request_id", "served_at", "user_id", "model_version", "source", "item_ids"),
}
COLUMNS = {"events": EVENT_COLUMNS, "users": USER_COLUMNS, "items": ITEM_COLUMNS, "serving_logs": serving_log.FIELDS}
INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class FileReport:
    """What happened to one landed file."""

    source_file: str
    kind: str
    rows_in: int
    rows_loaded: int
    rows_quarantined: int
    skipped: bool
    reasons: dict[str, int]

    def as_dict(self) -> dict:
        return asdict(self)


def _read_text_lines(path: Path) -> tuple[list[tuple[int, str]], list[dict]]:
    """Decode a text file line by line so one bad byte quarantines one line, not the file."""
    lines, bad = [], []
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            bad.append(_quarantined(number, raw.decode("latin-1"), f"encoding error: {error.reason}"))
            continue
        if text.strip():
            lines.append((number, text))
    return lines, bad


def _quarantined(line_number: int, raw_text: str, reason: str) -> dict:
    return {"line_number": line_number, "raw_text": raw_text, "reason": reason}


def read_records(path: Path) -> tuple[pd.DataFrame, list[dict]]:
    """Read a landed file into string-typed records plus the lines that could not be parsed.

    Records carry ``line_number`` (and, for text files, ``raw_text``) so any later rejection
    can quote the source.
    """
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        frame["line_number"] = range(1, len(frame) + 1)
        return frame, []
    lines, bad = _read_text_lines(path)
    if path.suffix == ".csv":
        return _parse_csv(lines, bad)
    return _parse_json_lines(lines, bad)


def _parse_csv(lines: list[tuple[int, str]], bad: list[dict]) -> tuple[pd.DataFrame, list[dict]]:
    if not lines:
        return pd.DataFrame(), bad
    header = next(csv.reader([lines[0][1]]))
    records = []
    for number, text in lines[1:]:
        fields = next(csv.reader([text]), [])
        if len(fields) != len(header):
            reason = f"malformed CSV line: expected {len(header)} fields, got {len(fields)}"
            bad.append(_quarantined(number, text, reason))
            continue
        values = {key: (value if value != "" else None) for key, value in zip(header, fields, strict=True)}
        records.append({**values, "line_number": number, "raw_text": text})
    return pd.DataFrame(records), bad


def _parse_json_lines(lines: list[tuple[int, str]], bad: list[dict]) -> tuple[pd.DataFrame, list[dict]]:
    records = []
    for number, text in lines:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            bad.append(_quarantined(number, text, f"unparsable JSON: {error.msg}"))
            continue
        if not isinstance(value, dict):
            bad.append(_quarantined(number, text, "unparsable JSON: line is not an object"))
            continue
        records.append({**value, "line_number": number, "raw_text": text})
    return pd.DataFrame(records), bad


def _as_int(series: pd.Series) -> pd.Series:
    """Whole numbers as Int64; anything else (booleans included: ``true`` is not an id) is missing."""
    if series.dtype == object:
        series = series.where(~series.map(lambda value: isinstance(value, bool)))
    elif pd.api.types.is_bool_dtype(series):
        return pd.Series(pd.NA, index=series.index, dtype="Int64")
    numbers = pd.to_numeric(series, errors="coerce")
    whole = numbers.notna() & (numbers == numbers.round())
    return numbers.where(whole).astype("Int64")


def _as_timestamp(series: pd.Series) -> pd.Series:
    """Parse datetimes, ISO strings or Unix epoch seconds into naive UTC timestamps."""
    if pd.api.types.is_datetime64_any_dtype(series):
        typed = series.dt.tz_convert(None) if series.dt.tz is not None else series
        return typed.astype("datetime64[us]")
    epoch = pd.to_numeric(series, errors="coerce")
    # Beyond ~1e11 seconds (year 5138) a number is not a plausible epoch; treat it as invalid.
    from_epoch = pd.to_datetime(epoch.where(epoch.abs() < 1e11), unit="s", errors="coerce")
    text = series.where(epoch.isna()).astype("string")
    from_text = pd.to_datetime(text, errors="coerce", utc=True, format="mixed").dt.tz_localize(None)
    return from_epoch.fillna(from_text).astype("datetime64[us]")


def _reject(reasons: pd.Series, mask: pd.Series, reason: str) -> None:
    """Record ``reason`` for rows that fail ``mask`` and have no earlier reason."""
    reasons.loc[mask & reasons.isna()] = reason


@dataclass(frozen=True)
class EventRule:
    """One event check: a row's reason is the first rule, in ``EVENT_RULES`` order, that it fails.

    ``pandas(records, typed, now)`` is the failing mask of the pandas (text file) path; ``sql`` is
    the failing predicate of the DuckDB (Parquet) path over the staged columns that
    ``_stage_parquet_events`` produces: ``missing_<field>``, the typed columns, ``value_bad`` and
    ``dup`` and ``future_limit`` (``now + FUTURE_TOLERANCE``). Both paths read this one
    list, so the order and wording of the reasons cannot diverge.
    """

    reason: str
    pandas: Callable[[pd.DataFrame, pd.DataFrame, datetime], pd.Series]
    sql: str


def _missing_rule(column: str) -> EventRule:
    return EventRule(f"missing field {column}", lambda records, typed, now: records[column].isna(), f"missing_{column}")


def _not_integer_rule(column: str) -> EventRule:
    return EventRule(
        f"{column} is not an integer", lambda records, typed, now: typed[column].isna(), f"{column} is null"
    )


_EVENT_TYPES_SQL = ", ".join(f"'{name}'" for name in sorted(EVENT_TYPES))
EVENT_RULES: tuple[EventRule, ...] = (
    *(_missing_rule(column) for column in REQUIRED["events"]),
    *(_not_integer_rule(column) for column in ("user_id", "item_id")),
    EventRule(
        "unknown event_type",
        lambda records, typed, now: ~typed["event_type"].isin(EVENT_TYPES),
        f"event_type is null or event_type not in ({_EVENT_TYPES_SQL})",
    ),
    EventRule(
        "value is not a number",
        lambda records, typed, now: _raw_value(records).notna() & typed["value"].isna(),
        "value_bad",
    ),
    EventRule(
        "timestamp is not parsable", lambda records, typed, now: typed["timestamp"].isna(), '"timestamp" is null'
    ),
    EventRule(
        "timestamp is before 1970",
        lambda records, typed, now: typed["timestamp"] < pd.Timestamp(0),
        "\"timestamp\" < TIMESTAMP '1970-01-01'",
    ),
    EventRule(
        "timestamp is in the future",
        lambda records, typed, now: typed["timestamp"] > pd.Timestamp(now + FUTURE_TOLERANCE),
        '"timestamp" > future_limit',
    ),
    EventRule("duplicated event_id", lambda records, typed, now: typed["event_id"].duplicated(), "dup"),
)
CROSS_FILE_DUPLICATE = "duplicated event_id (already ingested from {})"


def _raw_value(records: pd.DataFrame) -> pd.Series:
    return records["value"] if "value" in records else pd.Series(None, index=records.index)


def clean_events(records: pd.DataFrame, now: datetime) -> tuple[pd.DataFrame, pd.Series]:
    """Type and check event records; returns the typed frame and a per-row rejection reason."""
    for column in REQUIRED["events"]:
        if column not in records:
            records[column] = None
    typed = pd.DataFrame(index=records.index)
    for column in ("user_id", "item_id"):
        typed[column] = _as_int(records[column])
    typed["event_type"] = records["event_type"].astype("string").str.strip().str.lower()
    typed["value"] = pd.to_numeric(_raw_value(records), errors="coerce")
    typed["timestamp"] = _as_timestamp(records["timestamp"])
    typed["event_id"] = _event_ids(records, typed)
    typed["context"] = _context(records)
    reasons = pd.Series(None, index=records.index, dtype=object)
    for rule in EVENT_RULES:
        _reject(reasons, rule.pandas(records, typed, now), rule.reason)
    return typed, reasons


def _event_ids(records: pd.DataFrame, typed: pd.DataFrame) -> pd.Series:
    """Use the producer's event_id, or derive a stable one from the event's content."""
    ids = records["event_id"].astype("string") if "event_id" in records else None
    if ids is None:
        ids = pd.Series(pd.NA, index=records.index, dtype="string")
    missing = ids.isna()
    if missing.any():
        ids.loc[missing] = _derived_ids(typed.loc[missing])
    return ids


def _derived_ids(typed: pd.DataFrame) -> pd.Series:
    """sha1 of the typed content; both ingestion paths call this so derived ids agree."""
    content = typed[["user_id", "item_id", "event_type", "value", "timestamp"]]
    digest = content.astype(str).agg("|".join, axis=1)
    return digest.map(lambda s: hashlib.sha1(s.encode()).hexdigest())


def _context(records: pd.DataFrame) -> pd.Series:
    """Pack any non-contract columns into one JSON context string."""
    extra = [c for c in records.columns if c not in {*EVENT_COLUMNS, "event_id", "line_number", "raw_text"}]
    if not extra:
        return pd.Series(None, index=records.index, dtype=object)
    return records[extra].apply(lambda row: json.dumps(row.dropna().to_dict(), default=str), axis=1)


def clean_catalog(kind: str, records: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Type and check user or item catalog records."""
    reasons = pd.Series(None, index=records.index, dtype=object)
    typed = pd.DataFrame(index=records.index)
    for column in COLUMNS[kind]:
        if column not in records:
            records[column] = None
    key = REQUIRED[kind][0]
    _reject(reasons, records[key].isna(), f"missing field {key}")
    typed[key] = _as_int(records[key])
    _reject(reasons, typed[key].isna(), f"{key} is not an integer")
    _reject(reasons, typed[key].duplicated(), f"duplicated {key}")
    if kind == "users":
        typed["age"] = _as_int(records["age"])
        _reject(reasons, records["age"].notna() & typed["age"].isna(), "age is not an integer")
        _reject(reasons, (typed["age"] < 0) | (typed["age"] > 120), "age out of range")
        for column in ("gender", "occupation", "zip_code"):
            typed[column] = records[column].astype("string")
    else:
        typed["title"] = records["title"].astype("string")
        typed["release_date"] = pd.to_datetime(records["release_date"], errors="coerce").dt.date
        bad_date = records["release_date"].notna() & typed["release_date"].isna()
        _reject(reasons, bad_date, "release_date is not a date")
        typed["genres"] = records["genres"].astype("string").fillna("")
    return typed, reasons


def clean_served(records: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Type and check serving-log records (one answered request each)."""
    for column in serving_log.FIELDS:
        if column not in records:
            records[column] = None
    reasons = pd.Series(None, index=records.index, dtype=object)
    for column in REQUIRED["serving_logs"]:
        _reject(reasons, records[column].isna(), f"missing field {column}")
    typed = pd.DataFrame(index=records.index)
    for column in ("request_id", "model_version", "source", "path", "history_source", "online_version"):
        typed[column] = records[column].astype("string")
    typed["served_by"] = records["served_by"].astype("string").fillna(serving_log.SHOWN)
    typed["served_at"] = _as_timestamp(records["served_at"])
    _reject(reasons, typed["served_at"].isna(), "served_at is not parsable")
    for column in ("user_id", "k"):
        typed[column] = _as_int(records[column])
    _reject(reasons, typed["user_id"].isna(), "user_id is not an integer")
    _reject(reasons, ~typed["source"].isin(serving_log.SOURCES), "unknown source")
    typed["item_ids"] = records["item_ids"].map(_id_list)
    typed["history_items"] = records["history_items"].map(lambda value: _id_list([] if _absent(value) else value))
    _reject(reasons, typed["item_ids"].isna(), "item_ids is not a list of integer ids")
    _reject(reasons, typed["history_items"].isna(), "history_items is not a list of integer ids")
    typed["scores"] = records["scores"].map(_number_list)
    lengths_differ = typed["scores"].map(lambda v: -1 if v is None else len(v)) != typed["item_ids"].map(
        lambda v: -2 if v is None else len(v)
    )
    _reject(reasons, lengths_differ, "scores is not one finite number per item")
    typed["user_features"] = records["user_features"].map(
        lambda v: None if _absent(v) else json.dumps(v, sort_keys=True)
    )
    typed["latency_ms"] = pd.to_numeric(records["latency_ms"], errors="coerce")
    repeated = typed.duplicated(["request_id", "served_by"]) & typed["request_id"].notna()
    _reject(reasons, repeated, "duplicated request_id")
    return typed, reasons


def _absent(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _id_list(value: object) -> list[int] | None:
    """A list of int64 ids, or None when ``value`` is anything else (booleans are not ids)."""
    if not isinstance(value, list) or not all(type(v) is int and INT64[0] <= v <= INT64[1] for v in value):
        return None
    return value


def _number_list(value: object) -> list[float] | None:
    numbers = isinstance(value, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    return [float(v) for v in value] if numbers else None


def ingest_file(
    connection: duckdb.DuckDBPyConnection, landing: Path, path: Path, kind: str, now: datetime
) -> FileReport:
    """Load one landed file, exactly once per content hash, in a single transaction.

    Parquet event files with plain column types are typed and checked inside DuckDB (no row ever
    becomes a Python object); other files go through pandas. Both stage the file's rows in a
    temporary table, ``_ingest_rows``, that ``_replace_file_rows`` swaps into the raw tables.
    """
    source = path.relative_to(landing).as_posix()
    sha = file_sha256(path)
    seen = connection.execute(
        "select rows_in, rows_loaded, rows_quarantined from raw.ingested_files where source_file = ? and sha256 = ?",
        [source, sha],
    ).fetchone()
    if seen:
        return FileReport(source, kind, *seen, skipped=True, reasons={})
    plan = _parquet_events_plan(connection, path) if kind == "events" and path.suffix == ".parquet" else None
    frame = None if plan is not None else _clean_with_pandas(path, kind, now)
    connection.execute("begin transaction")
    try:
        if plan is not None:
            _stage_parquet_events(connection, path, plan, now)
        else:
            _stage_frame(connection, kind, frame)
        reasons = _replace_file_rows(connection, kind, source, plan.raw_text_sql if plan else "null", now)
        rows_in = sum(reasons.values())
        rows_quarantined = rows_in - reasons.get(None, 0)
        connection.execute(
            "insert or replace into raw.ingested_files values (?, ?, ?, ?, ?, ?, ?)",
            [source, kind, sha, rows_in, reasons.get(None, 0), rows_quarantined, now],
        )
        connection.execute(f"drop table if exists {STAGING}")
        connection.execute("commit")
    except Exception:
        connection.execute("rollback")
        raise
    counts = {reason: n for reason, n in reasons.items() if reason is not None}
    return FileReport(source, kind, rows_in, reasons.get(None, 0), rows_quarantined, False, counts)


STAGING = "_ingest_rows"  # temporary table: one row per input row, typed, with its reason (null = load)
TARGET_TYPES = {
    "events": {
        "event_id": "varchar", "user_id": "bigint", "item_id": "bigint", "event_type": "varchar",
        "value": "double", "timestamp": "timestamp", "context": "varchar",
    },
    "users": {
        "user_id": "bigint", "age": "integer", "gender": "varchar", "occupation": "varchar", "zip_code": "varchar",
    },
    "items": {"item_id": "bigint", "title": "varchar", "release_date": "date", "genres": "varchar"},
    "serving_logs": {
        "request_id": "varchar", "served_by": "varchar", "served_at": "timestamp", "user_id": "bigint", "k": "integer",
        "model_version": "varchar", "source": "varchar", "path": "varchar", "history_source": "varchar",
        "history_items": "bigint[]", "user_features": "varchar", "item_ids": "bigint[]", "scores": "double[]",
        "latency_ms": "double", "online_version": "varchar",
    },
}  # fmt: skip


def _clean_with_pandas(path: Path, kind: str, now: datetime) -> pd.DataFrame:
    """Every input row of a file: typed target columns plus line_number, raw_text and reason."""
    records, unparsable = read_records(path)
    if kind == "events":
        typed, reasons = clean_events(records, now)
    elif kind == serving_log.KIND:
        typed, reasons = clean_served(records)
    else:
        typed, reasons = clean_catalog(kind, records)
    typed = typed.assign(
        line_number=records["line_number"], raw_text=_raw_texts(kind, records, reasons), reason=reasons
    )
    return pd.concat(
        [pd.DataFrame(unparsable, columns=["line_number", "raw_text", "reason"]), typed], ignore_index=True
    )


def _raw_texts(kind: str, records: pd.DataFrame, reasons: pd.Series) -> pd.Series:
    """The source line of each record; for columnar files a JSON of the row's values.

    Columnar rows are quoted where rejected and, for events (which the cross-file duplicate check
    may still reject), everywhere.
    """
    if "raw_text" in records:
        return records["raw_text"]
    quoted = records if kind == "events" else records.loc[reasons.notna()]
    fields = quoted.drop(columns="line_number").astype(str).to_dict(orient="records")
    return pd.Series([json.dumps(row) for row in fields], index=quoted.index, dtype=object).reindex(records.index)


def _stage_frame(connection: duckdb.DuckDBPyConnection, kind: str, frame: pd.DataFrame) -> None:
    columns = {**TARGET_TYPES[kind], "line_number": "bigint", "raw_text": "varchar", "reason": "varchar"}
    for column in columns:
        if column not in frame:
            frame[column] = None
    casts = ", ".join(f"cast({_quote(c)} as {t}) as {_quote(c)}" for c, t in columns.items())
    connection.register("_ingest_frame", frame[list(columns)])
    try:
        connection.execute(f"create or replace temp table {STAGING} as select {casts} from _ingest_frame")
    finally:
        connection.unregister("_ingest_frame")


# -- the DuckDB path for Parquet event files -------------------------------------------------------

_SIGNED = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"}
_FLOAT = {"FLOAT", "DOUBLE"}
_TIMESTAMPS = {"TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATE"}
_ZONED = {"TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "TIMESTAMPTZ_NS", "TIMESTAMP_NS WITH TIME ZONE"}
_CONTEXT_TYPES = _SIGNED | _FLOAT | _TIMESTAMPS | {"VARCHAR", "BOOLEAN"}


@dataclass(frozen=True)
class _ParquetPlan:
    """SQL expressions that type one Parquet file's columns the way the pandas path would."""

    typed: dict[str, str]  # staged column -> expression over the file's columns
    raw_text_sql: str  # a row's values as JSON, over the staged src_ columns
    sources: list[str]  # the file's columns


def _parquet_events_plan(connection: duckdb.DuckDBPyConnection, path: Path) -> _ParquetPlan | None:
    """A plan when every column has a type whose SQL typing matches pandas; None means use pandas."""
    schema = {
        name: kind.upper()
        for name, kind, *_ in connection.execute("describe select * from read_parquet(?)", [str(path)]).fetchall()
    }
    if any(name.startswith("src_") or name in {"file_row_number", "line_number"} for name in schema):
        return None

    def col(name: str) -> str:
        return _quote(name)

    typed: dict[str, str] = {}
    for name in ("user_id", "item_id"):
        kind = schema.get(name)
        if kind is None:
            typed[f"missing_{name}"], typed[name] = "true", "cast(null as bigint)"
        elif kind in _SIGNED:
            typed[f"missing_{name}"], typed[name] = f"{col(name)} is null", f"cast({col(name)} as bigint)"
        elif kind in _FLOAT:
            typed[f"missing_{name}"] = f"({col(name)} is null or isnan({col(name)}))"
            typed[name] = (
                f"case when isfinite({col(name)}) and {col(name)} = round({col(name)}) "
                f"then try_cast({col(name)} as bigint) end"
            )
        else:
            return None
    kind = schema.get("event_type")
    if kind is None:
        typed["missing_event_type"], typed["event_type"] = "true", "cast(null as varchar)"
    elif kind == "VARCHAR":
        typed["missing_event_type"] = "event_type is null"
        typed["event_type"] = f"lower(trim(event_type, {_sql_literal(_WHITESPACE)}))"
    else:
        return None
    kind = schema.get("value")
    if kind is None:
        typed["value"] = "cast(null as double)"
    elif kind in _SIGNED:
        typed["value"] = "cast(value as double)"
    elif kind in _FLOAT:
        typed["value"] = "case when isnan(value) then null else cast(value as double) end"
    else:
        return None
    typed["value_bad"] = "false"  # a numeric column is either null or a number
    kind = schema.get("timestamp")
    ts = col("timestamp")
    if kind is None:
        typed["missing_timestamp"], typed["timestamp"] = "true", "cast(null as timestamp)"
    elif kind in _TIMESTAMPS:
        typed["missing_timestamp"], typed["timestamp"] = f"{ts} is null", f"cast({ts} as timestamp)"
    elif kind in _ZONED:
        typed["missing_timestamp"] = f"{ts} is null"
        typed["timestamp"] = f"timezone('UTC', cast({ts} as timestamptz))"
    elif kind in _SIGNED:  # Unix epoch seconds; beyond ~1e11 s it is not a plausible epoch
        typed["missing_timestamp"] = f"{ts} is null"
        typed["timestamp"] = (
            f"case when abs(cast({ts} as double)) < 1e11 then make_timestamp(cast({ts} as bigint) * 1000000) end"
        )
    else:
        return None
    kind = schema.get("event_id")
    if kind is None:
        typed["event_id"] = "cast(null as varchar)"
    elif kind == "VARCHAR":
        typed["event_id"] = "event_id"
    else:
        return None
    extra = [name for name in schema if name not in {*EVENT_COLUMNS, "event_id"}]
    if any(schema[name] not in _CONTEXT_TYPES for name in extra):
        return None
    typed["context"] = _context_sql(extra, schema) if extra else "cast(null as varchar)"
    quoted = ", ".join(f"{_sql_literal(name)}, cast({_quote('src_' + name)} as varchar)" for name in schema)
    return _ParquetPlan(typed, f"cast(json_object({quoted}) as varchar)", list(schema))


_WHITESPACE = "".join(c for c in map(chr, range(0x3100)) if c.isspace())  # what str.strip() strips


def _context_sql(extra: list[str], schema: dict[str, str]) -> str:
    """``{"column": value, ...}`` of the non-null extra columns, as the pandas path writes it."""
    members = []
    for name in extra:
        value = _quote(name)
        present = f"{value} is not null" + (f" and not isnan({value})" if schema[name] in _FLOAT else "")
        json_value = f"to_json(cast({value} as varchar))" if schema[name] in _TIMESTAMPS else f"to_json({value})"
        members.append(
            f"case when {present} then {_sql_literal(json.dumps(name) + ': ')} || cast({json_value} as varchar) end"
        )
    return f"'{{' || concat_ws(', ', {', '.join(members)}) || '}}'"


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _stage_parquet_events(connection: duckdb.DuckDBPyConnection, path: Path, plan: _ParquetPlan, now: datetime) -> None:
    """Read, type and check one Parquet events file into the staging table, all inside DuckDB."""
    typed = ", ".join(f"{expression} as {_quote(name)}" for name, expression in plan.typed.items())
    sources = ", ".join(f"{_quote(name)} as {_quote('src_' + name)}" for name in plan.sources)
    rows = (
        f"select file_row_number + 1 as line_number, cast(null as varchar) as raw_text, {typed}, {sources} "
        "from read_parquet(?, file_row_number = true)"
    )
    connection.execute(
        f"create or replace temp table {STAGING} as {_with_reasons(rows)}", [now + FUTURE_TOLERANCE, str(path)]
    )
    missing = connection.execute(
        f'select line_number, user_id, item_id, event_type, value, "timestamp" from {STAGING} '
        "where event_id is null order by line_number"
    ).df()
    if len(missing) == 0:
        return
    # Rare: derive ids with the pandas path's own function so both paths agree, then re-check.
    missing["user_id"] = missing["user_id"].astype("Int64")
    missing["item_id"] = missing["item_id"].astype("Int64")
    missing["event_type"] = missing["event_type"].astype("string")
    missing["timestamp"] = missing["timestamp"].astype("datetime64[us]")
    derived = pd.DataFrame({"line_number": missing["line_number"], "event_id": _derived_ids(missing)})
    connection.register("_ingest_derived", derived)
    try:
        connection.execute(
            f"update {STAGING} set event_id = d.event_id from _ingest_derived d "
            f"where {STAGING}.line_number = d.line_number"
        )
    finally:
        connection.unregister("_ingest_derived")
    rows = f"select * exclude (reason) from {STAGING}"
    connection.execute(f"create or replace temp table {STAGING} as {_with_reasons(rows)}", [now + FUTURE_TOLERANCE])


def _with_reasons(rows: str) -> str:
    """``rows`` plus each row's first failing ``EVENT_RULES`` reason; the future limit is the first parameter."""
    cases = " ".join(f"when coalesce({rule.sql}, false) then {_sql_literal(rule.reason)}" for rule in EVENT_RULES)
    return (
        f"select * exclude (dup, future_limit), case {cases} end as reason from ("
        "select *, row_number() over (partition by event_id order by line_number) > 1 as dup, "
        f"? as future_limit from ({rows}))"
    )


def _replace_file_rows(
    connection: duckdb.DuckDBPyConnection, kind: str, source: str, raw_text_sql: str, now: datetime
) -> dict[str | None, int]:
    """Swap in this file's staged rows inside the caller's transaction; row counts per reason.

    An event whose id another file already loaded is quarantined, not loaded twice; this file's
    own earlier rows were deleted first, so a changed file still replaces them.
    """
    connection.execute(f"delete from raw.{RAW_TABLES[kind]} where source_file = ?", [source])
    connection.execute("delete from raw.quarantine where source_file = ?", [source])
    if kind == "events":
        connection.execute(
            f"update {STAGING} set reason = replace({_sql_literal(CROSS_FILE_DUPLICATE)}, '{{}}', d.source_file) "
            f"from (select e.event_id, min(e.source_file) as source_file from raw.events e "
            f"semi join {STAGING} s on s.event_id = e.event_id and s.reason is null group by e.event_id) d "
            f"where {STAGING}.reason is null and {STAGING}.event_id = d.event_id"
        )
    columns = list(TARGET_TYPES[kind])
    names = ", ".join(map(_quote, columns))
    connection.execute(
        f"insert into raw.{RAW_TABLES[kind]} ({names}, source_file, ingested_at) "
        f"select {names}, ?, ? from {STAGING} where reason is null",
        [source, now],
    )
    connection.execute(
        "insert into raw.quarantine (source_file, line_number, raw_text, reason, quarantined_at) "
        f"select ?, line_number, coalesce(raw_text, {raw_text_sql}), reason, ? from {STAGING} "
        "where reason is not null order by line_number",
        [source, now],
    )
    rows = connection.execute(f"select reason, count(*) from {STAGING} group by reason").fetchall()
    return dict(rows)


def _quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def ingested_hashes(warehouse_path: Path, timeout_s: float = 5.0) -> dict[str, dict[str, str]]:
    """What raw ingestion has loaded: ``{kind: {file name: sha256}}``, read in a short read-only connection.

    This ledger is the one answer to "is this file already ingested?", whoever ingested it (a
    sensor-launched run or an in-process ``recs-platform run``). A warehouse that does not exist
    yet has ingested nothing; a busy one raises ``WarehouseBusy`` after ``timeout_s``.
    """
    if not warehouse_path.exists():
        return {}
    with connect(warehouse_path, read_only=True, timeout_s=timeout_s) as connection:
        if not has_raw_schema(connection):
            return {}
        rows = connection.execute("select kind, source_file, sha256 from raw.ingested_files").fetchall()
    ledger: dict[str, dict[str, str]] = {}
    for kind, source, sha in rows:
        ledger.setdefault(kind, {})[Path(source).name] = sha
    return ledger


def ingest_landing(
    connection: duckdb.DuckDBPyConnection,
    landing: Path,
    kinds: tuple[str, ...] = ("users", "items", "events"),
    now: datetime | None = None,
) -> list[FileReport]:
    """Ingest every landed file of the given kinds that is new or changed."""
    ensure_raw_schema(connection)
    now = now or datetime.utcnow()
    return [ingest_file(connection, landing, path, kind, now) for kind in kinds for path in landed_files(landing, kind)]
