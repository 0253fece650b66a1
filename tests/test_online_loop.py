"""The online loop end to end, in-process on a small synthetic dataset with a real API server:
landed events reach serving without a retrain, what serving logged equals the training data,
feedback is attributed to what was shown, and an engagement drop retrains through the gates."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import numpy as np
import pandas as pd
import pytest

from assets.definitions import build_definitions
from assets.ingestion import EVENTS, SERVING_LOGS
from assets.runner import ingest_landed, materialize_all
from recs_platform.data import synthetic
from recs_platform.data.events import write_landing_file
from recs_platform.data.serving_log import ServingLogWriter
from recs_platform.serving.launcher import ServerHandle, start_server
from recs_platform.settings import PlatformPaths

SERVER_ENV = {"RECS_RELOAD_INTERVAL_S": "1", "RECS_SERVING_LOG_ROTATE_S": "0.5"}
ENGAGEMENT_ENV = {"RECS_ENGAGEMENT_MIN_REQUESTS": "5", "RECS_GATE_MIN_METRIC": "0.0"}
FEW_EPOCHS = {
    "ops": {
        name: {
            "ops": {
                f"{name.removesuffix('_model')}_configurations": {"config": {"override_params_json": '{"epochs": 3}'}}
            }
        }
        for name in ("bpr_model", "bpr_feedback_model")
    }
}


@dataclass
class Loop:
    home: Path
    defs: dg.Definitions
    instance: dg.DagsterInstance
    server: ServerHandle
    events: pd.DataFrame

    @property
    def paths(self) -> PlatformPaths:
        return PlatformPaths(self.home)

    def recommend(self, **body: object) -> dict:
        response = httpx.post(f"{self.server.url}/recommend", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def warehouse(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.paths.warehouse), read_only=True)


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    home = tmp_path_factory.mktemp("online-home")
    config = synthetic.SyntheticConfig(n_users=120, n_items=150, n_events=5000, days=20, seed=11)
    data = synthetic.generate(config)
    synthetic.write_to_landing(data, PlatformPaths(home).landing)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ENGAGEMENT_ENV.items():
            patch.setenv(name, value)
        defs = build_definitions("ci", home)
    instance = dg.DagsterInstance.ephemeral()
    assert materialize_all(defs, instance, PlatformPaths(home), FEW_EPOCHS).success
    server = start_server(home, env=SERVER_ENV)
    try:
        yield Loop(home, defs, instance, server, data.events)
    finally:
        server.stop()


def wait_for(condition, timeout_s: float, interval_s: float = 0.5) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout_s``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout_s, f"not within {timeout_s} s"
        time.sleep(interval_s)
    return time.monotonic() - started


def served_log(loop: Loop, request_id: str) -> dict:
    records: dict[str, dict] = {}

    def landed() -> bool:
        for path in loop.paths.serving_logs.glob("*.jsonl"):
            records.update({r["request_id"]: r for r in map(json.loads, path.read_text().splitlines())})
        return request_id in records

    wait_for(landed, 15)
    return records[request_id]


def an_active_user_and_a_new_item(loop: Loop) -> tuple[int, int]:
    bundle_users = loop.events.user_id.value_counts()
    user = int(bundle_users.index[0])
    seen = set(loop.events[loop.events.user_id == user].item_id)
    popular = loop.events.item_id.value_counts().index
    return user, int(next(item for item in popular if item not in seen))


def test_a_landed_event_reaches_serving_within_60_s_of_its_ingestion_without_a_retrain(loop: Loop) -> None:
    user, item = an_active_user_and_a_new_item(loop)
    # The online store holds the user's whole history, valid and test items included, which the
    # deployed model (refit on train+valid) never saw: answers already use the fresh history.
    before = loop.recommend(user_id=user, k=10)
    event = pd.DataFrame(
        {"user_id": [user], "item_id": [item], "event_type": ["rating"], "value": [5.0],
         "timestamp": [loop.events.timestamp.max() + pd.Timedelta(hours=1)], "event_id": ["fresh-1"]}
    )  # fmt: skip
    write_landing_file(event, loop.paths.landing, "events", "synthetic-fresh-event")
    assert ingest_landed(loop.defs, loop.instance, loop.paths, EVENTS).success  # raw → dbt → online store

    def changed() -> bool:
        return loop.recommend(user_id=user, k=10)["items"] != before["items"]

    seconds = wait_for(changed, timeout_s=60)
    after = loop.recommend(user_id=user, k=10)
    assert after["model_version"] == before["model_version"]  # no retrain
    assert after["source"] == "model+fresh_history" and item not in [i["item_id"] for i in after["items"]]
    assert seconds < 60


def test_logged_features_equal_the_training_data_for_that_user_and_time(loop: Loop) -> None:
    users = loop.events.user_id.drop_duplicates().head(5).tolist()
    now = (loop.events.timestamp.max() + pd.Timedelta(days=1)).isoformat()
    logged = [served_log(loop, loop.recommend(user_id=int(u), k=5, now=now)["request_id"]) for u in users]
    result = materialize_all(loop.defs, loop.instance, loop.paths, FEW_EPOCHS)
    assert result.success
    tables = result.output_for_node("dataset").load()  # the dataset the next models train on
    interactions = pd.concat([tables[s] for s in ("train", "valid", "test")]).sort_values(["timestamp", "item_id"])
    features = tables["users"].set_index("user_id")
    for record in logged:
        user, served_at = record["user_id"], pd.Timestamp(record["served_at"]).tz_convert(None)
        history = interactions[(interactions.user_id == user) & (interactions.timestamp <= served_at)]
        assert record["history_items"] == history.item_id.tolist(), user
        expected = {k: features.loc[user, k] for k in record["user_features"]}
        assert record["user_features"] == expected and set(record["user_features"]) >= {"age_bucket", "gender"}


def test_feedback_is_attributed_to_the_position_that_was_consumed(loop: Loop) -> None:
    user = int(loop.events.user_id.iloc[-1])
    served_at = loop.events.timestamp.max() + pd.Timedelta(days=2)
    response = loop.recommend(user_id=user, k=5, now=served_at.isoformat())
    served_log(loop, response["request_id"])
    second = response["items"][1]["item_id"]
    consumed = pd.DataFrame(
        {"user_id": [user], "item_id": [second], "event_type": ["rating"], "value": [4.0],
         "timestamp": [served_at + pd.Timedelta(hours=3)], "event_id": ["consumed-1"]}
    )  # fmt: skip
    write_landing_file(consumed, loop.paths.landing, "events", "synthetic-feedback")
    assert ingest_landed(loop.defs, loop.instance, loop.paths, EVENTS).success
    assert ingest_landed(loop.defs, loop.instance, loop.paths, SERVING_LOGS).success  # → attributed_feedback
    with loop.warehouse() as connection:
        rows = connection.execute(
            "select position, consumed, hours_to_consume from attributed_feedback "
            "where request_id = ? order by position",
            [response["request_id"]],
        ).fetchall()
    assert [(p, c) for p, c, _ in rows] == [(1, False), (2, True), (3, False), (4, False), (5, False)]
    assert rows[1][2] == pytest.approx(3.0)


def test_an_engagement_drop_requests_a_retrain_that_goes_through_the_gates(loop: Loop) -> None:
    """Three days on which users consumed what they were shown, then a day on which they did not:
    the engagement check fails, its sensor requests one retraining run, and that run deploys only
    through the blocking gates."""
    start = loop.events.timestamp.max() + pd.Timedelta(days=10)
    rng = np.random.default_rng(0)
    users = loop.events.user_id.unique()[:8]
    writer = ServingLogWriter(loop.paths.serving_logs)
    consumed = []
    for day in range(4):
        for user in users:
            served_at = start + pd.Timedelta(days=day)
            items = rng.choice(np.arange(1, 150), 5, replace=False).tolist()
            writer.append(drop_record(f"drop-{day}-{user}", int(user), served_at, items))
            if day < 3:  # engaged days: the first two shown items are consumed an hour later
                consumed += [(int(user), int(i), served_at + pd.Timedelta(hours=1)) for i in items[:2]]
    writer.flush()
    frame = pd.DataFrame(consumed, columns=["user_id", "item_id", "timestamp"]).assign(event_type="rating", value=4.0)
    # An event long after the last day closes every attribution window.
    closing = pd.DataFrame(
        {
            "user_id": [int(users[0])],
            "item_id": [1],
            "timestamp": [start + pd.Timedelta(days=30)],
            "event_type": ["view"],
            "value": [None],
        }
    )
    write_landing_file(
        pd.concat([frame, closing], ignore_index=True), loop.paths.landing, "events", "synthetic-engagement"
    )
    assert ingest_landed(loop.defs, loop.instance, loop.paths, EVENTS).success
    ingestion = ingest_landed(loop.defs, loop.instance, loop.paths, SERVING_LOGS)
    check = next(e for e in ingestion.get_asset_check_evaluations() if e.check_name == "engagement_drop")
    assert not check.passed and "fell more than" in check.description

    sensor = loop.defs.resolve_sensor_def("retrain_on_engagement_drop")
    context = dg.build_sensor_context(instance=loop.instance)
    request = sensor(context)
    assert isinstance(request, dg.RunRequest) and "engagement alarm" in request.tags["retrain_reason"]
    assert isinstance(sensor(dg.build_sensor_context(instance=loop.instance, cursor=context.cursor)), dg.SkipReason)

    job = loop.defs.resolve_job_def("recs_pipeline")
    run = job.execute_in_process(instance=loop.instance, tags=request.tags, run_config=FEW_EPOCHS, raise_on_error=False)
    gates = {
        e.check_name: e for e in run.get_asset_check_evaluations() if e.asset_key == dg.AssetKey("candidate_model")
    }
    assert set(gates) == {"threshold", "beats_baselines", "no_regression"}
    deployed = {e.asset_key.to_user_string() for e in run.get_asset_materialization_events()}
    assert ("deployment" in deployed) == all(gate.passed for gate in gates.values())


def drop_record(request_id: str, user: int, served_at: pd.Timestamp, items: list[int]) -> dict:
    return {
        "request_id": request_id, "served_at": served_at.isoformat(), "user_id": user, "k": len(items),
        "model_version": "recs-recommender:drill", "source": "model", "path": "online",
        "history_source": "online_store", "history_items": [], "user_features": {},
        "item_ids": items, "scores": [1.0] * len(items), "latency_ms": 1.0, "online_version": "drill",
    }  # fmt: skip
