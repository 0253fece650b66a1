"""The BentoML service, exercised through a real ``bentoml serve`` process on a tiny registry."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bentoml
import httpx
import numpy as np
import pandas as pd
import pytest

from recs_platform.cli import build_parser
from recs_platform.models import EASERecommender, PopularityRecommender, Recommender, SegmentPopularityRecommender
from recs_platform.online.store import export_snapshot
from recs_platform.registry.bundle import precompute_lists, write_bundle
from recs_platform.registry.store import BundleRefused, ModelRegistry
from recs_platform.serving.contract import ErrorBody
from recs_platform.serving.health import STALE_AFTER_S, divergence, read_statuses
from recs_platform.serving.launcher import ServerHandle, fuzz_command, start_server
from recs_platform.serving.model import precomputed_path, production_registry
from recs_platform.settings import PlatformPaths

KNOWN_USER = 1
UNKNOWN_USER = 10_000
RELOAD_INTERVAL_S = 0.5
FEMALE_25 = {"age_bucket": "25-34", "gender": "F"}


def interactions() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"user_id": rng.integers(1, 31, 500), "item_id": rng.integers(1, 41, 500)})
    frame = pd.concat([frame, pd.DataFrame({"user_id": [KNOWN_USER], "item_id": [1]})], ignore_index=True)
    return frame.assign(timestamp=pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(len(frame)), unit="min"))


def users() -> pd.DataFrame:
    ids = np.arange(1, 31)
    return pd.DataFrame(
        {"user_id": ids, "age_bucket": np.where(ids % 2, "25-34", "35-44"), "gender": np.where(ids % 3, "F", "M")}
    )


def items() -> pd.DataFrame:
    return pd.DataFrame({"item_id": range(1, 41), "title": [f"Movie {i}" for i in range(1, 41)]})


def publish(registry: ModelRegistry, workdir: Path, model: Recommender, name: str) -> str:
    """Write, register and promote a bundle (with segment popularity for new users); returns its tag."""
    train = interactions()
    bundle = write_bundle(
        workdir / name,
        model.fit(train),
        PopularityRecommender().fit(train),
        items(),
        {"name": name},
        segment=SegmentPopularityRecommender().fit(train, users=users()),
    )
    tag = registry.register(bundle, {"name": name}, {"stage": "test"})
    registry.promote(tag, reason=f"test {name}")
    return tag


def online_state(extra: dict[int, list[int]] | None = None) -> pd.DataFrame:
    """The online store's rows for the training users, with ``extra`` items appended per user."""
    train = interactions().sort_values(["timestamp", "item_id"]).drop_duplicates(["user_id", "item_id"])
    rows = []
    for user, group in train.groupby("user_id"):
        history = [*group.item_id.tolist(), *(extra or {}).get(user, [])]
        times = pd.date_range("2024-01-01", periods=len(history), freq="min").tolist()
        features = users().set_index("user_id").loc[user]
        rows.append(
            {"user_id": user, "item_sequence": history, "timestamp_sequence": times, **features.to_dict(),
             "occupation": None, "activity_level": "low"}
        )  # fmt: skip
    return pd.DataFrame(rows)


# The launcher sets RECS_HOME and BENTOML_HOME (home/bentoml); reload and land logs fast so the tests are quick.
SERVER_ENV = {"RECS_RELOAD_INTERVAL_S": str(RELOAD_INTERVAL_S), "RECS_SERVING_LOG_ROTATE_S": "0.2"}


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


@contextmanager
def serving_ease(home: Path) -> Iterator[Served]:
    """A server on ``home`` with an EASE champion and the online store of ``online_state()``."""
    registry = production_registry(PlatformPaths(home))
    publish(registry, home / "work", EASERecommender(l2=10.0), "ease-v1")
    export_snapshot(online_state(), PlatformPaths(home).online)
    server = start_server(home, env=SERVER_ENV)
    try:
        yield Served(home, registry, server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving_ease(tmp_path_factory.mktemp("recs_home")) as served:
        yield served


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def item_ids(response: dict) -> list[int]:
    return [item["item_id"] for item in response["items"]]


def test_known_user_gets_personal_items_from_the_production_model(served: Served) -> None:
    with bentoml.SyncHTTPClient(served.server.url) as client:
        response = client.recommend(user_id=KNOWN_USER, k=5)
    assert response["model_version"] == served.registry.production().tag
    assert response["user_id"] == KNOWN_USER
    assert response["source"] == "model" and response["history_source"] == "online_store"
    expected = EASERecommender(l2=10.0).fit(interactions()).recommend([KNOWN_USER], k=5)
    assert item_ids(response) == expected.item_id.tolist()
    assert all(item["title"] == f"Movie {item['item_id']}" for item in response["items"])


def test_unknown_user_without_features_gets_the_most_popular_items(served: Served) -> None:
    with bentoml.SyncHTTPClient(served.server.url) as client:
        response = client.recommend(user_id=UNKNOWN_USER, k=3)
    expected, _ = PopularityRecommender().fit(interactions()).most_popular(3)
    assert response["source"] == "popularity" and response["history_source"] == "none"
    assert item_ids(response) == expected.tolist()


def test_new_user_with_demographics_gets_the_segment_answer(served: Served) -> None:
    response = served.post(json.dumps({"user_id": UNKNOWN_USER, "k": 4, "features": FEMALE_25})).json()
    segment = SegmentPopularityRecommender().fit(interactions(), users=users())
    assert response["source"] == "segment"
    assert item_ids(response) == segment.recommend_for_segment(FEMALE_25, k=4).item_id.tolist()
    assert item_ids(response) != item_ids(served.post(json.dumps({"user_id": UNKNOWN_USER, "k": 4})).json())


def test_recent_items_change_the_answer_at_once(served: Served) -> None:
    model = EASERecommender(l2=10.0).fit(interactions())
    before = served.post(json.dumps({"user_id": KNOWN_USER, "k": 5})).json()
    recent = unseen_items(KNOWN_USER, 3)
    after = served.post(json.dumps({"user_id": KNOWN_USER, "k": 5, "recent_items": recent})).json()
    assert after["source"] == "model+fresh_history" and after["history_source"] == "online_store+request"
    history = [*online_state().set_index("user_id").item_sequence[KNOWN_USER], *recent]
    assert item_ids(after) == model.recommend_for_history(history, k=5)[0].tolist()
    assert item_ids(after) != item_ids(before) and not set(recent) & set(item_ids(after))
    # A user the model never saw is scored from the items sent, not by popularity.
    new_user = served.post(json.dumps({"user_id": UNKNOWN_USER, "k": 5, "recent_items": recent})).json()
    assert new_user["source"] == "model+fresh_history" and new_user["history_source"] == "request"


def unseen_items(user: int, count: int) -> list[int]:
    """Items the user has no training interaction with, from the end of the catalog."""
    seen = set(interactions().query("user_id == @user").item_id)
    return [item for item in range(40, 0, -1) if item not in seen][:count]


def test_a_new_online_snapshot_changes_the_answer_without_a_retrain(served: Served) -> None:
    before = served.post(json.dumps({"user_id": KNOWN_USER, "k": 5})).json()
    new_items = unseen_items(KNOWN_USER, 2)
    export_snapshot(online_state({KNOWN_USER: new_items}), PlatformPaths(served.home).online)
    try:
        wait_for(lambda: served.post(json.dumps({"user_id": KNOWN_USER, "k": 5})).json()["source"] != "model")
        after = served.post(json.dumps({"user_id": KNOWN_USER, "k": 5})).json()
        assert after["source"] == "model+fresh_history" and after["model_version"] == before["model_version"]
        assert item_ids(after) != item_ids(before) and not set(new_items) & set(item_ids(after))
    finally:
        export_snapshot(online_state(), PlatformPaths(served.home).online)
        wait_for(lambda: served.post(json.dumps({"user_id": KNOWN_USER, "k": 5})).json()["source"] == "model")


def test_precomputed_lists_answer_while_the_history_is_unchanged(served: Served) -> None:
    tag = served.registry.production().tag
    computed = served.post(json.dumps({"user_id": KNOWN_USER, "k": 5})).json()
    bundle = served.registry.load_production()
    path = precomputed_path(PlatformPaths(served.home), tag)
    path.parent.mkdir(parents=True, exist_ok=True)
    precompute_lists(bundle.model, k=20).to_parquet(path)
    try:
        wait_for(
            lambda: (
                logged(served, served.post(json.dumps({"user_id": KNOWN_USER, "k": 5})).json())["path"] == "precomputed"
            )
        )
        answered = served.post(json.dumps({"user_id": KNOWN_USER, "k": 5})).json()
        assert item_ids(answered) == item_ids(computed)
        assert logged(served, served.post(json.dumps({"user_id": KNOWN_USER, "k": 30})).json())["path"] == "online"
    finally:
        path.unlink()


def logged(served: Served, response: dict, timeout_s: float = 10.0) -> dict:
    """The serving-log record of ``response``, once its file has landed."""
    found: dict[str, dict] = {}

    def landed() -> bool:
        for path in PlatformPaths(served.home).serving_logs.glob("*.jsonl"):
            for line in path.read_text().splitlines():
                record = json.loads(line)
                found[record["request_id"]] = record
        return response["request_id"] in found

    wait_for(landed, timeout_s)
    return found[response["request_id"]]


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
        ('{"user_id": 1, "recent_items": [1, true]}', ["recent_items", "valid integer"]),
        ('{"user_id": 1, "recent_items": 5}', ["recent_items", "valid array"]),
        ('{"user_id": 1, "recent_items": [' + ",".join(["1"] * 201) + "]}", ["recent_items", "at most 200"]),
        ('{"user_id": 1, "features": {"age": 30}}', ['"features","age"', "Extra inputs are not permitted"]),
        ('{"user_id": 1, "features": {"gender": 1}}', ['"features","gender"', "valid string"]),
        ('{"user_id": 1, "now": "yesterday"}', ["now", "valid datetime"]),
    ],
)
def test_malformed_requests_get_a_4xx_that_names_the_problem(served: Served, body: str, expected: list[str]) -> None:
    response = served.post(body)
    assert response.status_code == 400, response.text
    assert ErrorBody.model_validate(response.json()).detail  # the body the published spec describes
    for fragment in expected:
        assert fragment in response.text


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "text/plain"],
)
def test_a_body_that_is_not_json_gets_a_415_that_names_its_type(served: Served, content_type: str) -> None:
    # A multipart body without a boundary used to be a 500 from BentoML's form parser.
    response = httpx.post(
        f"{served.server.url}/recommend", content=b"user_id=1", headers={"content-type": content_type}, timeout=10
    )
    assert response.status_code == 415
    media_type = content_type.split(";")[0]
    expected = f"Content-Type {media_type!r} is not supported: send the request body as application/json"
    assert ErrorBody.model_validate(response.json()).error == expected


def test_the_published_spec_describes_every_error_and_the_optional_nulls(served: Served) -> None:
    spec = httpx.get(f"{served.server.url}/docs.json").json()
    recommend = spec["paths"]["/recommend"]["post"]
    assert set(recommend["responses"]) == {"200", "400", "415", "500", "503"}
    for status in ("400", "415", "500", "503"):
        schema = recommend["responses"][status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorBody"}
    fields = recommend["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert all(fields[name]["nullable"] for name in ("recent_items", "features", "now"))
    assert '"null"' not in json.dumps(spec)  # OpenAPI 3.0 has no null type: nullable says it
    assert set(spec["paths"]["/readyz"]["get"]["responses"]) == {"200", "503"}


FUZZ_EXAMPLES = 150  # per operation; bench/fuzz_api.py runs thousands


def test_the_api_passes_every_schemathesis_check_against_its_published_spec(served: Served, tmp_path: Path) -> None:
    """No 5xx, and every response (errors included) as the OpenAPI on /docs.json describes it."""
    report = tmp_path / "report.json"
    run = subprocess.run(
        fuzz_command(served.server.url, FUZZ_EXAMPLES, seed=0, report=report),
        cwd=tmp_path,  # Schemathesis keeps a cache in its working directory
        capture_output=True,
        text=True,
    )
    result = json.loads(report.read_text())
    assert run.returncode == 0, run.stdout[-6000:]
    assert result["test_cases"]["generated"] >= FUZZ_EXAMPLES and result["failures"] == []


def test_health_and_metrics_endpoints(served: Served) -> None:
    served.post(json.dumps({"user_id": KNOWN_USER}))
    tag = served.registry.production().tag
    assert httpx.get(f"{served.server.url}/livez").status_code == 200
    ready = httpx.get(f"{served.server.url}/readyz")
    assert ready.status_code == 200
    assert {key: ready.json()[key] for key in ("ready", "serving", "pointer", "degraded", "reason")} == {
        "ready": True,
        "serving": tag,
        "pointer": tag,
        "degraded": False,
        "reason": None,
    }
    metrics = httpx.get(f"{served.server.url}/metrics")
    assert metrics.status_code == 200
    assert "bentoml_service_request_total" in metrics.text and 'endpoint="/recommend"' in metrics.text
    assert metric(metrics.text, "recs_serving_degraded") == 0.0
    assert metric(metrics.text, f'recs_serving_bundle{{role="served",tag="{tag}"}}') == 1.0


def test_every_answer_is_logged_with_the_exact_inputs_it_used(served: Served) -> None:
    bodies = [
        {"user_id": KNOWN_USER, "k": 4},
        {"user_id": UNKNOWN_USER, "k": 4, "features": FEMALE_25, "now": "1998-03-01T10:00:00"},
        {"user_id": KNOWN_USER, "k": 4, "recent_items": [40]},
    ]
    for body in bodies:
        response = served.post(json.dumps(body)).json()
        record = logged(served, response)
        assert record["user_id"] == response["user_id"] and record["k"] == 4
        assert record["model_version"] == response["model_version"] and record["source"] == response["source"]
        assert record["history_source"] == response["history_source"]
        assert record["item_ids"] == item_ids(response)
        assert record["scores"] == [item["score"] for item in response["items"]]
        assert record["latency_ms"] > 0 and record["online_version"]
    known = logged(served, served.post(json.dumps(bodies[0])).json())
    assert known["history_items"] == online_state().set_index("user_id").item_sequence[KNOWN_USER]
    assert known["user_features"] == {"age_bucket": "25-34", "gender": "F", "activity_level": "low"}
    assert known["served_at"].endswith("+00:00")
    segment = logged(served, served.post(json.dumps(bodies[1])).json())
    assert segment["user_features"] == FEMALE_25 and segment["served_at"] == "1998-03-01T10:00:00+00:00"
    fresh = logged(served, served.post(json.dumps(bodies[2])).json())
    assert fresh["history_items"][-1] == 40 and fresh["history_source"] == "online_store+request"


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


def metric(text: str, series: str) -> float:
    """The value of one series (name and labels, exactly as exposed) in Prometheus text."""
    values = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(series + " ")]
    assert len(values) == 1, f"{series} appears {len(values)} times"
    return float(values[0])


def status_report(home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> dict:
    """What ``recs-platform status`` prints for ``home``."""
    monkeypatch.setenv("RECS_HOME", str(home))
    args = build_parser().parse_args(["status"])
    capsys.readouterr()
    assert args.handler(args) == 0
    return json.loads(capsys.readouterr().out)


def test_a_broken_bundle_is_refused_before_the_champion_moves(served: Served) -> None:
    serving = served.version()
    broken = served.home / "work" / "refused"
    broken.mkdir(parents=True)
    (broken / "bundle.json").write_text("{}")  # no model, fallback or items
    tag = served.registry.register(broken, {}, {})
    with pytest.raises(BundleRefused, match=f"^{tag} failed verification: it could not be loaded"):
        served.registry.promote(tag, reason="test broken bundle")
    assert served.registry.production().tag == serving and served.registry.refusals()[-1].tag == tag


def test_a_pointer_to_a_broken_bundle_degrades_the_server_but_it_keeps_serving(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    url, serving = served.server.url, served.version()
    failures_before = metric(httpx.get(f"{url}/metrics").text, 'recs_bundle_load_failures_total{what="bundle"}')
    broken = served.home / "work" / "broken"
    broken.mkdir(parents=True)
    (broken / "bundle.json").write_text("{}")
    # The alias is made to name it without verification, as a hand edit or an older release could.
    unverified = ModelRegistry(served.registry.store_dir, served.registry.registry_dir)
    tag = unverified.promote(unverified.register(broken, {}, {}), reason="test: bypasses verification").tag
    try:
        wait_for(lambda: httpx.get(f"{url}/readyz").json()["degraded"])
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 200 and served.version() == serving  # still answering, with the last good one
        assert {key: ready.json()[key] for key in ("ready", "serving", "pointer")} == {
            "ready": True,
            "serving": serving,
            "pointer": tag,
        }
        reason = ready.json()["reason"]
        assert reason.startswith(f"{tag} could not be loaded (FileNotFoundError: ")

        metrics = httpx.get(f"{url}/metrics").text
        assert metric(metrics, "recs_serving_degraded") == 1.0
        assert metric(metrics, f'recs_serving_bundle{{role="served",tag="{serving}"}}') == 1.0
        assert metric(metrics, f'recs_serving_bundle{{role="pointer",tag="{tag}"}}') == 1.0
        assert metric(metrics, 'recs_bundle_load_failures_total{what="bundle"}') == failures_before + 1

        wait_for(lambda: status_report(served.home, monkeypatch, capsys)["servers"][0]["degraded"])
        status = status_report(served.home, monkeypatch, capsys)
        (server,) = status["servers"]
        assert (server["serving"], server["pointer"], server["stale"]) == (serving, tag, False)
        assert status["warnings"] == [f"server {server['server']} serves {serving}, not the champion {tag}: {reason}"]
    finally:
        served.registry.rollback(by="test")
    wait_for(lambda: not httpx.get(f"{url}/readyz").json()["degraded"])
    assert metric(httpx.get(f"{url}/metrics").text, "recs_serving_degraded") == 0.0
    wait_for(lambda: status_report(served.home, monkeypatch, capsys)["warnings"] == [])


def test_status_reports_name_each_divergence_and_flag_silent_servers(tmp_path: Path) -> None:
    now, old = datetime.now(UTC), datetime.now(UTC) - timedelta(seconds=STALE_AFTER_S + 5)
    reports = {
        "a-1": {"serving": "r:1", "pointer": "r:2", "reason": "r:2 could not be loaded (OSError: x)", "at": now},
        "b-2": {"serving": None, "pointer": "r:2", "reason": None, "at": old},
        "c-3": {"serving": "r:2", "pointer": "r:2", "reason": None, "at": now},
    }
    for server, report in reports.items():
        at = report.pop("at").isoformat()
        (tmp_path / f"{server}.json").write_text(json.dumps({**report, "server": server, "updated_at": at}))
    statuses = read_statuses(tmp_path)
    assert [(s["server"], s["stale"]) for s in statuses] == [("a-1", False), ("b-2", True), ("c-3", False)]
    assert [divergence(status) for status in statuses] == [
        "server a-1 serves r:1, not the champion r:2: r:2 could not be loaded (OSError: x)",
        f"server b-2 serves nothing, not the champion r:2 (still loading it) (last reported {old.isoformat()};"
        " it may have stopped)",
        None,
    ]


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
