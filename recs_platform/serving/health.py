"""How a serving process reports what it serves against what the champion alias names.

Three views of ``ProductionModel.health()``:

* ``/readyz`` (``ReadinessMiddleware``): JSON with both tags and ``degraded``. A server that is
  degraded but still answering with its last good bundle stays **200**: every replica reads the
  same alias, so a bundle that fails to load fails them all alike, and a 503 would make the load
  balancer drop every replica, turning a bad promotion into an outage while the last good model
  could still answer. Degradation is for alerting, not routing. Before any bundle has loaded,
  ``/readyz`` is 503.
* ``/metrics`` (``metrics_text``, appended to BentoML's): ``recs_serving_degraded``,
  ``recs_serving_bundle{role="served"|"pointer",tag=...}``, ``recs_bundle_load_failures_total``,
  ``recs_pointer_read_failures_total`` and the serving log's counters (``recs_serving_log_*``:
  records landed, lost, buffered, and failed attempts to land them).
* a status file per process under ``$RECS_HOME/serving`` (``StatusFile``), which
  ``recs-platform status`` reads: no URL to know, and every server on the home is seen.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.responses import JSONResponse

from recs_platform.data.serving_log import ServingLogWriter
from recs_platform.files import write_json_atomically
from recs_platform.serving.model import ServingHealth

READYZ = "/readyz"
STATUS_HEARTBEAT_S = 15.0  # rewrite an unchanged status this often, so a stale file shows a dead server
STALE_AFTER_S = 60.0


class ReadinessMiddleware:
    """Answers ``/readyz`` with the process's health; BentoML's own handler answers until the
    service instance exists (``health`` returns None then)."""

    def __init__(self, app: Any, health: Callable[[], ServingHealth | None]) -> None:
        self.app = app
        self.health = health

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        # Other methods go on to BentoML's route, which answers them 405.
        readyz = scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and scope["path"] == READYZ
        report = self.health() if readyz else None
        if report is None:
            await self.app(scope, receive, send)
            return
        await JSONResponse(report.as_dict(), status_code=200 if report.ready else 503)(scope, receive, send)


class _HealthCollector(Collector):
    def __init__(self, report: ServingHealth, serving_log: ServingLogWriter | None) -> None:
        self.report = report
        self.serving_log = serving_log

    def collect(self) -> Iterator[Metric]:
        report = self.report
        yield GaugeMetricFamily(
            "recs_serving_degraded",
            "1 when the champion alias names a bundle this server could not load (it serves the last good one)",
            value=int(report.degraded),
        )
        tags = GaugeMetricFamily(
            "recs_serving_bundle",
            "1 for the tag this server answers with (role=served) and the tag the champion alias names (role=pointer)",
            labels=["role", "tag"],
        )
        for role, tag in (("served", report.serving), ("pointer", report.pointer)):
            if tag is not None:
                tags.add_metric([role, tag], 1)
        yield tags
        failures = CounterMetricFamily(
            "recs_bundle_load_failures", "Versions this server failed to load, per watched value", labels=["what"]
        )
        for what, count in report.load_failures.items():
            failures.add_metric([what], count)
        yield failures
        unreadable = CounterMetricFamily(
            "recs_pointer_read_failures",
            "Polls at which this server could not read a pointer (truncated, not JSON), per watched value",
            labels=["what"],
        )
        for what, count in report.pointer_read_failures.items():
            unreadable.add_metric([what], count)
        yield unreadable
        if self.serving_log is not None:
            yield from _serving_log_metrics(self.serving_log)


def _serving_log_metrics(log: ServingLogWriter) -> Iterator[Metric]:
    records = CounterMetricFamily(
        "recs_serving_log_records",
        "Serving-log records: landed as files, or lost (failed: could not be serialised; dropped: the buffer was full)",
        labels=["outcome"],
    )
    for outcome, count in (("landed", log.written), ("failed", log.failed), ("dropped", log.dropped)):
        records.add_metric([outcome], count)
    yield records
    yield CounterMetricFamily(
        "recs_serving_log_landing_failures",
        "Attempts to land buffered records as a file that failed (disk full, unwritable); the records are kept",
        value=log.landing_failures,
    )
    yield GaugeMetricFamily("recs_serving_log_buffered", "Serving-log records waiting to land", value=log.buffered)


def metrics_text(report: ServingHealth, serving_log: ServingLogWriter | None = None) -> str:
    """The health gauges and counters (and ``serving_log``'s) in Prometheus' text format, computed
    at scrape time (so a tag that no longer serves leaves no stale series behind)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_HealthCollector(report, serving_log))
    return generate_latest(registry).decode()


class StatusFile:
    """This process's health as ``$RECS_HOME/serving/<host>-<pid>.json``, replaced atomically."""

    def __init__(self, directory: Path, health: Callable[[], ServingHealth]) -> None:
        self.path = Path(directory) / f"{socket.gethostname()}-{os.getpid()}.json"
        self.health = health
        self._written: tuple[dict, float] | None = None
        self._removed = False

    def write(self) -> None:
        """Write when the health changed, or as a heartbeat; never again once removed."""
        if self._removed:
            return
        report = self.health().as_dict()
        if self._written is not None:
            last, at = self._written
            if last == report and time.monotonic() - at < STATUS_HEARTBEAT_S:
                return
        write_json_atomically(self.path, {**report, "server": self.path.stem, "updated_at": _now().isoformat()})
        self._written = (report, time.monotonic())

    def remove(self) -> None:
        """At shutdown: a server that is gone leaves no report behind."""
        self._removed = True
        self.path.unlink(missing_ok=True)


def read_statuses(directory: Path) -> list[dict[str, Any]]:
    """Every server's last status, with ``stale`` when it has not written for ``STALE_AFTER_S``
    (it stopped without removing its file, or hangs)."""
    statuses = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            status = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # removed or replaced while listing
        age = (_now() - datetime.fromisoformat(status["updated_at"])).total_seconds()
        statuses.append({**status, "stale": age > STALE_AFTER_S})
    return statuses


def divergence(status: dict[str, Any]) -> str | None:
    """One sentence when a server does not serve what the champion alias names, else None."""
    if status["serving"] == status["pointer"]:
        return None
    served = status["serving"] or "nothing"
    why = f": {status['reason']}" if status.get("reason") else " (still loading it)"
    stale = f" (last reported {status['updated_at']}; it may have stopped)" if status.get("stale") else ""
    return f"server {status['server']} serves {served}, not the champion {status['pointer']}{why}{stale}"


def _now() -> datetime:
    return datetime.now(UTC)
