"""Raw ingestion and dbt features at scale: time, throughput and peak memory per stage.

For each size N: generate N synthetic events (not timed), write them to a fresh landing zone (one
Parquet file per day), ingest the landing zone into a fresh DuckDB warehouse in a subprocess, then
``dbt build`` the whole dbt project (models and tests) in another subprocess, so each stage's peak RSS is its own.

    python bench/ingestion_scale.py --sizes 1000000 10000000 [--keep]

Prints a markdown table, the 10M/1M time ratios (10x is linear) and the machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT = ROOT / "dbt_project"

INGEST_CHILD = """
import json, resource, sys, time
from datetime import datetime
from pathlib import Path
from recs_platform.data.contract import contract_for_home
from recs_platform.data.ingestion import ingest_landing
from recs_platform.data.warehouse import connect
landing, warehouse = Path(sys.argv[1]), Path(sys.argv[2])
start = time.perf_counter()
with connect(warehouse) as connection:
    reports = ingest_landing(connection, landing, now=datetime(2030, 1, 1), contract=contract_for_home(landing.parent))
elapsed = time.perf_counter() - start
events = [r for r in reports if r.kind == "events"]
assert all(r.rows_in == r.rows_loaded + r.rows_quarantined for r in reports)
print(json.dumps({
    "seconds": elapsed,
    "files": len(events),
    "rows_in": sum(r.rows_in for r in events),
    "rows_loaded": sum(r.rows_loaded for r in events),
    "rows_quarantined": sum(r.rows_quarantined for r in events),
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def synthetic_config(n_events: int):
    from recs_platform.data.synthetic import SyntheticConfig

    n_users = max(1000, min(n_events // 100, 200_000))
    return SyntheticConfig(n_users=n_users, n_items=20_000, n_events=n_events, days=210)


def run_size(n_events: int, home: Path) -> dict:
    from recs_platform.data.synthetic import generate, write_to_landing

    landing, warehouse = home / "landing", home / "warehouse.duckdb"
    started = time.perf_counter()
    synthetic = generate(synthetic_config(n_events))
    generate_s = time.perf_counter() - started
    started = time.perf_counter()
    write_to_landing(synthetic, landing)
    write_s = time.perf_counter() - started
    n = len(synthetic.events)
    del synthetic

    env = {**os.environ, "RECS_WAREHOUSE_PATH": str(warehouse), "PYTHONPATH": str(ROOT)}
    ingest = subprocess.run(
        [sys.executable, "-c", INGEST_CHILD, str(landing), str(warehouse)],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    ingested = json.loads(ingest.stdout.strip().splitlines()[-1])

    dbt = shutil.which("dbt", path=str(Path(sys.executable).parent)) or "dbt"
    command = [dbt, "build", "--project-dir", str(DBT_PROJECT),
               "--profiles-dir", str(DBT_PROJECT), "--target-path", str(home / "dbt_target"),
               "--log-path", str(home / "dbt_logs")]  # fmt: skip
    time_v = Path("/usr/bin/time")
    if time_v.exists():
        command = [str(time_v), "-v", *command]
    started = time.perf_counter()
    built = subprocess.run(command, env=env, capture_output=True, text=True)
    dbt_s = time.perf_counter() - started
    if built.returncode != 0:
        print(built.stdout[-4000:], built.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"dbt build failed for N={n_events}")
    dbt_peak = next(
        (int(line.split(":")[1]) / 1024 for line in built.stderr.splitlines() if "Maximum resident set size" in line),
        float("nan"),
    )
    return {
        "n_events": n,
        "files": ingested["files"],
        "generate_s": generate_s,
        "write_s": write_s,
        "ingest_s": ingested["seconds"],
        "ingest_peak_mib": ingested["peak_rss_mib"],
        "quarantined": ingested["rows_quarantined"],
        "loaded": ingested["rows_loaded"],
        "dbt_s": dbt_s,
        "dbt_peak_mib": dbt_peak,
        "warehouse_mib": warehouse.stat().st_size / 2**20,
    }


def table(results: list[dict]) -> str:
    lines = [
        "| events | files | write s (ev/s) | ingest s (ev/s) | ingest peak MiB | dbt s (ev/s) | dbt peak MiB"
        " | loaded | quarantined | warehouse MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        n = r["n_events"]

        def cell(seconds: float, n: int = n) -> str:
            return f"{seconds:.1f} ({n / seconds:,.0f})"

        lines.append(
            f"| {n:,} | {r['files']} | {cell(r['write_s'])} | {cell(r['ingest_s'])} | {r['ingest_peak_mib']:,.0f}"
            f" | {cell(r['dbt_s'])} | {r['dbt_peak_mib']:,.0f} | {r['loaded']:,} | {r['quarantined']:,}"
            f" | {r['warehouse_mib']:,.0f} |"
        )
    if len(results) >= 2:
        small, large = results[0], results[-1]
        scale = large["n_events"] / small["n_events"]
        ratios = ", ".join(f"{key[:-2]} {large[key] / small[key]:.1f}x" for key in ("write_s", "ingest_s", "dbt_s"))
        lines.append(f"\nTime ratio {large['n_events']:,}/{small['n_events']:,} (linear = {scale:.0f}x): {ratios}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--keep", action="store_true", help="keep each size's landing zone and warehouse")
    args = parser.parse_args()
    results = []
    for n_events in args.sizes:
        home = Path(tempfile.mkdtemp(prefix=f"ingestion-scale-{n_events}-"))
        try:
            result = run_size(n_events, home)
        finally:
            if not args.keep:
                shutil.rmtree(home, ignore_errors=True)
        result["load"] = os.getloadavg()
        results.append(result)
        print(json.dumps({**result, "home": str(home) if args.keep else None}), file=sys.stderr, flush=True)
    print(table(results))
    print(f"\ncpus: {os.cpu_count()}; load average after each size: "
          + "; ".join(f"{r['n_events']:,}: " + " ".join(f"{x:.2f}" for x in r["load"]) for r in results))  # fmt: skip


if __name__ == "__main__":
    main()
