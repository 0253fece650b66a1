"""The whole graph (ingestion through deployment, in-process, in a temporary home) on synthetic data
of a chosen shape: wall time, peak RSS and seconds per stage.

    python bench/pipeline_scale.py --shapes 100k 1m [10m] [--max-rss-gib 16] [--executor multiprocess]

Each shape runs in its own child process, so each peak RSS is its own (dbt runs as a grandchild;
its peak is reported apart). A watchdog stops a child whose process tree passes ``--max-rss-gib``,
so the benchmark never takes the shared machine down. Prints a markdown table for docs/benchmarks.md.

``--executor in_process`` (the default) runs every step in one process, one after another, as
``recs-platform run`` does; ``multiprocess`` runs the pipeline job as a run launched from the
Dagster UI or a sensor does, with Dagster's multiprocess executor on a persistent instance in the
temporary home (steps in parallel subprocesses; the peak RSS is then the process tree's).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# events, items, users: 100k is the shape of a public 100k-event dataset with a 9.7k-item catalogue.
SHAPES = {
    "100k": (100_000, 10_000, 610),
    "1m": (1_000_000, 50_000, 200_000),
    "10m": (10_000_000, 50_000, 200_000),
}


def pipeline_job():
    """The pipeline job of the home in ``RECS_HOME``, rebuilt by every step's subprocess."""
    from assets.automation import pipeline_job as job
    from assets.definitions import build_definitions

    return build_definitions("dev").resolve_job_def(job.name)


def failed_steps(events) -> list[str]:
    return [event.step_key for event in events if event.event_type_value == "STEP_FAILURE"]


def run_pipeline(defs, instance, executor: str) -> tuple[str, bool, list[str]]:
    """The pipeline run's id, success and failed step keys."""
    import dagster as dg

    if executor == "multiprocess":
        with dg.execute_job(dg.reconstructable(pipeline_job), instance=instance) as result:
            return result.run_id, result.success, failed_steps(result.all_events)
    result = defs.resolve_job_def("recs_pipeline").execute_in_process(instance=instance, raise_on_error=False)
    return result.run_id, result.success, failed_steps(result.all_events)


def run_shape(shape: str, executor: str) -> dict:
    """Generate, land, ingest and materialise the whole graph for ``shape``; runs in the child."""
    import dagster as dg

    from assets.definitions import build_definitions
    from assets.runner import ingest_landed
    from recs_platform.data.synthetic import SyntheticConfig, generate, write_to_landing
    from recs_platform.settings import PlatformPaths

    n_events, n_items, n_users = SHAPES[shape]
    stages: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix=f"pipeline-scale-{shape}-") as directory:
        home = Path(directory)
        os.environ["RECS_HOME"] = str(home)
        began, load_before = time.perf_counter(), os.getloadavg()[0]
        synthetic = generate(SyntheticConfig(n_users=n_users, n_items=n_items, n_events=n_events))
        write_to_landing(synthetic, PlatformPaths(home).landing)
        del synthetic
        stages["generate + land"] = time.perf_counter() - began
        defs = build_definitions("dev", home)
        if executor == "multiprocess":
            (home / "dagster").mkdir()
            instance = dg.DagsterInstance.local_temp(str(home / "dagster"))
        else:
            instance = dg.DagsterInstance.ephemeral()
        started = time.perf_counter()
        ingestion = ingest_landed(defs, instance, PlatformPaths(home), raw_only=True)
        stages["ingest_events (raw events only)"] = time.perf_counter() - started
        started = time.perf_counter()
        run_id, success, failed = run_pipeline(defs, instance, executor)
        stages["pipeline run (wall)"] = time.perf_counter() - started
        for stats in instance.get_run_step_stats(run_id):
            name = stats.step_key.split("[")[0]
            stages[name] = stages.get(name, 0.0) + stats.end_time - stats.start_time
        return {
            "shape": shape,
            "executor": executor,
            "events": n_events,
            "items": n_items,
            "users": n_users,
            "success": bool(ingestion and ingestion.success and success),
            "failed_steps": failed,
            "wall_s": time.perf_counter() - began,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "children_peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "stages": stages,
            "load_average": [load_before, os.getloadavg()[0]],
        }


def tree_rss_bytes(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants (from /proc)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def run_child(shape: str, max_rss_gib: float, executor: str) -> dict:
    """``shape`` in a child process, stopped by the watchdog past ``max_rss_gib``."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", shape, "--executor", executor],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    watched = {"tree_peak_mib": 0.0, "stopped": False}

    def watch() -> None:
        while child.poll() is None:
            rss = tree_rss_bytes(child.pid)
            watched["tree_peak_mib"] = max(watched["tree_peak_mib"], rss / 2**20)
            if rss > max_rss_gib * 2**30:
                watched["stopped"] = True
                child.kill()
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True).start()
    stdout, _ = child.communicate()
    lines = stdout.strip().splitlines()
    if child.returncode != 0 or not lines:
        reason = f"stopped above {max_rss_gib} GiB" if watched["stopped"] else f"exit code {child.returncode}"
        return {"shape": shape, "success": False, "error": reason, **watched}
    return {**json.loads(lines[-1]), **watched}


def markdown(results: list[dict]) -> str:
    lines = [
        "| shape | executor | events | items | users | success | wall s | peak RSS MiB (graph process)"
        " | peak RSS MiB (process tree, sampled 1 s) | 1-min load average at start, end |",
        "|---|---|--:|--:|--:|---|--:|--:|--:|--:|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['shape']} | | | | | no: {r['error']} | | | {r['tree_peak_mib']:,.0f} | |")
            continue
        lines.append(
            f"| {r['shape']} | {r['executor']} | {r['events']:,} | {r['items']:,} | {r['users']:,}"
            f" | {r['success']} | {r['wall_s']:.1f}"
            f" | {r['peak_rss_mib']:,.0f} | {r['tree_peak_mib']:,.0f}"
            f" | {r['load_average'][0]:.1f}, {r['load_average'][1]:.1f} |"
        )
    for r in results:
        if "stages" not in r:
            continue
        lines += [f"\n{r['shape']}: seconds per stage (dynamic steps summed)\n", "| stage | seconds |", "|---|--:|"]
        lines += [f"| {name} | {seconds:.1f} |" for name, seconds in sorted(r["stages"].items(), key=lambda s: -s[1])]
        if r["failed_steps"]:
            lines.append(f"\nfailed steps: {', '.join(r['failed_steps'])}")
    timed = {r["shape"]: r["wall_s"] for r in results if "wall_s" in r}
    if "1m" in timed and "10m" in timed:
        lines.append(f"\n10M/1M wall-time ratio: {timed['10m'] / timed['1m']:.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=["100k"])
    parser.add_argument("--max-rss-gib", type=float, default=16.0, help="watchdog limit for one shape's processes")
    parser.add_argument("--executor", choices=["in_process", "multiprocess"], default="in_process")
    parser.add_argument("--child", choices=sorted(SHAPES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_shape(args.child, args.executor)))
        return
    results = []
    for shape in args.shapes:
        results.append(run_child(shape, args.max_rss_gib, args.executor))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(markdown(results))


if __name__ == "__main__":
    main()
