"""Top-k ranking metrics, per user, in RecBole's definitions.

Every function takes ``hits``, a boolean matrix (users x k) saying whether the item at each rank
is relevant, and ``n_relevant``, each user's number of relevant items, and returns one value per
user. Averaging over users is the caller's job, so the same numbers feed slices and tests.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Metric = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """DCG of the list over the DCG of an ideal list of min(n_relevant, k) hits."""
    k = hits.shape[1]
    discounts = _discounts(k)
    dcg = hits @ discounts
    ideal = np.cumsum(discounts)[np.clip(n_relevant, 1, k) - 1]
    return np.where(n_relevant > 0, dcg / ideal, 0.0)


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Share of the user's relevant items found in the top k."""
    return hits.sum(axis=1) / np.maximum(n_relevant, 1)


def precision_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Share of the top k that is relevant."""
    return hits.sum(axis=1) / hits.shape[1]


def hit_rate_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """1 if any relevant item is in the top k."""
    return hits.any(axis=1).astype(np.float64)


def mrr_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Reciprocal rank of the first relevant item within the top k (0 if none)."""
    first = hits.argmax(axis=1)
    return np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0)


def map_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Sum of precision@i at each hit rank i, over min(n_relevant, k) (RecBole's MAP@k).

    ranx and trec_eval divide by n_relevant instead, so they give lower values for users
    with more relevant items than k; RecBole's cap makes a perfect top-k list score 1.
    """
    k = hits.shape[1]
    precision = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    return (precision * hits).sum(axis=1) / np.clip(n_relevant, 1, k)


METRICS: dict[str, Metric] = {
    "ndcg": ndcg_at_k,
    "recall": recall_at_k,
    "hit": hit_rate_at_k,
    "mrr": mrr_at_k,
    "precision": precision_at_k,
    "map": map_at_k,
}

# The metric that selection, early stopping, the gates and the reports use unless configured otherwise.
DEFAULT_METRIC = "ndcg@10"


def parse_metric(metric: str) -> tuple[str, int]:
    """``"recall@20"`` → ``("recall", 20)``; anything else names the accepted forms."""
    name, _, cutoff = metric.partition("@")
    if name not in METRICS or not cutoff.isdigit() or int(cutoff) < 1:
        raise ValueError(f"metric {metric!r} is not <name>@<k> with name one of {sorted(METRICS)} and k >= 1")
    return name, int(cutoff)
