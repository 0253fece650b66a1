"""Fuzz the prediction API: start the real server, run Schemathesis with every check, print the figures.

    .venv/bin/python bench/fuzz_api.py --max-examples 3000 --seed 0

Without ``--home`` it serves an EASE bundle fitted on MovieLens-100K (``RECS_MOVIELENS_DIR``) in a
throwaway home; with it, the home's production model. Exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from recs_platform.data import movielens
from recs_platform.models import EASERecommender, PopularityRecommender, SegmentPopularityRecommender
from recs_platform.registry.bundle import write_bundle
from recs_platform.serving.launcher import fuzz_command, start_server
from recs_platform.serving.model import production_registry
from recs_platform.settings import PlatformPaths

AGE_EDGES = [0, 18, 25, 35, 45, 55, 200]
AGE_BUCKETS = ["<18", "18-24", "25-34", "35-44", "45-54", "55+"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None, help="platform home with a production model")
    parser.add_argument("--movielens", type=Path, default=Path(os.environ.get("RECS_MOVIELENS_DIR", "var/ml-100k")))
    parser.add_argument("--max-examples", type=int, default=3000, help="Schemathesis examples per operation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", choices=["all", "positive", "negative"], default="all", help="requests to generate")
    return parser.parse_args()


def publish_movielens_bundle(home: Path, source: Path) -> str:
    """Fit EASE with popularity and segment fallbacks on all of MovieLens-100K and promote it."""
    data = movielens.read(source)
    events = data.events[["user_id", "item_id", "timestamp"]]
    users = data.users.assign(age_bucket=lambda frame: movielens_age_buckets(frame.age))
    bundle = write_bundle(
        home / "work" / "ease",
        EASERecommender(l2=500.0).fit(events),
        PopularityRecommender().fit(events),
        data.items[["item_id", "title"]],
        {"name": "ease-ml100k"},
        segment=SegmentPopularityRecommender().fit(events, users=users),
    )
    registry = production_registry(PlatformPaths(home))
    return registry.promote(registry.register(bundle, {"name": "ease-ml100k"}, {}), reason="fuzz benchmark").tag


def movielens_age_buckets(ages: pd.Series) -> pd.Series:
    return pd.cut(ages, bins=AGE_EDGES, labels=AGE_BUCKETS, right=False).astype(str)


def fuzz(home: Path, max_examples: int, seed: int, mode: str) -> dict:
    """Serve ``home`` and fuzz it; Schemathesis' JSON report (a 5xx fails its not_a_server_error check)."""
    server = start_server(home)
    report = (home / "fuzz-report.json").resolve()
    try:
        subprocess.run(fuzz_command(server.url, max_examples, seed, report, mode), cwd=home, check=False)
    finally:
        server.stop()
    return json.loads(report.read_text())


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="recs-fuzz-") as scratch:
        home = args.home or Path(scratch)
        if args.home is None:
            print("serving", publish_movielens_bundle(home, args.movielens), file=sys.stderr)
        result = fuzz(home, args.max_examples, args.seed, args.mode)
    cases = result["test_cases"]
    print("| cases | with failures | unique failures | errors | seconds |")
    print(f"| {cases['generated']} | {cases['with_failures']} | {cases['unique_failures']} | {cases['errored']} "
          f"| {result['running_time']:.0f} |")  # fmt: skip
    sys.exit(result["exit_code"])


if __name__ == "__main__":
    main()
