"""The interaction-event contract and the landing-zone layout.

Files land under ``<landing>/<kind>/`` where kind is ``events``, ``users`` or ``items``. Event
files carry ``user_id, item_id, event_type, value, timestamp`` and optionally ``event_id`` plus
any number of context columns, as Parquet, CSV or JSON lines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from recs_platform.files import write_parquet_atomically

EVENT_COLUMNS = ("user_id", "item_id", "event_type", "value", "timestamp")
EVENT_TYPES = frozenset({"rating", "click", "view", "play", "add_to_cart", "purchase", "impression"})
USER_COLUMNS = ("user_id", "age", "gender", "occupation", "zip_code")
ITEM_COLUMNS = ("item_id", "title", "release_date", "genres")
LANDING_KINDS = ("events", "users", "items", "serving_logs")
# The raw table each kind of landed file is loaded into.
RAW_TABLES = {"events": "events", "users": "users", "items": "items", "serving_logs": "served_impressions"}
SUPPORTED_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json")

# Walks a sequence of work items, e.g. behind a progress bar; plain ``iter`` shows nothing.
Track = Callable[[Sequence[Any]], Iterable[Any]]


def landing_dir(landing: Path, kind: str) -> Path:
    """The folder under the landing zone where files of ``kind`` arrive."""
    if kind not in LANDING_KINDS:
        raise ValueError(f"unknown landing kind {kind!r}; expected one of {LANDING_KINDS}")
    return landing / kind


def landed_files(landing: Path, kind: str) -> list[Path]:
    """Landed files of one kind in name order (names sort by date for daily files)."""
    folder = landing_dir(landing, kind)
    if not folder.exists():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SUPPORTED_SUFFIXES)


def write_landing_file(frame: pd.DataFrame, landing: Path, kind: str, name: str) -> Path:
    """Write ``frame`` atomically as ``<landing>/<kind>/<name>.parquet``.

    The temporary name does not end in a supported suffix, so a half-written file is never
    picked up by the sensor or the ingestion step.
    """
    return write_parquet_atomically(frame, landing_dir(landing, kind) / f"{name}.parquet")


def file_sha256(path: Path) -> str:
    """Content hash of a landed file; a changed file is ingested again, an unchanged one is not."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
