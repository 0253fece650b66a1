"""Champion swaps and a killed worker under wrk load, against the real server.

    apt-get install wrk
    .venv/bin/python bench/serving_faults.py --home var/sim --rate 320 --seconds 30 --swaps 10

The home must hold a deployed champion that replaced an earlier one (both are swapped in turn).
The server runs on a scratch home of the snapshot path (bench/serving_paths.py) whose registry is
a copy, so the home's aliases never move. Two scenarios, each a wrk run paced at ``--rate``
(bench/recommend.lua), one after the other:

* swaps: the champion alias moves ``--swaps`` times, evenly over the run, between the two tags
  (without the verifying subprocess: both were verified when first promoted); every swap must be
  picked up (the server logs it) and no request may fail;
* kill: the worker process is killed (SIGKILL) a third into the run; the table gives the requests
  that failed and how long until a new worker answered.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from serving_paths import scratch_home
from serving_throughput import WrkRun, run_wrk, write_users

from recs_platform.registry.store import ModelRegistry
from recs_platform.serving.launcher import ServerHandle, start_server
from recs_platform.serving.model import production_registry
from recs_platform.settings import PlatformPaths


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("var/bench"), help="platform home (RECS_HOME)")
    parser.add_argument("--rate", type=float, default=320, help="requests/s (wrk, paced)")
    parser.add_argument("--seconds", type=int, default=30, help="length of each wrk run")
    parser.add_argument("--swaps", type=int, default=10, help="champion moves during the swaps run")
    parser.add_argument("--connections", type=int, default=16, help="wrk -c")
    parser.add_argument("--scenarios", default="swaps,kill", help="comma-separated: swaps, kill")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def swap_champion(registry: ModelRegistry, tags: list[str], swaps: int, seconds: float) -> None:
    """Move the champion ``swaps`` times, evenly over ``seconds``, between ``tags`` in turn."""
    interval = seconds / (swaps + 1)
    for swap in range(swaps):
        time.sleep(interval)
        registry.promote(tags[swap % len(tags)], reason=f"bench swap {swap + 1}", by="bench")


def kill_worker(server: ServerHandle, after_s: float, result: dict[str, float]) -> None:
    """SIGKILL the worker after ``after_s``; record how long until a new one answered."""
    time.sleep(after_s)
    (worker,) = server.worker_pids()
    os.kill(worker, signal.SIGKILL)
    killed = time.monotonic()
    with httpx.Client(timeout=60) as client:
        while not (server.worker_pids() - {worker}):
            time.sleep(0.05)
        client.get(f"{server.url}/readyz")
        result["recovery_s"] = time.monotonic() - killed


def during(run: threading.Thread, load: Callable[[], WrkRun]) -> WrkRun:
    run.start()
    try:
        return load()
    finally:
        run.join()


def main() -> None:
    args = parse_args()
    home = PlatformPaths(args.home.resolve())
    if not home.aliases.exists():
        sys.exit(f"no production model under {args.home}")
    registry = production_registry(home)
    tags = registry.champion_tags()[:2]
    if len(tags) < 2:
        sys.exit("the champion must have replaced an earlier one: two tags to swap between")
    bundle = registry.load(tags[0])
    users_file = write_users(bundle.model.user_map.ids.tolist(), args.seed)
    scratch = scratch_home(home, "snapshot", tags[0], 0, args.seed)
    server = start_server(scratch)
    rows = []
    try:
        swapping = ModelRegistry(PlatformPaths(scratch).bentoml_home / "models", PlatformPaths(scratch).registry)

        def load() -> WrkRun:
            return run_wrk(server.url, users_file, args.seconds, args.connections, rate=args.rate)

        run_wrk(server.url, users_file, 2, args.connections)  # warm-up
        for scenario in args.scenarios.split(","):
            if scenario == "swaps":
                picked_before = server.log_tail(10**8).count("now serving bundle")
                swapper = threading.Thread(target=swap_champion, args=(swapping, tags[::-1], args.swaps, args.seconds))
                run = during(swapper, load)
                picked = server.log_tail(10**8).count("now serving bundle") - picked_before
                rows.append((f"{args.swaps} champion swaps", run, f"{picked} swaps picked up"))
            elif scenario == "kill":
                result: dict[str, float] = {}
                killer = threading.Thread(target=kill_worker, args=(server, args.seconds / 3, result))
                run = during(killer, load)
                rows.append(("worker killed", run, f"new worker answered {result['recovery_s']:.1f} s after"))
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        users_file.unlink()
    print(
        f"bundles {tags[0]} and {tags[1]} ({bundle.model.name}); wrk -t1 -c{args.connections} -d{args.seconds}s "
        f"paced at {args.rate:.0f} req/s\n"
    )
    print("| scenario | requests | req/s | failed (wrk errors) | p50 ms | p99 ms | max ms | |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, run, note in rows:
        errors = ", ".join(f"{kind} {count}" for kind, count in run.errors.items() if count) or "0"
        print(
            f"| {name} | {run.requests} | {run.rate:.0f} | {run.failed} ({errors}) | {run.p50_ms:.1f} "
            f"| {run.p99_ms:.1f} | {run.max_ms:.0f} | {note} |"
        )


if __name__ == "__main__":
    main()
