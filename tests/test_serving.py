"""The BentoML service, exercised through a real ``bentoml serve`` process on a tiny registry."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import bentoml
import httpx
import numpy as np
import pandas as pd
import pytest

from recs_platform.models import BPRRecommender, PopularityRecommender, Recommender
from recs_platform.registry.bundle import write_bundle
from recs_platform.registry.store import ModelRegistry
from recs_platform.serving.launcher import ServerHandle, start_server
from recs_platform.serving.model import production_registry
from recs_platform.settings import PlatformPaths

KNOWN_USER = 1
UNKNOWN_USER = 10_000
RELOAD_INTERVAL_S = 0.5


def interactions() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"user_id": rng.integers(1, 31, 500), "item_id": rng.integers(1, 41, 500)})
    return pd.concat([frame, pd.DataFrame({"user_id": [KNOWN_USER], "item_id": [1]})], ignore_index=True)


def items() -> pd.DataFrame:
    return pd.DataFrame({"item_id": range(1, 41), "title": [f"Movie {i}" for i in range(1, 41)]})


def publish(registry: ModelRegistry, workdir: Path, model: Recommender, name: str) -> str:
    """Write, register and promote a bundle; returns its tag."""
    train = interactions()
    bundle = write_bundle(workdir / name, model.fit(train), PopularityRecommender().fit(train), items(), {"name": name})
    tag = registry.register(bundle, {"name": name}, {"stage": "test"})
    registry.promote(tag, reason=f"test {name}")
    return tag


# The launcher sets RECS_HOME and BENTOML_HOME (home/bentoml); reload fast so the tests are quick.
SERVER_ENV = {"RECS_RELOAD_INTERVAL_S": str(RELOAD_INTERVAL_S)}


@dataclass
class Served:
    home: Path
    registry: ModelRegistry
    server: ServerHandle

    def post(self, body: str) -> httpx.Response:
        return httpx.post(
            f"{self.server.url}/recommend", content=body, headers={"content-type": "application/json"}, timeout=10
        )

    def version(self) -> str:
        return self.post(json.dumps({"user_id": KNOWN_USER})).json()["model_version"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("recs_home")
    registry = production_registry(PlatformPaths(home))
    publish(registry, home / "work", BPRRecommender(epochs=3, factors=8), "bpr-v1")
    server = start_server(home, env=SERVER_ENV)
    try:
        yield Served(home, registry, server)
    finally:
        server.stop()


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_known_user_gets_personal_items_from_the_production_model(served: Served) -> None:
    with bentoml.SyncHTTPClient(served.server.url) as client:
        response = client.recommend(user_id=KNOWN_USER, k=5)
    assert response["model_version"] == served.registry.production().tag
    assert response["user_id"] == KNOWN_USER and response["fallback"] is False
    assert len(response["items"]) == 5
    assert all(item["title"] == f"Movie {item['item_id']}" for item in response["items"])


def test_unknown_user_gets_the_most_popular_items(served: Served) -> None:
    with bentoml.SyncHTTPClient(served.server.url) as client:
        response = client.recommend(user_id=UNKNOWN_USER, k=3)
    expected, _ = PopularityRecommender().fit(interactions()).most_popular(3)
    assert response["fallback"] is True
    assert [item["item_id"] for item in response["items"]] == expected.tolist()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{}", ["user_id", "Field required"]),
        ('{"user_id": 1, "k": 0}', ["k", "greater than or equal to 1"]),
        ('{"user_id": 1, "k": 101}', ["k", "less than or equal to 100"]),
        ('{"user_id": 1, "k": -5}', ["k", "greater than or equal to 1"]),
        ('{"user_id": "abc"}', ["user_id", "valid integer"]),
        ('{"user_id": 1, "k": "ten"}', ["k", "valid integer"]),
        ('{"user_id": true}', ["user_id", "valid integer"]),
        ('{"user_id": 1.5}', ["user_id", "valid integer"]),
        ('{"user_id": null}', ["user_id", "valid integer"]),
        ('{"user_id": 100000000000000000000000}', ["user_id", "less than or equal to"]),
        ("[1, 2]", ["should be an object"]),
        ('"user_id"', ["should be an object"]),
        ("{not json", ["Invalid JSON"]),
    ],
)
def test_malformed_requests_get_a_4xx_that_names_the_problem(served: Served, body: str, expected: list[str]) -> None:
    response = served.post(body)
    assert 400 <= response.status_code < 500, response.text
    for fragment in expected:
        assert fragment in response.text


def test_health_and_metrics_endpoints(served: Served) -> None:
    served.post(json.dumps({"user_id": KNOWN_USER}))
    assert httpx.get(f"{served.server.url}/livez").status_code == 200
    assert httpx.get(f"{served.server.url}/readyz").status_code == 200
    metrics = httpx.get(f"{served.server.url}/metrics")
    assert metrics.status_code == 200
    assert "bentoml_service_request_total" in metrics.text and 'endpoint="/recommend"' in metrics.text


def test_every_served_request_is_logged_as_a_json_line(served: Served) -> None:
    log_dir = PlatformPaths(served.home).serving_logs

    def lines() -> list[dict]:
        return [json.loads(line) for path in sorted(log_dir.glob("*.jsonl")) for line in path.read_text().splitlines()]

    before = len(lines())
    responses = [served.post(json.dumps({"user_id": user, "k": 4})).json() for user in (KNOWN_USER, UNKNOWN_USER)]
    logged = lines()[before:]
    assert [line["request_id"] for line in logged] == [r["request_id"] for r in responses]
    for line, response in zip(logged, responses, strict=True):
        assert line["user_id"] == response["user_id"] and line["k"] == 4
        assert line["model_version"] == response["model_version"] and line["fallback"] == response["fallback"]
        assert line["item_ids"] == [item["item_id"] for item in response["items"]]
        assert line["scores"] == [item["score"] for item in response["items"]]
        assert line["latency_ms"] > 0 and line["timestamp"].endswith("+00:00")


def test_promotion_is_picked_up_without_dropping_requests(served: Served) -> None:
    old = served.version()
    failures: list[str] = []
    versions: set[str] = set()
    stop = threading.Event()

    def keep_requesting() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.post(f"{served.server.url}/recommend", json={"user_id": KNOWN_USER, "k": 5})
                    response.raise_for_status()
                    versions.add(response.json()["model_version"])
                except httpx.HTTPError as error:
                    failures.append(repr(error))

    traffic = threading.Thread(target=keep_requesting, daemon=True)
    traffic.start()
    try:
        wait_for(lambda: old in versions)
        new = publish(served.registry, served.home / "work", PopularityRecommender(), "popularity-v2")
        wait_for(lambda: served.version() == new)
        time.sleep(0.3)  # let traffic run on the new model too
    finally:
        stop.set()
        traffic.join(10)
    assert failures == []
    assert versions == {old, new}


def test_a_broken_promotion_keeps_the_old_model_serving(served: Served) -> None:
    serving = served.version()
    broken = served.home / "work" / "broken"
    broken.mkdir(parents=True)
    (broken / "bundle.json").write_text("{}")  # no model, fallback or items
    served.registry.promote(served.registry.register(broken, {}, {}), reason="test broken bundle")
    time.sleep(4 * RELOAD_INTERVAL_S)
    assert served.version() == serving
    assert httpx.get(f"{served.server.url}/readyz").status_code == 200
    served.registry.rollback()


def test_without_a_production_model_the_service_waits_for_one(tmp_path: Path) -> None:
    registry = production_registry(PlatformPaths(tmp_path))
    server = start_server(tmp_path, env=SERVER_ENV, wait_for="/livez")
    try:
        assert httpx.get(f"{server.url}/readyz").status_code == 503
        refused = httpx.post(f"{server.url}/recommend", json={"user_id": KNOWN_USER})
        assert refused.status_code == 503 and "no production model" in refused.json()["error"]

        tag = publish(registry, tmp_path / "work", PopularityRecommender(), "first")
        wait_for(lambda: httpx.get(f"{server.url}/readyz").status_code == 200)
        answered = httpx.post(f"{server.url}/recommend", json={"user_id": KNOWN_USER})
        assert answered.status_code == 200 and answered.json()["model_version"] == tag
    finally:
        server.stop()
