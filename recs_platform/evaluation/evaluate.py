"""Evaluate any recommender the same way: full ranking, masked history, per-user metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recs_platform.evaluation.metrics import METRICS
from recs_platform.models.base import Recommender

DEFAULT_METRICS = ("ndcg", "recall", "hit", "mrr", "precision")
ALL_METRICS = (*DEFAULT_METRICS, "map")


@dataclass
class EvaluationResult:
    """Averages, per-user values, and the run files' content of one evaluation."""

    recommender: str
    k: int
    summary: dict[str, float]
    per_user: pd.DataFrame
    run: pd.DataFrame
    ground_truth: pd.DataFrame
    n_users: int
    n_skipped_users: int

    def write_run_files(self, directory: Path) -> dict[str, Path]:
        """Write the ranked lists and ground truth as Parquet so anyone can recompute metrics."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = {"run": directory / "run.parquet", "qrels": directory / "ground_truth.parquet"}
        self.run[["user_id", "item_id", "rank", "score"]].to_parquet(paths["run"], index=False)
        self.ground_truth[["user_id", "item_id"]].to_parquet(paths["qrels"], index=False)
        self.per_user.to_parquet(directory / "per_user.parquet", index=False)
        return paths


@dataclass(frozen=True)
class GroundTruth:
    """Held-out ``user_id, item_id`` pairs prepared once for scoring any number of runs against them
    (the configurations of a sweep, the models of a report)."""

    frame: pd.DataFrame  # distinct user_id, item_id pairs
    users: np.ndarray  # sorted distinct users
    n_relevant: np.ndarray  # relevant items per user, aligned with ``users``
    pairs: pd.MultiIndex  # (user_id, item_id) of ``frame``, for membership tests

    @classmethod
    def of(cls, ground_truth: pd.DataFrame | GroundTruth) -> GroundTruth:
        if isinstance(ground_truth, GroundTruth):
            return ground_truth
        frame = ground_truth[["user_id", "item_id"]].drop_duplicates()
        users, n_relevant = np.unique(frame.user_id.to_numpy(), return_counts=True)
        pairs = pd.MultiIndex.from_arrays([frame.user_id.to_numpy(), frame.item_id.to_numpy()])
        return cls(frame, users, n_relevant, pairs)

    def restricted_to(self, users: np.ndarray) -> GroundTruth:
        """The pairs of ``users`` only."""
        return GroundTruth.of(self.frame[self.frame.user_id.isin(users)])

    def sample_users(self, n_users: int, seed: int = 0) -> GroundTruth:
        """The pairs of ``n_users`` users drawn without replacement (seeded), or all when there are no more."""
        if len(self.users) <= n_users:
            return self
        return self.restricted_to(np.random.default_rng(seed).choice(self.users, n_users, replace=False))


def hit_matrix(run: pd.DataFrame, ground_truth: pd.DataFrame | GroundTruth, users: np.ndarray, k: int) -> np.ndarray:
    """Boolean users x k matrix: is the item at each rank relevant for that user?"""
    truth = GroundTruth.of(ground_truth)
    hits = np.zeros((len(users), k), dtype=bool)
    run_users, ranks = run.user_id.to_numpy(), run["rank"].to_numpy()
    relevant = pd.MultiIndex.from_arrays([run_users, run.item_id.to_numpy()]).isin(truth.pairs) & (ranks <= k)
    rows = np.searchsorted(users, run_users[relevant])
    hits[rows, ranks[relevant] - 1] = True
    return hits


def score_run(
    run: pd.DataFrame,
    ground_truth: pd.DataFrame | GroundTruth,
    k: int,
    metrics: Sequence[str] = DEFAULT_METRICS,
    ks: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Per-user metrics of a run against ground truth (users without ground truth are dropped).

    ``ks`` scores several cutoffs from one hit matrix (columns ``ndcg@5, ndcg@10, ...``);
    without it only ``k`` is scored.
    """
    ks = sorted(set(ks)) if ks else [k]
    truth = GroundTruth.of(ground_truth)
    users, n_relevant = truth.users, truth.n_relevant
    hits = hit_matrix(run, truth, users, max(ks))
    per_user = pd.DataFrame({"user_id": users, "n_relevant": n_relevant})
    for name in metrics:
        for cutoff in ks:
            per_user[f"{name}@{cutoff}"] = METRICS[name](hits[:, :cutoff], n_relevant)
    return per_user


def evaluate(
    recommender: Recommender,
    ground_truth: pd.DataFrame | GroundTruth,
    k: int = 10,
    exclude: pd.DataFrame | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    ks: Sequence[int] | None = None,
    depth: int | None = None,
    run: pd.DataFrame | None = None,
) -> EvaluationResult:
    """Rank the full catalog for every ground-truth user the model knows and score the top k.

    Training items are always masked; ``exclude`` masks more (the validation items at test
    time). Users unknown to the model are counted in ``n_skipped_users``. With ``ks`` the
    catalog is ranked once to ``max(ks)`` and every cutoff is scored; ``k`` is then ignored.
    ``depth`` ranks deeper than the cutoffs (the result's run keeps those ranks). ``run`` is a
    ranking this model made before with the same masks, at least as deep as the cutoffs: it is
    scored instead of ranking again. A ``GroundTruth`` prepared once is shared by every evaluation
    against it.
    """
    k = max(ks) if ks else k
    truth = GroundTruth.of(ground_truth)
    users = truth.users
    known = recommender.known_users(users)
    if not known.all():
        truth = truth.restricted_to(users[known])
    if run is None:
        run = recommender.recommend(users[known], k=max(k, depth or k), exclude=exclude)
    else:
        run = run[run["rank"] <= k]
    per_user = score_run(run, truth, k, metrics, ks)
    summary = {column: float(per_user[column].mean()) for column in per_user.columns[2:]}
    return EvaluationResult(
        recommender=recommender.name,
        k=k,
        summary=summary,
        per_user=per_user,
        run=run,
        ground_truth=truth.frame,
        n_users=int(known.sum()),
        n_skipped_users=int((~known).sum()),
    )
