"""Served requests as data: one JSON line per request, in a file per UTC day."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class RequestLog:
    """Appends request records to ``directory/<YYYY-MM-DD>.jsonl``; never raises."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()

    def append(self, record: dict[str, Any]) -> None:
        """Write ``record`` (which must carry an ISO ``timestamp``) as one line."""
        try:
            line = json.dumps(record, separators=(",", ":")) + "\n"
            path = self.directory / f"{record['timestamp'][:10]}.jsonl"
            with self._lock:
                path.parent.mkdir(parents=True, exist_ok=True)
                # One write per line on an O_APPEND handle keeps lines whole across workers too.
                with path.open("a", encoding="utf-8") as handle:
                    handle.write(line)
        except Exception:
            # Losing a log line is better than failing the request it describes.
            logger.exception("could not log served request %s", record.get("request_id"))
