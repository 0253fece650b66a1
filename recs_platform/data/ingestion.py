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
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from recs_platform.data.events import (
    EVENT_COLUMNS,
    EVENT_TYPES,
    ITEM_COLUMNS,
    USER_COLUMNS,
    file_sha256,
    landed_files,
)
from recs_platform.data.warehouse import ensure_raw_schema

# Allowance for clock skew between producers and the platform before a timestamp is "future".
FUTURE_TOLERANCE = timedelta(hours=1)
REQUIRED = {
    "events": ("user_id", "item_id", "event_type", "timestamp"),
    "users": ("user_id",),
    "items": ("item_id",),
}
COLUMNS = {"events": EVENT_COLUMNS, "users": USER_COLUMNS, "items": ITEM_COLUMNS}


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


def clean_events(records: pd.DataFrame, now: datetime) -> tuple[pd.DataFrame, pd.Series]:
    """Type and check event records; returns the typed frame and a per-row rejection reason."""
    reasons = pd.Series(None, index=records.index, dtype=object)
    for column in REQUIRED["events"]:
        if column not in records:
            records[column] = None
        _reject(reasons, records[column].isna(), f"missing field {column}")
    typed = pd.DataFrame(index=records.index)
    for column in ("user_id", "item_id"):
        typed[column] = _as_int(records[column])
        _reject(reasons, typed[column].isna(), f"{column} is not an integer")
    typed["event_type"] = records["event_type"].astype("string").str.strip().str.lower()
    _reject(reasons, ~typed["event_type"].isin(EVENT_TYPES), "unknown event_type")
    raw_value = records["value"] if "value" in records else pd.Series(None, index=records.index)
    typed["value"] = pd.to_numeric(raw_value, errors="coerce")
    _reject(reasons, raw_value.notna() & typed["value"].isna(), "value is not a number")
    typed["timestamp"] = _as_timestamp(records["timestamp"])
    _reject(reasons, typed["timestamp"].isna(), "timestamp is not parsable")
    _reject(reasons, typed["timestamp"] < pd.Timestamp(0), "timestamp is before 1970")
    _reject(reasons, typed["timestamp"] > pd.Timestamp(now + FUTURE_TOLERANCE), "timestamp is in the future")
    typed["event_id"] = _event_ids(records, typed)
    _reject(reasons, typed["event_id"].duplicated(), "duplicated event_id")
    typed["context"] = _context(records)
    return typed, reasons


def _event_ids(records: pd.DataFrame, typed: pd.DataFrame) -> pd.Series:
    """Use the producer's event_id, or derive a stable one from the event's content."""
    ids = records["event_id"].astype("string") if "event_id" in records else None
    if ids is None:
        ids = pd.Series(pd.NA, index=records.index, dtype="string")
    missing = ids.isna()
    if missing.any():
        content = typed.loc[missing, ["user_id", "item_id", "event_type", "value", "timestamp"]]
        digest = content.astype(str).agg("|".join, axis=1)
        ids.loc[missing] = digest.map(lambda s: hashlib.sha1(s.encode()).hexdigest())
    return ids


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


def ingest_file(
    connection: duckdb.DuckDBPyConnection, landing: Path, path: Path, kind: str, now: datetime
) -> FileReport:
    """Load one landed file, exactly once per content hash, in a single transaction."""
    source = path.relative_to(landing).as_posix()
    sha = file_sha256(path)
    seen = connection.execute(
        "select rows_in, rows_loaded, rows_quarantined from raw.ingested_files where source_file = ? and sha256 = ?",
        [source, sha],
    ).fetchone()
    if seen:
        return FileReport(source, kind, *seen, skipped=True, reasons={})
    records, unparsable = read_records(path)
    clean = clean_events if kind == "events" else clean_catalog
    typed, reasons = clean(records, now) if kind == "events" else clean(kind, records)
    rejected = _rejected_rows(records, reasons)
    quarantine = pd.concat([pd.DataFrame(unparsable), rejected], ignore_index=True)
    good = typed.loc[reasons.isna()].assign(source_file=source, ingested_at=now)
    rows_in = len(records) + len(unparsable)
    connection.execute("begin transaction")
    try:
        _replace_file_rows(connection, kind, source, good, quarantine, now)
        connection.execute(
            "insert or replace into raw.ingested_files values (?, ?, ?, ?, ?, ?, ?)",
            [source, kind, sha, rows_in, len(good), len(quarantine), now],
        )
        connection.execute("commit")
    except Exception:
        connection.execute("rollback")
        raise
    counts = quarantine["reason"].value_counts().to_dict() if len(quarantine) else {}
    return FileReport(source, kind, rows_in, len(good), len(quarantine), False, counts)


def _rejected_rows(records: pd.DataFrame, reasons: pd.Series) -> pd.DataFrame:
    """The rejected records with their line, source text and reason."""
    rejected = records.loc[reasons.notna()]
    if "raw_text" in rejected:
        raw_text = rejected["raw_text"]
    else:  # columnar files have no source line; quote the row's values instead
        fields = rejected.drop(columns="line_number").astype(str).to_dict(orient="records")
        raw_text = pd.Series([json.dumps(row) for row in fields], index=rejected.index)
    return pd.DataFrame({"line_number": rejected["line_number"], "raw_text": raw_text, "reason": reasons.dropna()})


def _replace_file_rows(
    connection: duckdb.DuckDBPyConnection,
    kind: str,
    source: str,
    good: pd.DataFrame,
    quarantine: pd.DataFrame,
    now: datetime,
) -> None:
    """Swap in this file's rows inside the caller's transaction."""
    connection.execute(f"delete from raw.{kind} where source_file = ?", [source])
    connection.execute("delete from raw.quarantine where source_file = ?", [source])
    columns = ["event_id", *EVENT_COLUMNS, "context"] if kind == "events" else list(COLUMNS[kind])
    columns += ["source_file", "ingested_at"]
    connection.register("incoming", good[columns])
    connection.execute(f"insert into raw.{kind} ({', '.join(map(_quote, columns))}) select * from incoming")
    connection.unregister("incoming")
    if len(quarantine):
        rows = quarantine.assign(source_file=source, quarantined_at=now)
        connection.register("rejected", rows[["source_file", "line_number", "raw_text", "reason", "quarantined_at"]])
        connection.execute("insert into raw.quarantine select * from rejected")
        connection.unregister("rejected")


def _quote(column: str) -> str:
    return f'"{column}"'


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
