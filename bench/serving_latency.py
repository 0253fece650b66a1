"""Serving latency over loopback: start the real server, time sequential requests, print a table row.

    .venv/bin/python bench/serving_latency.py --home var --requests 2000

Latency is measured at the client, so it includes HTTP, JSON and the request log write.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import bentoml
import numpy as np

from recs_platform.serving.launcher import start_server
from recs_platform.serving.model import production_registry
from recs_platform.settings import PlatformPaths


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("var"), help="platform home (RECS_HOME)")
    parser.add_argument("--requests", type=int, default=2000, help="number of sequential requests")
    parser.add_argument("--k", type=int, default=10, help="items per request")
    parser.add_argument("--port", type=int, default=None, help="server port (default: a free one)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def known_users(home: Path) -> tuple[str, list[int]]:
    """The production tag and its model's users; exits with a message when nothing is promoted."""
    paths = PlatformPaths(home.resolve())
    if not paths.aliases.exists():
        sys.exit(f"no production model under {home} ({paths.aliases} is missing): promote one first")
    bundle = production_registry(paths).load_production()
    return bundle.version, bundle.model.user_map.ids.tolist()


def time_requests(url: str, users: list[int], k: int) -> tuple[np.ndarray, float]:
    """Per-request latencies in ms, and the wall-clock seconds for all of them."""
    latencies = np.empty(len(users))
    with bentoml.SyncHTTPClient(url) as client:
        client.recommend(user_id=users[0], k=k)  # warm-up: connection and first-call costs
        started = time.perf_counter()
        for index, user in enumerate(users):
            before = time.perf_counter()
            client.recommend(user_id=user, k=k)
            latencies[index] = (time.perf_counter() - before) * 1000
        return latencies, time.perf_counter() - started


def main() -> None:
    args = parse_args()
    version, users = known_users(args.home)
    rng = random.Random(args.seed)
    sample = [rng.choice(users) for _ in range(args.requests)]
    server = start_server(args.home, port=args.port)
    try:
        latencies, seconds = time_requests(server.url, sample, args.k)
    finally:
        server.stop()
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    print("| model | requests | p50 ms | p95 ms | p99 ms | requests/s |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| {version} | {args.requests} | {p50:.2f} | {p95:.2f} | {p99:.2f} | {args.requests / seconds:.0f} |")


if __name__ == "__main__":
    main()
