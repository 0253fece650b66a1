"""Test rankings of a home's refit models, one model at a time (docs/benchmarks.md, issue 13):

    PYTHONPATH=. .venv/bin/python bench/home_rankings.py HOME [MODEL ...] [--compare]

HOME is a platform home in which the pipeline ran (``RECS_HOME``: its datasets, artifacts and
evaluation report). For each refit model, every test user is ranked as the evaluation report ranks
them (training and validation items masked, ``RUN_DEPTH`` deep) and the seconds and NDCG@10 are
printed. With ``--compare`` the ranking is also checked, row for row and score for score, against
the run file the report wrote, which may come from an earlier commit's code.
"""

import argparse
import time
from pathlib import Path

import pandas as pd

from recs_platform.artifacts import DatasetVersion
from recs_platform.evaluation.evaluate import evaluate
from recs_platform.evaluation.report import RUN_DEPTH
from recs_platform.models.base import load_recommender

RUN_COLUMNS = ["user_id", "item_id", "rank", "score"]


def newest(paths: list[Path]) -> Path:
    return max(paths, key=lambda path: path.stat().st_mtime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("home", type=Path)
    parser.add_argument("models", nargs="*", help="recommender names (default: every refit model)")
    parser.add_argument("--compare", action="store_true", help="check against the report's run files")
    args = parser.parse_args()
    dataset = newest(list((args.home / "datasets").iterdir()))
    tables = DatasetVersion(dataset.name, str(dataset)).load()
    report = args.home / "evaluations" / dataset.name
    names = args.models or sorted(path.name for path in (args.home / "artifacts").iterdir())
    print("| model | users | seconds | ndcg@10 | same as the report's run file |\n|---|--:|--:|--:|---|")
    for name in names:
        refits = list((args.home / "artifacts" / name).glob("*-refit"))
        if not refits:
            continue
        model = load_recommender(newest(refits))
        started = time.perf_counter()
        result = evaluate(model, tables["test"], k=10, exclude=tables["valid"], depth=RUN_DEPTH)
        seconds = time.perf_counter() - started
        same = ""
        if args.compare:
            saved = pd.read_parquet(report / name / "run.parquet")
            same = str(result.run[RUN_COLUMNS].reset_index(drop=True).equals(saved.reset_index(drop=True)))
        print(f"| {name} | {result.n_users:,} | {seconds:.1f} | {result.summary['ndcg@10']:.4f} | {same} |", flush=True)


if __name__ == "__main__":
    main()
