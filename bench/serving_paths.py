"""Latency of the three serving paths, side by side in one run, against the real server.

    .venv/bin/python bench/serving_paths.py --home var/bench --requests 2000

The home must hold a deployed bundle, its precomputed lists and an online store (what
bench/pipeline.py leaves). Each path runs in a scratch home that shares the home's model store
and pointer but holds only the state that path needs:

* snapshot: no online store, no precomputed lists; known users get the model's training-time list,
  computed per request (``source=model``, path online);
* precomputed: the same users, answered from the bundle's precomputed lists;
* fresh history: the online store with ``--new-items`` items appended to every user's history
  (as if they landed after training); history models score the current history per request
  (``source=model+fresh_history``).

Latency is measured at the client (HTTP, JSON, answering, logging). Ratios are to the snapshot path.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from recs_platform.online.store import export_snapshot, read_pointer
from recs_platform.serving.launcher import start_server
from recs_platform.serving.model import precomputed_path, production_registry
from recs_platform.settings import PlatformPaths

PATHS = ("snapshot", "precomputed", "fresh_history")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("var/bench"), help="platform home (RECS_HOME)")
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per path")
    parser.add_argument("--k", type=int, default=10, help="items per request")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--new-items", type=int, default=3, help="items each user consumed since training")
    return parser.parse_args()


def with_new_items(online: Path, count: int, seed: int) -> None:
    """Append ``count`` items the user has not seen to every history of the store under ``online``."""
    state = pd.read_parquet(read_pointer(online)["path"])
    catalog = np.unique(np.concatenate(state.item_sequence.to_numpy()))
    rng = np.random.default_rng(seed)
    after = np.concatenate(state.timestamp_sequence.to_numpy()).astype("datetime64[us]").max()
    for row in state.itertuples():
        fresh = rng.choice(np.setdiff1d(catalog, row.item_sequence), size=count, replace=False)
        state.at[row.Index, "item_sequence"] = np.concatenate([row.item_sequence, fresh])
        times = after + np.arange(1, count + 1) * np.timedelta64(1, "m")
        state.at[row.Index, "timestamp_sequence"] = np.concatenate([row.timestamp_sequence, times])
    export_snapshot(state, online)


def scratch_home(home: PlatformPaths, path: str, tag: str, new_items: int, seed: int) -> Path:
    """A home sharing ``home``'s model store and pointer, with only what ``path`` needs."""
    scratch = Path(tempfile.mkdtemp(prefix=f"serving-{path}-"))
    target = PlatformPaths(scratch)
    target.bentoml_home.symlink_to(home.bentoml_home)
    shutil.copytree(home.registry, target.registry)
    if path == "precomputed":
        lists = precomputed_path(target, tag)
        lists.parent.mkdir(parents=True)
        shutil.copy(precomputed_path(home, tag), lists)
    if path == "fresh_history":
        shutil.copytree(home.online, target.online)
        with_new_items(target.online, new_items, seed)
    return scratch


def time_requests(url: str, users: list[int], k: int) -> tuple[np.ndarray, float, Counter]:
    """Per-request latencies in ms, the wall-clock seconds, and how the answers were produced."""
    latencies, sources = np.empty(len(users)), Counter()
    with httpx.Client(timeout=10) as client:
        client.post(f"{url}/recommend", json={"user_id": users[0], "k": k})  # warm-up
        started = time.perf_counter()
        for index, user in enumerate(users):
            before = time.perf_counter()
            answer = client.post(f"{url}/recommend", json={"user_id": user, "k": k}).json()
            latencies[index] = (time.perf_counter() - before) * 1000
            sources[answer["source"]] += 1
        return latencies, time.perf_counter() - started, sources


def main() -> None:
    args = parse_args()
    home = PlatformPaths(args.home.resolve())
    if not home.aliases.exists():
        sys.exit(f"no production model under {args.home}: run bench/pipeline.py first")
    bundle = production_registry(home).load_production()
    users = bundle.model.user_map.ids.tolist()
    sample = [random.Random(args.seed).choice(users) for _ in range(args.requests)]
    rows = {}
    for path in PATHS:
        scratch = scratch_home(home, path, bundle.version, args.new_items, args.seed)
        server = start_server(scratch)
        try:
            rows[path] = time_requests(server.url, sample, args.k)
        finally:
            server.stop()
            shutil.rmtree(scratch, ignore_errors=True)
    base = np.percentile(rows["snapshot"][0], 50)
    print(f"bundle {bundle.version} ({bundle.model.name}), {args.requests} sequential requests per path, k={args.k}\n")
    print("| path | answers | p50 ms | p95 ms | p99 ms | requests/s | p50 / snapshot p50 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for path, (latencies, seconds, sources) in rows.items():
        p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
        answered = ", ".join(f"{name} {count}" for name, count in sources.most_common())
        rate = len(latencies) / seconds
        print(f"| {path} | {answered} | {p50:.2f} | {p95:.2f} | {p99:.2f} | {rate:.0f} | {p50 / base:.2f} |")


if __name__ == "__main__":
    main()
