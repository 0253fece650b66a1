"""Every recommender on one MovieLens-100K split, beside EASE and the `implicit` library.

    .venv/bin/python bench/model_zoo.py --dataset var/bench/datasets/<version>

Uses a frozen random_per_user dataset (run bench/pipeline.py first). Our recommenders run with
their defaults (chosen on validation); references: a plain numpy closed-form EASE (λ = 500) and
`implicit` ALS and item-kNN (pip install implicit), all scored by the same `score_run`: full
ranking, train and validation items masked, K = 10.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recs_platform.evaluation.evaluate import evaluate, score_run
from recs_platform.models import RECOMMENDERS
from recs_platform.validation.datasets import DatasetVersion

K = 10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="frozen dataset folder")
    parser.add_argument("--skip", nargs="*", default=[], help="recommenders to leave out")
    return parser.parse_args()


def ours(tables: dict[str, pd.DataFrame], skip: list[str]) -> list[dict]:
    rows = []
    for name, cls in sorted(RECOMMENDERS.items()):
        if name in skip:
            continue
        started = time.perf_counter()
        model = cls().fit(
            tables["train"], tables["items"].item_id, tables["valid"], users=tables["users"], items=tables["items"]
        )
        fit = time.perf_counter() - started
        summary = evaluate(model, tables["test"], k=K, exclude=tables["valid"]).summary
        rows.append({"recommender": name, "source": "recs-platform", "fit_s": fit, **summary})
        print(rows[-1], flush=True)
    return rows


def _matrix(tables: dict[str, pd.DataFrame]) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    users = np.sort(tables["train"].user_id.unique())
    items = np.sort(tables["items"].item_id.unique())
    rows = np.searchsorted(users, tables["train"].user_id)
    cols = np.searchsorted(items, tables["train"].item_id)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(users), len(items))), users, items


def _run_from_scores(scores: np.ndarray, users: np.ndarray, items: np.ndarray, tables: dict) -> pd.DataFrame:
    """Top-K per test user after masking train and validation items."""
    masked = pd.concat([tables["train"], tables["valid"]])
    rows = np.searchsorted(users, masked.user_id)
    cols = np.searchsorted(items, masked.item_id)
    scores = scores.copy()
    scores[rows, cols] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    return pd.DataFrame(
        {
            "user_id": np.repeat(users, K),
            "item_id": items[top.ravel()],
            "rank": np.tile(np.arange(1, K + 1), len(users)),
        }
    )


def ease_reference(tables: dict, l2: float = 500.0) -> dict:
    started = time.perf_counter()
    matrix, users, items = _matrix(tables)
    gram = (matrix.T @ matrix).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += l2
    precision = np.linalg.inv(gram)
    weights = -precision / np.diag(precision)
    np.fill_diagonal(weights, 0.0)
    scores = matrix @ weights
    fit = time.perf_counter() - started
    per_user = score_run(_run_from_scores(np.asarray(scores), users, items, tables), tables["test"], K)
    return {
        "recommender": f"EASE closed form (λ={l2:g}, numpy)",
        "source": "reference",
        "fit_s": fit,
        **{c: float(per_user[c].mean()) for c in per_user.columns[2:]},
    }


def implicit_reference(tables: dict, name: str, model) -> dict:
    matrix, users, items = _matrix(tables)
    started = time.perf_counter()
    model.fit(matrix, show_progress=False)
    fit = time.perf_counter() - started
    ids, _ = model.recommend(np.arange(len(users)), matrix, N=len(items), filter_already_liked_items=False)
    scores = np.full((len(users), len(items)), -np.inf)
    np.put_along_axis(scores, ids, -np.arange(ids.shape[1], dtype=float)[None, :].repeat(len(users), 0), axis=1)
    per_user = score_run(_run_from_scores(scores, users, items, tables), tables["test"], K)
    return {
        "recommender": name,
        "source": "implicit 0.7",
        "fit_s": fit,
        **{c: float(per_user[c].mean()) for c in per_user.columns[2:]},
    }


def main() -> None:
    args = parse_args()
    tables = DatasetVersion(args.dataset.name, str(args.dataset)).load()
    rows = ours(tables, args.skip)
    rows.append(ease_reference(tables))
    from implicit.als import AlternatingLeastSquares
    from implicit.nearest_neighbours import CosineRecommender

    rows.append(
        implicit_reference(
            tables,
            "implicit ALS (64 factors, 15 it, λ=0.01)",
            AlternatingLeastSquares(factors=64, iterations=15, regularization=0.01, random_state=0),
        )
    )
    rows.append(implicit_reference(tables, "implicit item-kNN (cosine, K=100)", CosineRecommender(K=100)))
    table = pd.DataFrame(rows).sort_values("ndcg@10", ascending=False)
    print(f"\ndataset {args.dataset.name}\n")
    print(table.to_markdown(index=False, floatfmt=".4f"))


if __name__ == "__main__":
    main()
