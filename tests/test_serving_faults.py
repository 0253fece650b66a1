"""Faults under a real ``bentoml serve``: a killed worker, an unwritable serving log, an unreadable
pointer, a removed model-store folder, and champion swaps under load.

One server for the module; each test restores what it breaks. What the tests establish is
documented in docs/architecture.md ("Serving under faults").
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from test_serving import KNOWN_USER, Served, metric, publish, serving_ease, wait_for

from recs_platform.models import PopularityRecommender
from recs_platform.online.store import POINTER
from recs_platform.registry.store import ModelRegistry
from recs_platform.settings import PlatformPaths

CLIENTS = 4  # concurrent clients; each has at most one request in flight


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving_ease(tmp_path_factory.mktemp("faults_home")) as served:
        yield served


@pytest.fixture(scope="module")
def unverified(served: Served) -> ModelRegistry:
    """The registry without the verifying subprocess: these tests move the champion between
    bundles that are known to be sound, many times, and verification is tested elsewhere."""
    return ModelRegistry(served.registry.store_dir, served.registry.registry_dir)


class Traffic:
    """``CLIENTS`` threads posting recommendation requests until stopped; counts answers by model
    version and every failure (transport error or non-200) with the time it happened."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.versions: Counter[str] = Counter()
        self.failures: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]

    def _run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(f"{self.url}/recommend", json={"user_id": KNOWN_USER, "k": 5})
                    if response.status_code == 200:
                        self.versions[response.json()["model_version"]] += 1
                    else:
                        self.failures.append((time.monotonic(), f"HTTP {response.status_code}"))
                except httpx.HTTPError as error:
                    self.failures.append((time.monotonic(), repr(error)))

    @property
    def answered(self) -> int:
        return sum(self.versions.values())


@contextmanager
def traffic(url: str) -> Iterator[Traffic]:
    load = Traffic(url)
    for thread in load._threads:
        thread.start()
    try:
        yield load
    finally:
        load._stop.set()
        for thread in load._threads:
            thread.join(70)


def readyz(served: Served) -> dict:
    return httpx.get(f"{served.server.url}/readyz", timeout=10).json()


def metrics(served: Served) -> str:
    return httpx.get(f"{served.server.url}/metrics", timeout=10).text


def test_a_killed_worker_fails_at_most_its_in_flight_requests_and_is_replaced(served: Served) -> None:
    (worker,) = served.server.worker_pids()
    with traffic(served.server.url) as load:
        wait_for(lambda: load.answered >= 20)
        os.kill(worker, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(lambda: len(served.server.worker_pids() - {worker}) == 1, timeout_s=60)
        answered = load.answered
        wait_for(lambda: load.answered >= answered + 20, timeout_s=60)  # the new worker answers
    # Only the requests the dead worker was answering fail; those sent while it restarts wait in
    # the listening socket's backlog and are answered by the new worker.
    assert len(load.failures) <= CLIENTS, load.failures
    assert all(at >= killed_at for at, _ in load.failures)
    assert readyz(served)["ready"]


def test_an_unwritable_serving_log_costs_no_request_and_is_counted(served: Served) -> None:
    logs = PlatformPaths(served.home).serving_logs
    before = metric(metrics(served), "recs_serving_log_landing_failures_total")
    aside = logs.with_name("serving_logs.aside")
    logs.mkdir(parents=True, exist_ok=True)  # the writer makes it at its first landing, maybe not yet
    logs.rename(aside)
    logs.write_text("a file where the folder should be: every landing fails\n")  # also fails as root
    try:
        answers = [served.post(json.dumps({"user_id": KNOWN_USER, "k": 3})) for _ in range(5)]
        assert [answer.status_code for answer in answers] == [200] * 5
        wait_for(lambda: metric(metrics(served), "recs_serving_log_landing_failures_total") > before)
        assert metric(metrics(served), "recs_serving_log_buffered") >= 5
    finally:
        logs.unlink()
        aside.rename(logs)
    # Kept in memory meanwhile, the records land once the folder is back.
    wait_for(lambda: metric(metrics(served), "recs_serving_log_buffered") == 0)
    landed = "".join(path.read_text() for path in logs.glob("*.jsonl"))
    assert all(answer.json()["request_id"] in landed for answer in answers)


@pytest.mark.parametrize("pointer", ["champion alias", "online store"])
def test_an_unreadable_pointer_keeps_the_server_serving_and_is_reported(served: Served, pointer: str) -> None:
    paths = PlatformPaths(served.home)
    path, what = (paths.aliases, "bundle") if pointer == "champion alias" else (paths.online / POINTER, "online store")
    series = f'recs_pointer_read_failures_total{{what="{what}"}}'
    failures_before = metric(metrics(served), series)
    serving, intact = served.version(), path.read_bytes()
    path.write_bytes(intact[: len(intact) // 2])  # truncated: not JSON
    try:
        wait_for(lambda: readyz(served)["degraded"])
        ready = readyz(served)
        assert ready["ready"] and ready["serving"] == serving and served.version() == serving
        assert f"the {what} pointer could not be read (JSONDecodeError: " in ready["reason"]
        text = metrics(served)
        assert metric(text, "recs_serving_degraded") == 1.0 and metric(text, series) > failures_before
    finally:
        path.write_bytes(intact)
    wait_for(lambda: not readyz(served)["degraded"])


def test_a_removed_store_folder_keeps_serving_from_memory_and_is_reported(
    served: Served, unverified: ModelRegistry
) -> None:
    tag = publish(unverified, served.home / "work", PopularityRecommender(), "popularity-removed")
    wait_for(lambda: served.version() == tag)
    folder = unverified.bundle_path(tag)
    shutil.rmtree(folder)
    try:
        wait_for(lambda: readyz(served)["degraded"])
        assert served.version() == tag
        assert f"the store folder of {tag} was removed" in readyz(served)["reason"]
        assert metric(metrics(served), "recs_serving_degraded") == 1.0
    finally:
        unverified.rollback(by="test")
    wait_for(lambda: served.version() != tag and not readyz(served)["degraded"])


def test_champion_swaps_under_load_fail_no_request(served: Served, unverified: ModelRegistry) -> None:
    """The suite's short form of the benchmark (bench/hot_swap.py: 10 swaps in 30 s at >= 300 req/s)."""
    first = served.version()
    second = publish(unverified, served.home / "work", PopularityRecommender(), "popularity-swap")
    tags = [first, second]
    with traffic(served.server.url) as load:
        for swap in range(3):
            tag = tags[swap % 2]
            unverified.promote(tag, reason=f"test swap {swap}")
            seen = load.versions[tag]
            wait_for(lambda tag=tag, seen=seen: load.versions[tag] >= seen + 10)
    assert load.failures == []
    assert set(load.versions) == set(tags) and load.answered >= 60
