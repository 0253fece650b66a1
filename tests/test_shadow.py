"""Shadow traffic: a challenger answers a share of real requests off the request path, its list is
logged under the same request id with the same inputs, and the comparison judges both lists on
the same outcomes."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from recs_platform.models import EASERecommender, ItemKNNRecommender
from recs_platform.monitoring.shadow import shadow_comparison
from recs_platform.online.store import export_snapshot
from recs_platform.serving.launcher import start_server
from recs_platform.serving.model import production_registry
from recs_platform.serving.shadow import mirrored
from recs_platform.settings import PlatformPaths

SHARE = 0.5


def load(url: str, users: list[int], threads: int = 4) -> tuple[list[str], np.ndarray]:
    """Requests from ``threads`` concurrent clients; request ids and latencies in ms."""
    ids, latencies, lock = [], [], threading.Lock()

    def client(chunk: list[int]) -> None:
        with httpx.Client(timeout=10) as http:
            for user in chunk:
                started = time.perf_counter()
                response = http.post(f"{url}/recommend", json={"user_id": int(user), "k": 10})
                response.raise_for_status()
                with lock:
                    ids.append(response.json()["request_id"])
                    latencies.append((time.perf_counter() - started) * 1000)

    workers = [threading.Thread(target=client, args=(users[i::threads],)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return ids, np.array(latencies)


def logged(home: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in PlatformPaths(home).serving_logs.glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]


def test_a_challenger_sees_its_share_of_real_requests_without_slowing_the_user(tmp_path):
    from test_serving import interactions, online_state, publish

    registry = production_registry(PlatformPaths(tmp_path))
    publish(registry, tmp_path / "work", EASERecommender(l2=10.0), "champion")
    challenger = publish(registry, tmp_path / "work", ItemKNNRecommender(neighbors=5), "challenger")
    registry.rollback(by="test")  # the EASE bundle is the champion again
    export_snapshot(online_state(), PlatformPaths(tmp_path).online)
    server = start_server(tmp_path, env={"RECS_RELOAD_INTERVAL_S": "0.5", "RECS_SERVING_LOG_ROTATE_S": "0.3"})
    users = np.resize(interactions().user_id.unique(), 200).tolist()
    try:
        load(server.url, users[:40])  # warm-up
        _, alone = load(server.url, users)
        registry.set_alias("challenger", challenger, "shadow test", by="test", shadow_share=SHARE)
        time.sleep(1.5)  # the server's next poll loads the challenger
        ids, shadowed = load(server.url, users)
        time.sleep(2)  # the shadow queue drains and the log lands
    finally:
        server.stop()

    records = [r for r in logged(tmp_path) if r["request_id"] in set(ids)]
    champion = {r["request_id"]: r for r in records if r["served_by"] == "champion"}
    shadow = {r["request_id"]: r for r in records if r["served_by"] == "challenger"}
    assert set(champion) == set(ids)
    assert set(shadow) == {i for i in ids if mirrored(i, "challenger", SHARE)}  # exactly its share
    assert 0.3 < len(shadow) / len(ids) < 0.7
    for request_id, record in shadow.items():
        shown = champion[request_id]
        assert record["model_version"] == challenger != shown["model_version"]
        for field in ("user_id", "served_at", "history_items", "user_features", "k"):
            assert record[field] == shown[field], field
    # Shadowing is off the request path: the user's latency stays within a stated bound.
    assert np.percentile(shadowed, 50) <= 2 * np.percentile(alone, 50) + 5
    assert np.percentile(shadowed, 99) <= 2 * np.percentile(alone, 99) + 20


def fixture_lists() -> pd.DataFrame:
    """Three requests; the user consumed item 1 (r1), item 7 (r2) and nothing (r3, window open)."""
    rows = []

    def listed(request_id, served_by, items, consumed, closed=True, latency=2.0):
        for position, item in enumerate(items, start=1):
            rows.append(
                {"request_id": request_id, "served_by": served_by, "model_version": f"{served_by}:v",
                 "position": position, "item_id": item, "consumed": item in consumed, "window_closed": closed,
                 "latency_ms": latency}
            )  # fmt: skip

    listed("r1", "champion", [1, 2, 3], {1})
    listed("r1", "challenger", [3, 2, 1], {1}, latency=4.0)
    listed("r2", "champion", [4, 5, 6], set())
    listed("r2", "challenger", [7, 4, 5], {7}, latency=6.0)
    listed("r3", "champion", [1, 2, 3], set(), closed=False)
    listed("r3", "challenger", [1, 2, 3], set(), closed=False, latency=8.0)
    return pd.DataFrame(rows)


def test_shadow_comparison_known_answer():
    (row,) = shadow_comparison(fixture_lists(), k=3, n_resamples=200).to_dict("records")
    assert row["challenger"] == "challenger" and row["requests"] == 3 and row["mature_requests"] == 2
    assert row["overlap@3"] == pytest.approx((3 / 3 + 2 / 3 + 3 / 3) / 3)
    # r1 reverses the order (tau -1), r2 shares 4 and 5 in the same order (tau 1), r3 is identical (tau 1).
    assert row["rank_correlation"] == pytest.approx((-1 + 1 + 1) / 3)
    assert row["champion_hit_rate@3"] == 0.5 and row["challenger_hit_rate@3"] == 1.0
    discount = 1 / np.log2(np.arange(2, 5))
    champion_ndcg = (1.0 + 0.0) / 2  # item 1 first for r1; nothing for r2
    challenger_ndcg = (discount[2] / discount[0] + 1.0) / 2  # item 1 third for r1; item 7 first for r2
    assert row["champion_ndcg@3"] == pytest.approx(champion_ndcg)
    assert row["challenger_ndcg@3"] == pytest.approx(challenger_ndcg)
    assert row["ndcg@3_diff"] == pytest.approx(challenger_ndcg - champion_ndcg)
    assert row["ndcg@3_diff_ci_low"] <= row["ndcg@3_diff"] <= row["ndcg@3_diff_ci_high"]
    assert row["challenger_latency_p50_ms"] == 6.0 and row["champion_latency_p50_ms"] == 2.0
