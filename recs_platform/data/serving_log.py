"""What serving logs, as data: one JSON line per answered request, landed as immutable files.

Each record holds the exact inputs the answer used (the history and where it came from, the user
features), the model version, the returned items with their scores in rank order, the request id
and the time. Files land in ``<landing>/serving_logs/`` and are ingested like event files into
``raw.served_impressions``: that is how what was served becomes training and monitoring data.

Requests never wait for the disk: records are buffered in memory and a background thread writes
them out every ``rotate_s`` seconds as a new file (written under a hidden name, then renamed), so
a landed file is complete and never changes afterwards.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

logger = logging.getLogger(__name__)

KIND = "serving_logs"
# Where an answer came from, from most to least personal.
SOURCES = ("model+fresh_history", "model", "segment", "popularity")
# Where the history an answer used came from.
HISTORY_SOURCES = ("training", "online_store", "request", "online_store+request", "none")
# Who computed a list: "champion" for the one the user was shown, else the challenger alias whose
# list was computed in shadow for the same request (same request id, same inputs).
SHOWN = "champion"
FIELDS = (
    "request_id",
    "served_by",
    "served_at",
    "user_id",
    "k",
    "model_version",
    "source",
    "path",
    "history_source",
    "history_items",
    "user_features",
    "item_ids",
    "scores",
    "latency_ms",
    "online_version",
)


class ServingLogWriter:
    """Buffers records and lands them as files every ``rotate_s`` seconds; never raises to callers.

    For the service's metrics, ``written`` counts records landed, ``failed`` records that could
    not be serialised, ``dropped`` records refused because the buffer was full (both lost), and
    ``landing_failures`` attempts to land a file that failed (their records stay buffered for the
    next attempt).
    """

    def __init__(self, directory: Path, rotate_s: float = 60.0, max_buffer: int = 1_000_000) -> None:
        self.directory = directory
        self.rotate_s = rotate_s
        self.max_buffer = max_buffer
        self.written = self.failed = self.dropped = self.landing_failures = 0
        self._buffer: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="serving-log-writer", daemon=True)
        self._thread.start()

    def append(self, record: dict[str, Any]) -> None:
        try:
            # orjson: a tenth of json.dumps' time, and this runs once per served request.
            line = orjson.dumps(record, default=str).decode()
        except (TypeError, ValueError):
            logger.exception("unserialisable serving log record %s", record.get("request_id"))
            self.failed += 1
            return
        with self._lock:
            if len(self._buffer) >= self.max_buffer:
                self.dropped += 1  # the disk has been failing for a long time; keep memory bounded
                return
            self._buffer.append(line)

    def flush(self) -> Path | None:
        """Land the buffered records as one new file now; returns it (None when nothing was buffered)."""
        with self._lock:
            lines, self._buffer = self._buffer, []
        if not lines:
            return None
        try:
            path = self._land(lines)
        except OSError:
            logger.exception("could not land %d serving log records; keeping them for the next try", len(lines))
            with self._lock:
                self._buffer[:0] = lines
                self.landing_failures += 1
            return None
        self.written += len(lines)
        return path

    @property
    def buffered(self) -> int:
        """Records waiting to land."""
        return len(self._buffer)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.rotate_s + 5)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.rotate_s):
            self.flush()

    def _land(self, lines: list[str]) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        name = f"served-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        partial = self.directory / f".{name}.partial"  # not a landed suffix: never picked up half-written
        try:
            partial.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        except OSError:
            partial.unlink(missing_ok=True)  # a disk that filled up midway keeps no half file
            raise
        target = self.directory / name
        partial.replace(target)
        return target
