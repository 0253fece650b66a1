"""Full materialization on MovieLens-100K: wall time per step, peak memory, and model quality.

    .venv/bin/python bench/pipeline.py --home var/bench

Prints markdown for docs/benchmarks.md: step timings, and the test metrics of every
recommender under the random_per_user protocol next to RecBole's published BPR range.
"""

import argparse
import os
import resource
import shutil
import time
from pathlib import Path

import dagster as dg

from recs_platform.data import movielens
from recs_platform.settings import PlatformPaths

RECBOLE_BPR = "NDCG@10 0.277–0.292, Hit@10 0.76–0.80 (RecBole published, ml-100k, random 8:1:1, full ranking)"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("var/bench"), help="fresh platform home (deleted first)")
    parser.add_argument(
        "--source", type=Path, default=Path(os.environ.get("RECS_MOVIELENS_DIR", "../shared/data/ml-100k"))
    )
    return parser.parse_args()


def step_durations(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, int]]:
    """Seconds and step count per step, the dynamic steps of a sweep (``…_train[c0_ab12]``) summed."""
    totals: dict[str, tuple[float, int]] = {}
    for stats in instance.get_run_step_stats(run_id):
        name = stats.step_key.split("[")[0]
        seconds, count = totals.get(name, (0.0, 0))
        totals[name] = (seconds + stats.end_time - stats.start_time, count + 1)
    return totals


def main() -> None:
    args = parse_args()
    shutil.rmtree(args.home, ignore_errors=True)
    home = args.home.resolve()
    os.environ["RECS_HOME"] = str(home)
    from assets.definitions import build_definitions
    from assets.runner import ingest_landed

    began = time.perf_counter()
    movielens.import_to_landing(args.source, PlatformPaths(home).landing)
    landed = time.perf_counter() - began
    defs = build_definitions("dev", home)
    instance = dg.DagsterInstance.ephemeral()
    started = time.perf_counter()
    ingestion = ingest_landed(defs, instance, PlatformPaths(home), raw_only=True)
    ingested = time.perf_counter() - started
    result = defs.resolve_job_def("recs_pipeline").execute_in_process(instance=instance, raise_on_error=False)
    total = time.perf_counter() - began
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"ingestion success: {ingestion.success}; pipeline success: {result.success}\n")
    print("| step | steps | seconds |\n|---|--:|--:|")
    print(f"| import MovieLens → landing | 1 | {landed:.1f} |")
    partitions = len(instance.get_dynamic_partitions("landed_event_files"))
    print(f"| ingest_events, raw events only ({partitions} partitions in one run) | 1 | {ingested:.1f} |")
    for step, (seconds, count) in step_durations(instance, result.run_id).items():
        print(f"| {step} | {count} | {seconds:.1f} |")
    print(f"| **total wall time** | | **{total:.1f}** |\n\npeak RSS: {peak_mib:.0f} MiB\n")
    report = result.output_for_node("evaluation_report")
    print(f"dataset version {report.dataset_version}; test metrics (K=10):\n")
    print(report.markdown("test"))
    print(f"\nreference: BPR {RECBOLE_BPR}")


if __name__ == "__main__":
    main()
