"""Shadow traffic: challengers answer a share of real requests off the request path.

The user's response never waits: the service hands each mirrored request to a bounded queue and
returns. One background thread answers it with each chosen challenger, from the same inputs the
champion used (request, online state, time), and logs the challenger's list under the same
request id with ``served_by`` set to the challenger's alias. The lists are discarded otherwise
(as Seldon's ``mirror``): the shadow comparison judges them against what users then did. When the
queue is full (challengers slower than traffic) requests are not mirrored and ``dropped`` counts
them, so shadowing can never build up memory or latency.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from recs_platform.data.serving_log import ServingLogWriter
from recs_platform.online.store import UserState
from recs_platform.serving.answer import Request, answer, answer_record
from recs_platform.serving.model import Challenger

logger = logging.getLogger(__name__)


def mirrored(request_id: str, alias: str, share: float) -> bool:
    """Whether ``alias`` answers this request in shadow: a stable draw from the request id, so
    each challenger sees its share of requests, and the same ones on a replay."""
    draw = int(hashlib.sha1(f"{request_id}/{alias}".encode()).hexdigest()[:8], 16) / 2**32
    return draw < share


@dataclass(frozen=True)
class _Job:
    challenger: Challenger
    request: Request
    state: UserState | None
    request_id: str
    served_at: datetime
    online_version: str | None


class ShadowMirror:
    """The bounded queue and the thread that answers mirrored requests with challengers."""

    def __init__(self, log: ServingLogWriter, capacity: int = 1000) -> None:
        self.log = log
        self.mirrored = self.dropped = self.failed = 0
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=capacity)
        self._thread = threading.Thread(target=self._run, name="shadow-traffic", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Let queued jobs finish (a few seconds at most), then end the thread."""
        with contextlib.suppress(queue.Full):
            self._jobs.put(None, timeout=5)
        self._thread.join(timeout=10)

    def submit(
        self,
        challengers: list[Challenger],
        request: Request,
        state: UserState | None,
        request_id: str,
        served_at: datetime,
        online_version: str | None,
    ) -> None:
        """Queue the request for each challenger whose share draws it; never blocks."""
        for challenger in challengers:
            if not mirrored(request_id, challenger.alias, challenger.shadow_share):
                continue
            try:
                self._jobs.put_nowait(_Job(challenger, request, state, request_id, served_at, online_version))
            except queue.Full:
                self.dropped += 1

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            started = time.perf_counter()
            try:
                result = answer(job.challenger.bundle, job.request, job.state)
            except Exception:
                self.failed += 1
                logger.exception("challenger %s failed on request %s", job.challenger.alias, job.request_id)
                continue
            latency_ms = (time.perf_counter() - started) * 1000
            bundle = job.challenger.bundle
            self.log.append(
                answer_record(
                    job.request_id, job.challenger.alias, job.served_at, job.request, result, bundle.version,
                    latency_ms, job.online_version,
                )
            )  # fmt: skip
            self.mirrored += 1
