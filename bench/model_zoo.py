"""Every recommender on one MovieLens-100K split, beside EASE and the `implicit` library, under two
training protocols.

    .venv/bin/python bench/model_zoo.py --dataset var/bench/datasets/<version>

Uses a frozen random_per_user dataset (run bench/pipeline.py first). Our recommenders run with
their defaults through the platform's own path (`train_and_validate`, then `refit`); the
references are a plain numpy closed-form EASE and `implicit` ALS and item-kNN (pip install
implicit). Everything is scored by the same `score_run`: full ranking, train and validation items
masked, K = 10. Protocols:

* ``train``: fit on train (validation only for early stopping), as RecBole reports;
* ``train+valid``: the platform's default for the model it deploys: the configuration refit on
  train and validation together (for the epoch count that was best on validation). The
  references are refit on the same rows.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recs_platform.artifacts import TRAIN, TRAIN_AND_VALID, DatasetVersion, training_rows
from recs_platform.evaluation.evaluate import evaluate, score_run
from recs_platform.evaluation.significance import paired_bootstrap
from recs_platform.models import RECOMMENDERS
from recs_platform.models.base import load_recommender
from recs_platform.sweeps import SweepConfig, refit, train_and_validate

K = 10
EASE_L2 = 500.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="frozen dataset folder")
    parser.add_argument("--skip", nargs="*", default=[], help="recommenders to leave out")
    return parser.parse_args()


def ours(
    dataset: DatasetVersion, tables: dict[str, pd.DataFrame], skip: list[str], artifacts: Path
) -> tuple[list[dict], dict[str, pd.DataFrame]]:
    """Metric rows for both protocols, and per-user test metrics keyed by ``name/protocol``."""
    test, valid = tables["test"], tables["valid"]
    rows, per_user = [], {}
    for name in sorted(set(RECOMMENDERS) - set(skip)):
        chosen = train_and_validate(SweepConfig(name, "defaults", {}), dataset, artifacts)
        for artifact in (chosen.artifact, refit(chosen, dataset, artifacts)):
            result = evaluate(load_recommender(Path(artifact.path)), test, k=K, exclude=valid)
            per_user[f"{name}/{artifact.trained_on}"] = result.per_user
            rows.append(_row(name, "recs-platform", artifact.trained_on, artifact.fit_seconds, result.per_user))
            print(rows[-1], flush=True)
    return rows, per_user


def _row(name: str, source: str, trained_on: str, fit_seconds: float, per_user: pd.DataFrame) -> dict:
    metrics = {c: float(per_user[c].mean()) for c in per_user.columns if "@" in c}
    return {"recommender": name, "source": source, "trained_on": trained_on, "fit_s": fit_seconds, **metrics}


def _matrix(tables: dict[str, pd.DataFrame], trained_on: str) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    rows_in = training_rows(tables, trained_on)
    users = np.sort(tables["train"].user_id.unique())
    items = np.sort(tables["items"].item_id.unique())
    rows = np.searchsorted(users, rows_in.user_id)
    cols = np.searchsorted(items, rows_in.item_id)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(users), len(items))), users, items


def _per_user_from_scores(scores: np.ndarray, users: np.ndarray, items: np.ndarray, tables: dict) -> pd.DataFrame:
    """Per-user test metrics of the top-K after masking train and validation items."""
    masked = training_rows(tables, TRAIN_AND_VALID)
    scores = scores.copy()
    scores[np.searchsorted(users, masked.user_id), np.searchsorted(items, masked.item_id)] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    run = pd.DataFrame(
        {
            "user_id": np.repeat(users, K),
            "item_id": items[top.ravel()],
            "rank": np.tile(np.arange(1, K + 1), len(users)),
        }
    )
    return score_run(run, tables["test"], K)


def ease_reference(tables: dict, trained_on: str) -> tuple[dict, pd.DataFrame]:
    started = time.perf_counter()
    matrix, users, items = _matrix(tables, trained_on)
    gram = (matrix.T @ matrix).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += EASE_L2
    precision = np.linalg.inv(gram)
    weights = -precision / np.diag(precision)
    np.fill_diagonal(weights, 0.0)
    scores = np.asarray(matrix @ weights)
    fit = time.perf_counter() - started
    per_user = _per_user_from_scores(scores, users, items, tables)
    return _row(f"EASE closed form (λ={EASE_L2:g}, numpy)", "reference", trained_on, fit, per_user), per_user


def implicit_reference(tables: dict, trained_on: str, name: str, model) -> dict:
    matrix, users, items = _matrix(tables, trained_on)
    started = time.perf_counter()
    model.fit(matrix, show_progress=False)
    fit = time.perf_counter() - started
    ids, _ = model.recommend(np.arange(len(users)), matrix, N=len(items), filter_already_liked_items=False)
    scores = np.full((len(users), len(items)), -np.inf)
    np.put_along_axis(scores, ids, -np.arange(ids.shape[1], dtype=float)[None, :].repeat(len(users), 0), axis=1)
    return _row(name, "implicit 0.7", trained_on, fit, _per_user_from_scores(scores, users, items, tables))


def references(tables: dict, trained_on: str) -> tuple[list[dict], pd.DataFrame]:
    from implicit.als import AlternatingLeastSquares
    from implicit.nearest_neighbours import CosineRecommender

    ease_row, ease_per_user = ease_reference(tables, trained_on)
    als = AlternatingLeastSquares(factors=64, iterations=15, regularization=0.01, random_state=0)
    rows = [
        ease_row,
        implicit_reference(tables, trained_on, "implicit ALS (64 factors, 15 it, λ=0.01)", als),
        implicit_reference(tables, trained_on, "implicit item-kNN (cosine, K=100)", CosineRecommender(K=100)),
    ]
    return rows, ease_per_user


def versus_reference(per_user: dict[str, pd.DataFrame], reference: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Paired bootstrap of each of our models' NDCG@10 minus the EASE reference's, per protocol."""
    rows = []
    for key, frame in per_user.items():
        name, trained_on = key.split("/")
        ref = reference[trained_on].set_index("user_id")["ndcg@10"]
        test = paired_bootstrap(frame.set_index("user_id")["ndcg@10"], ref)
        rows.append({"recommender": name, "trained_on": trained_on, **test})
    return pd.DataFrame(rows).sort_values(["trained_on", "mean_diff"], ascending=[True, False])


def main() -> None:
    args = parse_args()
    dataset = DatasetVersion(args.dataset.name, str(args.dataset))
    tables = dataset.load()
    with tempfile.TemporaryDirectory() as artifacts:
        rows, per_user = ours(dataset, tables, args.skip, Path(artifacts))
    reference = {}
    for trained_on in (TRAIN, TRAIN_AND_VALID):
        reference_rows, reference[trained_on] = references(tables, trained_on)
        rows += reference_rows
    table = pd.DataFrame(rows).sort_values(["trained_on", "ndcg@10"], ascending=[True, False])
    print(f"\ndataset {args.dataset.name}\n")
    print(table.to_markdown(index=False, floatfmt=".4f"))
    print("\nNDCG@10 minus the EASE reference's, paired bootstrap over test users (2,000 resamples)\n")
    print(versus_reference(per_user, reference).to_markdown(index=False, floatfmt=".4f"))


if __name__ == "__main__":
    main()
