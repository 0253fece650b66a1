"""Throughput and latency of ``recommend`` against a no-op BentoML service, side by side in one run.

    apt-get install wrk
    .venv/bin/python bench/serving_throughput.py --home var/sim --seconds 6 --rounds 6

The home must hold a deployed champion, its precomputed lists and an online store (what
bench/pipeline.py or a simulation leaves). Four servers run at once, each with the service's
default settings (one worker): the no-op service (``bench/noop_service.py``: same request model,
same response shape, no model) and the real service on the three paths of bench/serving_paths.py
(snapshot, precomputed, fresh history), each in a scratch home holding only what its path needs.

wrk drives them one at a time with ``-t1 -c<connections>`` posting ``{"user_id": u, "k": 10}``
across the model's users (bench/recommend.lua):

* saturated: as fast as the server answers. Each round runs every path right after a run of the
  no-op, so each ratio compares two runs seconds apart: this machine's speed drifts by a third
  over minutes, more than the differences measured. The table gives each path's median over
  rounds of its ratio to the no-op run before it, in throughput and in the worker's CPU time per
  request (the no-op's over the path's; the steadier one, without what other processes take
  from the cores);
* paced: at half the no-op's saturated rate, the latency a client sees below saturation
  (target: p99 <= 20 ms).

With ``--floor``, a fifth server runs the no-op plus the model's own list for the user and nothing
else (``bench/model_floor_service.py``): its ratio is the most any serving code could reach on a
path that computes the list per request.

With ``--profile``, py-spy (``pip install py-spy``) samples each server's worker during one more
saturated run, and the functions with the largest share of the samples are printed per server.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psutil
from serving_paths import PATHS, scratch_home

from recs_platform.serving.launcher import ServerHandle, start_server
from recs_platform.serving.model import production_registry
from recs_platform.settings import PlatformPaths

BENCH_DIR = Path(__file__).resolve().parent
WRK_SCRIPT = BENCH_DIR / "recommend.lua"
NOOP_SERVICE = "bench.noop_service:NoopService"
NOOP = "noop"
BATCHED_SERVICE = "bench.batched_service:BatchedRecommender"
BATCHED = "snapshot_batched"
FLOOR_SERVICE = "bench.model_floor_service:ModelFloorService"
FLOOR = "model_floor"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("var/bench"), help="platform home (RECS_HOME)")
    parser.add_argument("--seconds", type=int, default=6, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=6, help="saturated rounds (each path after a no-op run)")
    parser.add_argument("--connections", type=int, default=16, help="wrk -c")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated serving paths to run")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--new-items", type=int, default=3, help="items each user consumed since training")
    parser.add_argument("--profile", action="store_true", help="sample each worker with py-spy (see above)")
    parser.add_argument(
        "--batched", action="store_true", help="also the snapshot path, batched (bench/batched_service.py)"
    )
    parser.add_argument(
        "--floor", action="store_true", help="also the no-op plus the model's list alone (bench/model_floor_service.py)"
    )
    return parser.parse_args()


@dataclass(frozen=True)
class WrkRun:
    """What one wrk run reports (``done`` in bench/recommend.lua)."""

    requests: int
    seconds: float
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def failed(self) -> int:
        return sum(self.errors.values())


def run_wrk(
    url: str, users_file: Path, seconds: float, connections: int, rate: float | None = None, k: int = 10
) -> WrkRun:
    """One wrk run against ``url``; saturating, or paced at ``rate`` requests/s."""
    env = {**os.environ, "WRK_USERS": str(users_file), "WRK_K": str(k)}
    if rate is not None:
        env["WRK_RATE"] = str(rate)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(WRK_SCRIPT), url]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return WrkRun(**json.loads(done.stdout.strip().splitlines()[-1]))


def worker_cpu_s(server: ServerHandle) -> float:
    """CPU seconds (user and system) the server's workers have used so far."""
    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in server.worker_pids())


def write_users(users: list[int], seed: int) -> Path:
    """The users in a shuffled order, one per line, for bench/recommend.lua."""
    shuffled = random.Random(seed).sample(users, len(users))
    handle, name = tempfile.mkstemp(prefix="wrk-users-", suffix=".txt")
    with os.fdopen(handle, "w") as file:
        file.write("\n".join(str(user) for user in shuffled) + "\n")
    return Path(name)


@contextmanager
def serving(home: PlatformPaths, path: str, tag: str, new_items: int, seed: int) -> Iterator[ServerHandle]:
    """The real service on ``path``'s scratch home, or the no-op or batched service."""
    scratch = scratch_home(home, path if path in PATHS else "snapshot", tag, new_items, seed)
    services = {NOOP: NOOP_SERVICE, BATCHED: BATCHED_SERVICE, FLOOR: FLOOR_SERVICE}
    service = {"service": services[path]} if path in services else {}
    server = start_server(scratch, **service)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


# Leaf frames of a worker thread waiting for work, not doing any.
IDLE_LEAVES = ("Condition.wait", "Queue.get", "Runner.run", "BaseSelector.select", "EpollSelector.select")
# Entry points every stack of a thread shares: they say nothing about where the time goes.
TRUNK = (
    "<module>", "main", "_run_code", "_run_module_as_main", "Command.main", "Command.invoke", "Command.__call__",
    "Context.invoke", "Server.run", "asyncio_run", "Runner.run", "Thread._bootstrap", "Thread._bootstrap_inner",
    "Thread.run", "WorkerThread.run",
)  # fmt: skip


def profile(server: ServerHandle, users_file: Path, seconds: int, connections: int, top: int = 14) -> str:
    """Where a worker's busy time goes during a saturated wrk run: py-spy's samples whose leaf is
    not a waiting frame, and the ``top`` functions by inclusive share of those, leaving out the
    trunk every stack shares (thread and event-loop entry points)."""
    (worker,) = server.worker_pids()
    with tempfile.NamedTemporaryFile(suffix=".txt") as raw:
        spy = [str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(worker), "-d", str(seconds)]
        sampling = subprocess.Popen([*spy, "-r", "200", "-f", "raw", "-o", raw.name], stdout=subprocess.DEVNULL)
        run_wrk(server.url, users_file, seconds, connections)
        sampling.wait()
        return summarize_profile(Path(raw.name).read_text(), top)


def summarize_profile(collapsed: str, top: int) -> str:
    """``top`` functions by inclusive share of the busy samples of py-spy's raw (collapsed) output;
    the thread pool (``WorkerThread.run``: the API method) against the event loop (HTTP, ASGI)."""
    inclusive, busy, total = Counter(), 0, 0
    for line in collapsed.splitlines():
        stack, count = line.rsplit(" ", 1)
        # A frame is "function (file:line)"; each function counts once per stack.
        functions = [frame.split(" (")[0] for frame in stack.split(";")]
        total += int(count)
        if functions[-1] in IDLE_LEAVES:
            continue
        busy += int(count)
        for function in set(functions):
            inclusive[function] += int(count)
    shares = [(function, count / busy) for function, count in inclusive.most_common() if function not in TRUNK]
    lines = [f"  {share:5.1%}  {function}" for function, share in shares[:top]]
    return (
        f"  busy in {busy / total:.0%} of {total} samples; of the busy ones {inclusive['WorkerThread.run'] / busy:.0%} "
        f"in the API method's thread pool, {inclusive['Runner.run'] / busy:.0%} in the event loop; inclusive shares:\n"
        + "\n".join(lines)
    )


def sources(url: str, users: list[int], k: int) -> str:
    """How a sample of requests was answered, e.g. ``model 50``."""
    with httpx.Client(timeout=10) as client:
        counts = Counter(client.post(f"{url}/recommend", json={"user_id": u, "k": k}).json()["source"] for u in users)
    return ", ".join(f"{name} {count}" for name, count in counts.most_common())


def main() -> None:
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    home = PlatformPaths(args.home.resolve())
    if not home.aliases.exists():
        sys.exit(f"no production model under {args.home}: run bench/pipeline.py first")
    bundle = production_registry(home).load_production()
    users = bundle.model.user_map.ids.tolist()
    users_file = write_users(users, args.seed)
    names = [NOOP, *([FLOOR] if args.floor else []), *args.paths.split(","), *([BATCHED] if args.batched else [])]
    # Per path and round: the no-op's run, then the path's.
    pairs: dict[str, list[tuple[Saturated, Saturated]]] = {name: [] for name in names if name != NOOP}
    with ExitStack() as stack:
        servers = {
            name: stack.enter_context(serving(home, name, bundle.version, args.new_items, args.seed)) for name in names
        }
        answered = {name: sources(server.url, users[:50], args.k) for name, server in servers.items()}
        for server in servers.values():  # warm-up: first-call costs, connection setup
            run_wrk(server.url, users_file, 2, args.connections, k=args.k)
        for _ in range(args.rounds):
            for name in pairs:
                noop = saturate(servers[NOOP], users_file, args)
                pairs[name].append((noop, saturate(servers[name], users_file, args)))
        half = np.mean([noop.run.rate for runs in pairs.values() for noop, _ in runs]) / 2
        paced = {
            name: run_wrk(server.url, users_file, args.seconds, args.connections, rate=half, k=args.k)
            for name, server in servers.items()
        }
        if args.profile:  # the worker of each single-process server
            for name, server in servers.items():
                if name == BATCHED:
                    continue
                shares = profile(server, users_file, args.seconds, args.connections)
                print(f"{name}: share of the worker's samples\n{shares}\n")
    users_file.unlink()
    report(args, bundle, answered, pairs, paced, half)


@dataclass(frozen=True)
class Saturated:
    """One saturated wrk run and the worker CPU time it took per request."""

    run: WrkRun
    cpu_ms: float


def saturate(server: ServerHandle, users_file: Path, args: argparse.Namespace) -> Saturated:
    used = worker_cpu_s(server)
    run = run_wrk(server.url, users_file, args.seconds, args.connections, k=args.k)
    return Saturated(run, (worker_cpu_s(server) - used) * 1000 / run.requests)


def report(args, bundle, answered, pairs, paced, half) -> None:
    print(
        f"bundle {bundle.version} ({bundle.model.name}), {len(bundle.model.user_map)} users, k={args.k}; "
        f"wrk -t1 -c{args.connections} -d{args.seconds}s, {args.rounds} saturated rounds (each path right after "
        f"a no-op run), then paced at {half:.0f} req/s (half the no-op's mean saturated rate)\n"
    )
    print(
        "| server | answers (50 requests) | saturated req/s per round (no-op's before) | median / noop "
        "| worker CPU ms/req per round (no-op's) | median noop CPU / this | sat. p50 ms | sat. p99 ms "
        "| paced req/s | paced p50 ms | paced p99 ms | failed |"
    )
    print("|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    noops = [noop for runs in pairs.values() for noop, _ in runs]
    rates, cpu = ", ".join(f"{n.run.rate:.0f}" for n in noops), ", ".join(f"{n.cpu_ms:.2f}" for n in noops)
    print(_line(NOOP, answered[NOOP], rates, 1.0, cpu, 1.0, noops, paced[NOOP]))
    for name, runs in pairs.items():
        rates = ", ".join(f"{this.run.rate:.0f} ({noop.run.rate:.0f})" for noop, this in runs)
        cpu = ", ".join(f"{this.cpu_ms:.2f} ({noop.cpu_ms:.2f})" for noop, this in runs)
        rate_ratio = np.median([this.run.rate / noop.run.rate for noop, this in runs])
        cpu_ratio = np.median([noop.cpu_ms / this.cpu_ms for noop, this in runs])
        print(_line(name, answered[name], rates, rate_ratio, cpu, cpu_ratio, [this for _, this in runs], paced[name]))


def _line(
    name: str, answered: str, rates: str, rate_ratio: float, cpu: str, cpu_ratio: float, runs: list, paced: WrkRun
) -> str:
    """One server's row; latencies are medians over its saturated ``runs``."""
    p50, p99 = np.median([r.run.p50_ms for r in runs]), np.median([r.run.p99_ms for r in runs])
    failed = sum(r.run.failed for r in runs) + paced.failed
    return (
        f"| {name} | {answered} | {rates} | {rate_ratio:.0%} | {cpu} | {cpu_ratio:.0%} | {p50:.1f} | {p99:.1f} "
        f"| {paced.rate:.0f} | {paced.p50_ms:.1f} | {paced.p99_ms:.1f} | {failed} |"
    )


if __name__ == "__main__":
    main()
