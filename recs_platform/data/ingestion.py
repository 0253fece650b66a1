"""Load landed files into the warehouse's raw schema, typed by the dataset contract, quarantining bad rows.

Each file is loaded in one transaction that first removes whatever an earlier attempt loaded
from the same file, and is recorded in ``raw.ingested_files`` with its content hash. Re-ingesting
an unchanged file is a no-op; a crash half-way leaves nothing behind; a changed file replaces
its earlier rows.

Hostile input loses nothing: for every file, whatever it holds, rows in = rows loaded + rows
quarantined, each quarantined row with a reason, and no value is changed on the way in:

- an integer id is an integer (a JSON integer, or text of decimal digits): booleans and floats,
  even ``3.0``, are not, and a value outside int64 is quarantined, never wrapped or truncated;
- a string id is text of 1 to ``MAX_STRING_ID`` characters, not blank and without control
  characters, kept exactly as written; a JSON integer counts as its decimal text, because a CSV
  file cannot tell ``123`` from ``"123"`` and every format must agree;
- numbers must be finite; JSON's non-standard ``NaN``/``Infinity`` make a line unparsable;
- a file lacking a column the contract requires has every row quarantined with a reason naming
  the columns, an empty or header-only file is recorded with no rows, and a file that cannot be
  read at all (a truncated Parquet file) is one quarantined row; ``FileReport.problem`` says so
  in one sentence, which ``problems`` gathers for the run to fail with.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recs_platform.data import serving_log
from recs_platform.data.contract import MAX_STRING_ID, DatasetContract, IdType
from recs_platform.data.events import EVENT_COLUMNS, RAW_TABLES, file_sha256, landed_files
from recs_platform.data.warehouse import BOOKKEEPING, connect, ensure_raw_schema, has_raw_schema, raw_table_columns

# Allowance for clock skew between producers and the platform before a timestamp is "future".
FUTURE_TOLERANCE = timedelta(hours=1)
REQUIRED = {
    "events": ("user_id", "item_id", "event_type", "timestamp"),
    "users": ("user_id",),
    "items": ("item_id",),
    "serving_logs": ("request_id", "served_at", "user_id", "model_version", "source", "item_ids"),
}
INT64 = (-(2**63), 2**63 - 1)
# Why an id is rejected, per id type, in the order the checks run.
NOT_INTEGER, OUT_OF_RANGE = "{} is not an integer", "{} is out of the int64 range"
NOT_TEXT, BLANK, CONTROL = "{} is not text", "{} is blank", "{} has control characters"
TOO_LONG = f"{{}} is longer than {MAX_STRING_ID} characters"
ID_REASONS = {"integer": (NOT_INTEGER, OUT_OF_RANGE), "string": (NOT_TEXT, BLANK, TOO_LONG, CONTROL)}
UNKNOWN_EVENT_TYPE = "unknown event_type"
_DIGITS = re.compile(r"[+-]?[0-9]+")
_CONTROL_CHARACTERS = "[\x00-\x1f\x7f]"


class IngestionError(ValueError):
    """Landed data a person must fix or re-declare; the message names the file, column or setting."""


@dataclass(frozen=True)
class FileReport:
    """What happened to one landed file; ``problem`` is a file-level sentence (whole file rejected)."""

    source_file: str
    kind: str
    rows_in: int
    rows_loaded: int
    rows_quarantined: int
    skipped: bool
    reasons: dict[str, int]
    problem: str | None = None

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


def _quarantined(line_number: int | None, raw_text: str | None, reason: str) -> dict:
    return {"line_number": line_number, "raw_text": raw_text, "reason": reason}


# Integer columns come back as nullable Int64, not float64 (which would make every id a float).
_NULLABLE_INTEGERS = {
    getattr(pa, name)(): getattr(pd, name.capitalize().replace("Uint", "UInt") + "Dtype")()
    for name in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
}


def read_records(path: Path) -> tuple[pd.DataFrame, list[dict]]:
    """Read a landed file into records plus the lines that could not be parsed.

    Records carry ``line_number`` and ``raw_text`` (the source line; null for Parquet, whose
    rejected rows are quoted later) so any rejection can quote the source. Raises whatever the
    Parquet reader raises on an unreadable file.
    """
    if path.suffix == ".parquet":
        frame = pq.read_table(path).to_pandas(types_mapper=_NULLABLE_INTEGERS.get)
        return frame.assign(line_number=range(1, len(frame) + 1), raw_text=None), []
    lines, bad = _read_text_lines(path)
    if path.suffix == ".csv":
        return _parse_csv(lines, bad)
    return _parse_json_lines(lines, bad)


def _records(records: list[dict], columns: list[str] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(records, columns=columns, dtype=object)  # as parsed: no int → float coercion
    return frame.assign(**{c: frame.get(c, pd.Series(dtype=object)) for c in ("line_number", "raw_text")})


def _parse_csv(lines: list[tuple[int, str]], bad: list[dict]) -> tuple[pd.DataFrame, list[dict]]:
    if not lines:
        return _records([]), bad
    try:
        header = next(csv.reader([lines[0][1]]))
    except csv.Error as error:
        return _records([]), bad + [_quarantined(n, text, f"malformed CSV header: {error}") for n, text in lines]
    records = []
    for number, text in lines[1:]:
        try:
            fields = next(csv.reader([text]), [])
        except csv.Error as error:
            bad.append(_quarantined(number, text, f"malformed CSV line: {error}"))
            continue
        if len(fields) != len(header):
            reason = f"malformed CSV line: expected {len(header)} fields, got {len(fields)}"
            bad.append(_quarantined(number, text, reason))
            continue
        values = {key: (value if value != "" else None) for key, value in zip(header, fields, strict=True)}
        records.append({**values, "line_number": number, "raw_text": text})
    return _records(records, [*dict.fromkeys(header), "line_number", "raw_text"]), bad


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _parse_json_lines(lines: list[tuple[int, str]], bad: list[dict]) -> tuple[pd.DataFrame, list[dict]]:
    records = []
    for number, text in lines:
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as error:  # JSONDecodeError, NaN/Infinity, huge numbers, deep nesting
            bad.append(_quarantined(number, text, f"unparsable JSON: {getattr(error, 'msg', error)}"))
            continue
        if not isinstance(value, dict):
            bad.append(_quarantined(number, text, "unparsable JSON: line is not an object"))
            continue
        records.append({**value, "line_number": number, "raw_text": text})
    return _records(records), bad


# -- typing values: each returns the typed column and, per row, why a present value was rejected ---


def _is_bool(value: object) -> bool:
    return isinstance(value, bool | np.bool_)


def _integer(value: object) -> tuple[int | None, str | None]:
    """An int64 from an integer or decimal-digit text; booleans and floats (even 3.0) are not integers."""
    if isinstance(value, int | np.integer) and not _is_bool(value):
        number = int(value)
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        return None, NOT_INTEGER
    return (number, None) if INT64[0] <= number <= INT64[1] else (None, OUT_OF_RANGE)


def _text(value: object) -> str | None:
    """Text as written; an integer as its decimal text (CSV cannot tell them apart); else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | np.integer) and not _is_bool(value):
        return str(int(value))
    return None


def _string_id(value: object) -> tuple[str | None, str | None]:
    text = _text(value)
    if text is None:
        return None, NOT_TEXT
    if not text.strip():
        return None, BLANK
    if len(text) > MAX_STRING_ID:
        return None, TOO_LONG
    if re.search(_CONTROL_CHARACTERS, text):
        return None, CONTROL
    return text, None


ID_PARSERS = {"integer": _integer, "string": _string_id}


def _map_present(series: pd.Series, parse: Callable[[object], tuple[object, str | None]], dtype: str, column: str):
    """Apply a scalar parser to the present values; (typed column, reason per row or None)."""
    typed = pd.Series(pd.NA, index=series.index, dtype=dtype)
    reasons = pd.Series(None, index=series.index, dtype=object)
    present = series[series.notna()]
    if len(present):
        parsed = [parse(value) for value in present]
        typed.loc[present.index] = pd.array([value for value, _ in parsed], dtype=dtype)
        reasons.loc[present.index] = [None if why is None else why.format(column) for _, why in parsed]
    return typed, reasons


def typed_ids(series: pd.Series, id_type: IdType, column: str) -> tuple[pd.Series, pd.Series]:
    """Ids of the contract's type; the reason per row names ``column`` (None: fine or missing)."""
    dtype = "Int64" if id_type == "integer" else "string"
    if pd.api.types.is_signed_integer_dtype(series.dtype):  # already int64 or narrower: nothing to check
        typed = series.astype("Int64")
        return (typed if id_type == "integer" else typed.astype("string")), pd.Series(None, index=series.index)
    return _map_present(series, ID_PARSERS[id_type], dtype, column)


def _numbers(series: pd.Series) -> pd.Series:
    """Floats where a value is a number (or numeric text), NaN elsewhere: booleans are not numbers."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return pd.Series(np.nan, index=series.index)
    if pd.api.types.is_numeric_dtype(series.dtype):
        return pd.Series(series.to_numpy(dtype=float, na_value=np.nan), index=series.index)
    return series.astype(object).map(_number).astype(float)


def _number(value: object) -> float:
    if _is_bool(value) or not isinstance(value, int | float | np.number | str):
        return math.nan
    try:
        return float(value)
    except (ValueError, OverflowError):
        return math.nan


def _finite_numbers(series: pd.Series, column: str) -> tuple[pd.Series, pd.Series]:
    numbers = _numbers(series)
    bad = series.notna() & ~np.isfinite(numbers)
    return numbers.where(~bad), pd.Series(np.where(bad, f"{column} is not a number", None), index=series.index)


def _texts(series: pd.Series, column: str) -> tuple[pd.Series, pd.Series]:
    """Text columns (categorical, multi): text or integers; floats, booleans and nested values are not."""

    def parse(value: object) -> tuple[str | None, str | None]:
        text = _text(value)
        return text, (None if text is not None else "{} is not text")

    return _map_present(series, parse, "string", column)


EPOCH_SECONDS_LIMIT = 9.2e9  # datetime64[ns] ends at 9.22e9 s


def _as_timestamp(series: pd.Series) -> pd.Series:
    """Parse datetimes, ISO strings or Unix epoch seconds into naive UTC timestamps."""
    if pd.api.types.is_datetime64_any_dtype(series):
        typed = series.dt.tz_convert(None) if series.dt.tz is not None else series
        return typed.astype("datetime64[us]")
    epoch = _numbers(series)
    # Beyond datetime64's range (years 1678-2261) a number is not a plausible epoch: invalid. Whole
    # microseconds take pandas' integer path: its float-seconds path rounds under
    # np.errstate(over="raise"), and once raised FloatingPointError on a hostile file in CI, failing
    # the whole file (not reproduced on replay).
    micros = (epoch.where(epoch.abs() < EPOCH_SECONDS_LIMIT) * 1e6).round().astype("Int64")
    from_epoch = pd.to_datetime(micros, unit="us")
    is_text = series.map(lambda value: not isinstance(value, bool | int | float | np.number | list | dict))
    text = series.where(epoch.isna() & is_text).astype("string")
    from_text = pd.to_datetime(text, errors="coerce", utc=True, format="mixed").dt.tz_localize(None)
    return from_epoch.fillna(from_text).astype("datetime64[us]")


def _as_date(series: pd.Series, column: str) -> tuple[pd.Series, pd.Series]:
    """Dates from date values or date text; a time of day other than midnight is not a date."""
    if pd.api.types.is_datetime64_any_dtype(series):
        parsed = series.astype("datetime64[us]")
    else:
        is_text = series.map(lambda value: not isinstance(value, bool | int | float | np.number | list | dict))
        parsed = pd.to_datetime(series.where(is_text).astype("string"), errors="coerce", format="mixed")
        parsed = parsed.astype("datetime64[us]")
    bad = series.notna() & (parsed.isna() | (parsed != parsed.dt.normalize()))
    dates = parsed.where(~bad).dt.date.where(~bad, None)
    return dates, pd.Series(np.where(bad, f"{column} is not a date", None), index=series.index)


def _reject(reasons: pd.Series, mask: pd.Series, reason: str) -> None:
    """Record ``reason`` for rows that fail ``mask`` and have no earlier reason."""
    reasons.loc[mask.fillna(False).astype(bool) & reasons.isna()] = reason


def _reject_each(reasons: pd.Series, found: pd.Series) -> None:
    """Record per-row reasons (None: fine) for rows without an earlier reason."""
    take = found.notna() & reasons.isna()
    reasons.loc[take] = found[take]


@dataclass(frozen=True)
class EventRule:
    """One event check: a row's reason is the first rule, in ``event_rules`` order, that it fails.

    ``pandas(records, typed, now)`` is the failing mask of the pandas (text file) path; ``sql`` is
    the failing predicate of the DuckDB (Parquet) path over the staged columns that
    ``_stage_parquet_events`` produces: ``missing_<field>``, ``<id>_problem``, the typed columns,
    ``value_bad`` and ``dup`` and ``future_limit`` (``now + FUTURE_TOLERANCE``). Both paths read
    one list, so the order and wording of the reasons cannot diverge.
    """

    reason: str
    pandas: Callable[[pd.DataFrame, pd.DataFrame, datetime], pd.Series]
    sql: str


def _missing_rule(column: str) -> EventRule:
    return EventRule(f"missing field {column}", lambda records, typed, now: records[column].isna(), f"missing_{column}")


def _id_rule(column: str, reason: str) -> EventRule:
    """``reason`` is one of ``ID_REASONS``; both paths stage the reason as ``<column>_problem``."""
    text = reason.format(column)
    return EventRule(
        text, lambda records, typed, now: typed[f"{column}_problem"] == text, f"{column}_problem = {_sql_literal(text)}"
    )


@lru_cache(maxsize=16)
def event_rules(contract: DatasetContract) -> tuple[EventRule, ...]:
    """The event checks of one contract, in the order a row's reason is chosen."""
    event_types = ", ".join(_sql_literal(name) for name in sorted(contract.event_type_names))
    return (
        *(_missing_rule(column) for column in REQUIRED["events"]),
        *(_id_rule(c, reason) for c in ("user_id", "item_id") for reason in ID_REASONS[contract.id_type(c)]),
        EventRule(
            UNKNOWN_EVENT_TYPE,
            lambda records, typed, now: ~typed["event_type"].isin(contract.event_type_names).fillna(False),
            f"event_type is null or event_type not in ({event_types})",
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


def clean_events(records: pd.DataFrame, now: datetime, contract: DatasetContract) -> tuple[pd.DataFrame, pd.Series]:
    """Type and check event records; returns the typed frame and a per-row rejection reason."""
    for column in REQUIRED["events"]:
        if column not in records:
            records[column] = None
    typed = pd.DataFrame(index=records.index)
    for column in ("user_id", "item_id"):
        typed[column], typed[f"{column}_problem"] = typed_ids(records[column], contract.id_type(column), column)
    event_types = records["event_type"].where(records["event_type"].map(lambda value: isinstance(value, str)))
    typed["event_type"] = event_types.astype("string").str.strip().str.lower()
    typed["value"], _ = _finite_numbers(_raw_value(records), "value")
    typed["timestamp"] = _as_timestamp(records["timestamp"])
    typed["event_id"] = _event_ids(records, typed)
    typed["context"] = _context(records)
    rules = event_rules(contract)
    fails = [np.asarray(rule.pandas(records, typed, now).fillna(False), dtype=bool) for rule in rules]
    reasons = np.select(fails, [rule.reason for rule in rules], default=None) if len(records) else []
    return typed, pd.Series(reasons, index=records.index, dtype=object)


def _event_ids(records: pd.DataFrame, typed: pd.DataFrame) -> pd.Series:
    """Use the producer's event_id, or derive a stable one from the event's content."""
    given = records["event_id"] if "event_id" in records else pd.Series(None, index=records.index, dtype=object)
    ids, _ = _texts(given, "event_id")
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
    if not extra or records.empty:
        return pd.Series(None, index=records.index, dtype=object)
    return records[extra].apply(lambda row: json.dumps(row.dropna().to_dict(), default=str), axis=1)


def clean_catalog(kind: str, records: pd.DataFrame, contract: DatasetContract) -> tuple[pd.DataFrame, pd.Series]:
    """Type and check user or item catalogue records by the contract's declared columns and kinds."""
    key = REQUIRED[kind][0]
    columns = contract.catalog(kind)
    for column in (key, *(c.name for c in columns)):
        if column not in records:
            records[column] = None
    reasons = pd.Series(None, index=records.index, dtype=object)
    typed = pd.DataFrame(index=records.index)
    _reject(reasons, records[key].isna(), f"missing field {key}")
    typed[key], problems = typed_ids(records[key], contract.id_type(key), key)
    _reject_each(reasons, problems)
    _reject(reasons, typed[key].duplicated() & typed[key].notna(), f"duplicated {key}")
    for column in columns:
        values = records[column.name]
        if column.kind == "numeric":
            typed[column.name], problems = _finite_numbers(values, column.name)
        elif column.kind == "date":
            typed[column.name], problems = _as_date(values, column.name)
        elif column.kind == "timestamp":
            typed[column.name] = _as_timestamp(values)
            bad = values.notna() & typed[column.name].isna()
            problems = pd.Series(np.where(bad, f"{column.name} is not a timestamp", None), index=values.index)
        else:  # categorical and multi: the text as written (multi keeps its separators)
            typed[column.name], problems = _texts(values, column.name)
        _reject_each(reasons, problems)
    return typed, reasons


def clean_served(records: pd.DataFrame, contract: DatasetContract) -> tuple[pd.DataFrame, pd.Series]:
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
    typed["user_id"], problems = typed_ids(records["user_id"], contract.user_id_type, "user_id")
    _reject_each(reasons, problems)
    typed["k"], _ = typed_ids(records["k"], "integer", "k")
    _reject(reasons, ~typed["source"].isin(serving_log.SOURCES), "unknown source")
    parse = ID_PARSERS[contract.item_id_type]
    typed["item_ids"] = records["item_ids"].map(lambda value: _id_list(value, parse))
    typed["history_items"] = records["history_items"].map(lambda v: _id_list([] if _absent(v) else v, parse))
    kind = f"{contract.item_id_type} ids"
    _reject(reasons, typed["item_ids"].isna(), f"item_ids is not a list of {kind}")
    _reject(reasons, typed["history_items"].isna(), f"history_items is not a list of {kind}")
    typed["scores"] = records["scores"].map(_number_list)
    lengths_differ = typed["scores"].map(lambda v: -1 if v is None else len(v)) != typed["item_ids"].map(
        lambda v: -2 if v is None else len(v)
    )
    _reject(reasons, lengths_differ, "scores is not one finite number per item")
    typed["user_features"] = records["user_features"].map(
        lambda v: None if _absent(v) else json.dumps(v, sort_keys=True, default=str)
    )
    typed["latency_ms"], _ = _finite_numbers(records["latency_ms"], "latency_ms")
    repeated = typed.duplicated(["request_id", "served_by"]) & typed["request_id"].notna()
    _reject(reasons, repeated, "duplicated request_id")
    return typed, reasons


def _absent(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_list(value: object) -> list | None:
    """Lists from JSON, or from Parquet (which pandas hands over as arrays)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value if isinstance(value, list) else None


def _id_list(value: object, parse: Callable[[object], tuple[object, str | None]]) -> list | None:
    """The ids of a list when every element is a valid id of the contract's type, else None."""
    values = _as_list(value)
    if values is None:
        return None
    parsed = [parse(v) for v in values]
    return None if any(why is not None for _, why in parsed) else [v for v, _ in parsed]


def _number_list(value: object) -> list[float] | None:
    values = _as_list(value)
    numbers = values is not None and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )
    return [float(v) for v in values] if numbers else None


def ingest_file(
    connection: duckdb.DuckDBPyConnection,
    landing: Path,
    path: Path,
    kind: str,
    now: datetime,
    contract: DatasetContract,
) -> FileReport:
    """Load one landed file, exactly once per content hash, in a single transaction; never raises
    for what the file holds.

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
    problem, raw_text_sql = _stage_file(connection, path, kind, now, contract)
    connection.execute("begin transaction")
    try:
        reasons = _replace_file_rows(connection, kind, source, raw_text_sql, now, contract)
        rows_in = sum(reasons.values())
        rows_quarantined = rows_in - reasons.get(None, 0)
        connection.execute(
            "insert or replace into raw.ingested_files values (?, ?, ?, ?, ?, ?, ?)",
            [source, kind, sha, rows_in, reasons.get(None, 0), rows_quarantined, now],
        )
        if problem is None and kind == "events" and reasons.get(UNKNOWN_EVENT_TYPE):
            problem = _event_type_problem(connection, contract)
        connection.execute(f"drop table if exists {STAGING}")
        connection.execute("commit")
    except Exception:
        connection.execute("rollback")
        raise
    counts = {reason: n for reason, n in reasons.items() if reason is not None}
    problem = None if problem is None else f"{source}: {problem}"
    return FileReport(source, kind, rows_in, reasons.get(None, 0), rows_quarantined, False, counts, problem)


def _stage_file(
    connection: duckdb.DuckDBPyConnection, path: Path, kind: str, now: datetime, contract: DatasetContract
) -> tuple[str | None, str]:
    """Stage every input row with its reason; (file-level problem or None, SQL quoting rejected rows)."""
    if kind == "events" and path.suffix == ".parquet":
        try:
            plan = _parquet_events_plan(connection, path, contract)
            if plan is not None:
                _stage_parquet_events(connection, path, plan, now, contract)
                return None, plan.raw_text_sql
        except duckdb.Error:
            pass  # unreadable or odd: the pandas path reads it again and says what is wrong
    try:
        records, unparsable = read_records(path)
    except Exception as error:  # a truncated or corrupt file is quarantined whole, whatever broke
        reason = f"unreadable {path.suffix.lstrip('.')} file: {type(error).__name__}: {error}"
        frame = pd.DataFrame([_quarantined(None, None, reason[:1000])])
        _stage_frame(connection, kind, frame, contract)
        return f"could not be read ({reason}), so it was quarantined whole", "null"
    missing = [column for column in REQUIRED[kind] if column not in records]
    problem = None
    columns = [str(c) for c in records.columns if c not in ("line_number", "raw_text")]
    if missing and columns:  # an empty file (no columns known) is just empty
        names = ", ".join(missing)
        reason = f"file has no {names} column"
        quoted = _raw_texts(records, np.ones(len(records), dtype=bool))
        unparsable += [_quarantined(n, text, reason) for n, text in zip(records.line_number, quoted, strict=True)]
        problem = (
            f"lacks the column {names} that contract {contract.name!r} requires for {kind} (it has "
            f"{', '.join(columns)}), so its {len(unparsable)} rows were quarantined"
        )
        records = records.iloc[0:0]
    _stage_frame(connection, kind, _clean_with_pandas(kind, records, unparsable, now, contract), contract)
    return problem, "null"


def _event_type_problem(connection: duckdb.DuckDBPyConnection, contract: DatasetContract) -> str | None:
    """The sentence for a file none of whose event types the contract declares (None when some are)."""
    declared = sorted(contract.event_type_names)
    known = f"select count(*) from {STAGING} where event_type in ({', '.join('?' * len(declared))})"
    if connection.execute(known, declared).fetchone()[0]:
        return None
    found = connection.execute(
        f"select distinct event_type from {STAGING} where reason = ? and event_type is not null "
        "order by event_type limit 5",
        [UNKNOWN_EVENT_TYPE],
    ).fetchall()
    types = ", ".join(repr(t) for (t,) in found) or "none"
    return (
        f"none of its event types ({types}) is declared in contract {contract.name!r} "
        f"(declared: {', '.join(declared)}), "
        f"so no row was loaded; declare them under 'events' in {contract.source or 'the contract'}"
    )


STAGING = "_ingest_rows"  # temporary table: one row per input row, typed, with its reason (null = load)


def target_types(kind: str, contract: DatasetContract) -> dict[str, str]:
    """The raw table's loaded columns and their DuckDB types (bookkeeping excluded)."""
    columns = raw_table_columns(contract)[RAW_TABLES[kind]]
    return {name: sql_type for name, sql_type in columns.items() if name not in BOOKKEEPING}


def _clean_with_pandas(
    kind: str, records: pd.DataFrame, unparsable: list[dict], now: datetime, contract: DatasetContract
) -> pd.DataFrame:
    """Every input row of a file: typed target columns plus line_number, raw_text and reason."""
    if kind == "events":
        typed, reasons = clean_events(records, now, contract)
    elif kind == serving_log.KIND:
        typed, reasons = clean_served(records, contract)
    else:
        typed, reasons = clean_catalog(kind, records, contract)
    # Parquet rows are quoted where rejected and, for events (which the cross-file duplicate check
    # may still reject), everywhere.
    quote = reasons.notna() | (kind == "events")
    typed = typed.assign(line_number=records["line_number"], raw_text=_raw_texts(records, quote), reason=reasons)
    quarantined = pd.DataFrame(unparsable, columns=["line_number", "raw_text", "reason"])
    return pd.concat([quarantined, typed], ignore_index=True) if len(quarantined) else typed


def _raw_texts(records: pd.DataFrame, quote: pd.Series | np.ndarray) -> pd.Series:
    """The source line of each record; for Parquet (no lines) a JSON of the row's values where ``quote``."""
    if records["raw_text"].notna().any() or records.empty:
        return records["raw_text"]
    quoted = records.loc[quote]
    fields = quoted.drop(columns=["line_number", "raw_text"]).astype(str).to_dict(orient="records")
    return pd.Series([json.dumps(row) for row in fields], index=quoted.index, dtype=object).reindex(records.index)


def _stage_frame(
    connection: duckdb.DuckDBPyConnection, kind: str, frame: pd.DataFrame, contract: DatasetContract
) -> None:
    columns = {**target_types(kind, contract), "line_number": "bigint", "raw_text": "varchar", "reason": "varchar"}
    frame = frame.assign(**{column: None for column in columns if column not in frame})
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


def _id_sql(name: str, kind: str, id_type: IdType) -> tuple[str, str] | None:
    """(typed expression, problem expression) of a present id column, or None where pandas must type it."""
    column = _quote(name)
    if id_type == "integer":
        if kind in _SIGNED:
            return f"cast({column} as bigint)", "cast(null as varchar)"
        if kind in _FLOAT | {"BOOLEAN"}:  # a float, even 3.0, or a boolean is not an integer id
            return "cast(null as bigint)", _sql_literal(NOT_INTEGER.format(name))
        return None
    if kind in _SIGNED:  # a string id may be written as an integer: its decimal text
        return f"cast({column} as varchar)", "cast(null as varchar)"
    if kind in _FLOAT | {"BOOLEAN"}:
        return "cast(null as varchar)", _sql_literal(NOT_TEXT.format(name))
    if kind != "VARCHAR":
        return None
    checks = (
        (BLANK, f"trim({column}, {_sql_literal(_WHITESPACE)}) = ''"),
        (TOO_LONG, f"length({column}) > {MAX_STRING_ID}"),
        (CONTROL, f"regexp_matches({column}, {_sql_literal(_CONTROL_CHARACTERS)})"),
    )
    problem = "case " + " ".join(f"when {test} then {_sql_literal(reason.format(name))}" for reason, test in checks)
    return f"case when ({problem} end) is null then {column} end", f"{problem} end"


def _parquet_events_plan(
    connection: duckdb.DuckDBPyConnection, path: Path, contract: DatasetContract
) -> _ParquetPlan | None:
    """A plan when every column has a type whose SQL typing matches pandas; None means use pandas."""
    schema = {
        name: kind.upper()
        for name, kind, *_ in connection.execute("describe select * from read_parquet(?)", [str(path)]).fetchall()
    }
    reserved = any(name.startswith("src_") or name in {"file_row_number", "line_number"} for name in schema)
    if reserved or any(column not in schema for column in REQUIRED["events"]):
        return None

    def col(name: str) -> str:
        return _quote(name)

    typed: dict[str, str] = {}
    for name in ("user_id", "item_id"):
        kind = schema[name]
        id_sql = _id_sql(name, kind, contract.id_type(name))
        if id_sql is None:
            return None
        typed[f"missing_{name}"] = f"({col(name)} is null" + (f" or isnan({col(name)}))" if kind in _FLOAT else ")")
        typed[name] = f"case when not {typed[f'missing_{name}']} then {id_sql[0]} end"
        typed[f"{name}_problem"] = f"case when not {typed[f'missing_{name}']} then {id_sql[1]} end"
    if schema["event_type"] != "VARCHAR":
        return None
    typed["missing_event_type"] = "event_type is null"
    typed["event_type"] = f"lower(trim(event_type, {_sql_literal(_WHITESPACE)}))"
    kind = schema.get("value")
    typed["value_bad"] = "false"  # a numeric column is either null or a number
    if kind is None:
        typed["value"] = "cast(null as double)"
    elif kind in _SIGNED:
        typed["value"] = "cast(value as double)"
    elif kind in _FLOAT:  # NaN is how Parquet writers say "missing"; an infinity is not a value
        typed["value"] = "case when isfinite(value) then cast(value as double) end"
        typed["value_bad"] = "isinf(value)"
    else:
        return None
    kind = schema["timestamp"]
    ts = col("timestamp")
    typed["missing_timestamp"] = f"{ts} is null"
    if kind in _TIMESTAMPS:
        typed["timestamp"] = f"cast({ts} as timestamp)"
    elif kind in _ZONED:
        typed["timestamp"] = f"timezone('UTC', cast({ts} as timestamptz))"
    elif kind in _SIGNED:  # Unix epoch seconds; beyond ~1e11 s it is not a plausible epoch
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


def _stage_parquet_events(
    connection: duckdb.DuckDBPyConnection, path: Path, plan: _ParquetPlan, now: datetime, contract: DatasetContract
) -> None:
    """Read, type and check one Parquet events file into the staging table, all inside DuckDB."""
    typed = ", ".join(f"{expression} as {_quote(name)}" for name, expression in plan.typed.items())
    sources = ", ".join(f"{_quote(name)} as {_quote('src_' + name)}" for name in plan.sources)
    rows = (
        f"select file_row_number + 1 as line_number, cast(null as varchar) as raw_text, {typed}, {sources} "
        "from read_parquet(?, file_row_number = true)"
    )
    connection.execute(
        f"create or replace temp table {STAGING} as {_with_reasons(rows, contract)}",
        [now + FUTURE_TOLERANCE, str(path)],
    )
    missing = connection.execute(
        f'select line_number, user_id, item_id, event_type, value, "timestamp" from {STAGING} '
        "where event_id is null order by line_number"
    ).df()
    if len(missing) == 0:
        return
    # Rare: derive ids with the pandas path's own function so both paths agree, then re-check.
    for column in ("user_id", "item_id"):
        missing[column] = missing[column].astype("Int64" if contract.id_type(column) == "integer" else "string")
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
    connection.execute(
        f"create or replace temp table {STAGING} as {_with_reasons(rows, contract)}", [now + FUTURE_TOLERANCE]
    )


def _with_reasons(rows: str, contract: DatasetContract) -> str:
    """``rows`` plus each row's first failing ``event_rules`` reason; the future limit is the first parameter."""
    cases = " ".join(
        f"when coalesce({rule.sql}, false) then {_sql_literal(rule.reason)}" for rule in event_rules(contract)
    )
    return (
        f"select * exclude (dup, future_limit), case {cases} end as reason from ("
        "select *, row_number() over (partition by event_id order by line_number) > 1 as dup, "
        f"? as future_limit from ({rows}))"
    )


def _replace_file_rows(
    connection: duckdb.DuckDBPyConnection,
    kind: str,
    source: str,
    raw_text_sql: str,
    now: datetime,
    contract: DatasetContract,
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
    columns = list(target_types(kind, contract))
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
    *,
    contract: DatasetContract,
) -> list[FileReport]:
    """Ingest every landed file of the given kinds that is new or changed; a catalogue the contract
    declares absent is not ingested (its raw table stays empty)."""
    ensure_raw_schema(connection, contract)
    now = now or datetime.utcnow()
    kinds = tuple(kind for kind in kinds if kind not in ("users", "items") or contract.has_catalog(kind))
    return [
        ingest_file(connection, landing, path, kind, now, contract)
        for kind in kinds
        for path in landed_files(landing, kind)
    ]


def problems(reports: list[FileReport], rows_in_table: int, table: str) -> list[str]:
    """One sentence per thing a person must fix: files rejected whole or matching no declared event
    type, and a raw table left empty although rows came in (everything was quarantined)."""
    found = [report.problem for report in reports if report.problem]
    new = [report for report in reports if not report.skipped]
    rows_in = sum(report.rows_in for report in new)
    if rows_in and not rows_in_table and not found:
        reasons: dict[str, int] = {}
        for report in new:
            for reason, n in report.reasons.items():
                reasons[reason] = reasons.get(reason, 0) + n
        top = max(reasons, key=reasons.get) if reasons else "none"
        found.append(
            f"raw.{table} is empty: all {rows_in} rows of the {len(new)} landed files were quarantined "
            f"(most often: {top!r}); see raw.quarantine"
        )
    return found


def raise_for_problems(reports: list[FileReport], rows_in_table: int, table: str) -> None:
    """Raise ``IngestionError`` with the sentences of ``problems`` (after the files were recorded)."""
    found = problems(reports, rows_in_table, table)
    if found:
        raise IngestionError(" ".join(found))
