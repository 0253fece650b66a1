"""What a recommender shows beyond accuracy: coverage, diversity, novelty and popularity bias.

Every function takes a ``run`` (``user_id, item_id, rank``), already cut to the list length
being judged. Per-user measures return a Series indexed by ``user_id`` so they can be sliced
and tested for significance like the accuracy metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recs_platform.models.base import as_ids, plain_id


@dataclass(frozen=True)
class SameFirstItemResult:
    """The most common first recommendation and the share of users who get it."""

    flagged: bool
    item_id: int | str | None
    share: float


def catalog_coverage(run: pd.DataFrame, catalog: pd.DataFrame) -> float:
    """Share of the catalog's items recommended to at least one user."""
    items = catalog.item_id.unique()
    return float(np.isin(items, run.item_id.unique()).mean()) if len(items) else 0.0


def _padded_lists(run: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Users, their lists as a users x max-length item matrix, and the mask of filled slots."""
    ordered = run.sort_values(["user_id", "rank"])
    users, row = np.unique(ordered.user_id.to_numpy(), return_inverse=True)
    position = ordered.groupby("user_id").cumcount().to_numpy()
    width = int(position.max()) + 1 if len(position) else 0
    listed = as_ids(ordered.item_id.to_numpy())
    items = np.zeros((len(users), width), dtype=listed.dtype)  # integer or string ids
    filled = np.zeros((len(users), width), dtype=bool)
    items[row, position] = listed
    filled[row, position] = True
    return users, items, filled


def _attribute_matrix(item_attribute: pd.Series, separator: str | None) -> tuple[pd.Index, np.ndarray]:
    """Item ids and their binary item x value matrix; ``separator`` splits multi-valued text, None
    takes each value whole (a categorical attribute)."""
    text = item_attribute.fillna("").astype(str)
    dummies = text.str.get_dummies(sep=separator) if separator else pd.get_dummies(text.where(text != ""))
    return dummies.index, dummies.to_numpy(dtype=np.float64)


def intra_list_diversity(run: pd.DataFrame, item_genres: pd.Series, separator: str | None = "|") -> pd.Series:
    """1 − mean pairwise Jaccard similarity of the attribute sets (e.g. genres) in each user's list.

    ``item_genres`` maps ``item_id`` to ``"Action|Comedy"``-style strings split on ``separator``
    (or to one category each when it is None). Two items with no values count as identical
    (J(∅, ∅) = 1); a list of fewer than two items gives NaN.
    """
    users, items, filled = _padded_lists(run)
    ids, genres = _attribute_matrix(item_genres, separator)
    rows = ids.get_indexer(items.ravel())
    onehot = np.where((rows >= 0)[:, None], genres[rows.clip(min=0)], 0.0).reshape(*items.shape, -1)
    inter = np.einsum("ukg,ujg->ukj", onehot, onehot)
    sizes = onehot.sum(axis=2)
    union = sizes[:, :, None] + sizes[:, None, :] - inter
    similarity = np.divide(inter, union, out=np.ones_like(inter), where=union > 0)
    width = items.shape[1]
    upper = np.triu(np.ones((width, width), dtype=bool), k=1)
    pairs = filled[:, :, None] & filled[:, None, :] & upper
    n_pairs = pairs.sum(axis=(1, 2))
    mean_similarity = np.where(pairs, similarity, 0.0).sum(axis=(1, 2)) / np.maximum(n_pairs, 1)
    return pd.Series(np.where(n_pairs > 0, 1.0 - mean_similarity, np.nan), index=users, name="ild")


def novelty(run: pd.DataFrame, item_popularity: pd.Series, n_users: int) -> pd.Series:
    """Mean self-information −log2(popularity / n_users) of each user's recommended items.

    ``item_popularity`` counts the training users of each item; items it lacks or with zero
    users count as one user, so unseen items get the largest finite novelty, log2(n_users).
    """
    popularity = item_popularity.reindex(run.item_id).fillna(0).clip(lower=1).to_numpy()
    information = -np.log2(popularity / n_users)
    return pd.Series(information, index=run.user_id.to_numpy()).groupby(level=0).mean().rename("novelty")


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 when equal, (n−1)/n when one holds everything."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    n, total = len(ordered), ordered.sum()
    if n == 0 or total == 0:
        return 0.0
    return float(2 * (np.arange(1, n + 1) @ ordered) / (n * total) - (n + 1) / n)


def popularity_bias(run: pd.DataFrame, item_popularity: pd.Series) -> dict[str, float]:
    """How much the recommendations lean on popular items.

    ``popularity_percentile``: mean percentile of recommended items' training popularity within
    ``item_popularity``'s items (1 = the most popular item; ties share the average rank).
    ``mean_popularity``: mean training popularity of recommended items.
    ``gini``: Gini of how often each item in ``item_popularity`` is recommended.
    """
    percentile = item_popularity.rank(pct=True).reindex(run.item_id).fillna(0.0)
    counts = run.item_id.value_counts().reindex(item_popularity.index, fill_value=0)
    return {
        "popularity_percentile": float(percentile.mean()),
        "mean_popularity": float(item_popularity.reindex(run.item_id).fillna(0).mean()),
        "gini": gini(counts.to_numpy()),
    }


def same_first_item(run: pd.DataFrame, share_threshold: float = 0.5) -> SameFirstItemResult:
    """Flag a model that puts the same item first for at least ``share_threshold`` of its users.

    A degenerate model (collapsed embeddings, a popularity leak) does this while its accuracy
    can still look fine, so it is checked on its own.
    """
    first = run.loc[run["rank"] == 1, "item_id"]
    if first.empty:
        return SameFirstItemResult(False, None, 0.0)
    counts = first.value_counts()
    share = float(counts.iloc[0] / len(first))
    top = counts.index[0]
    return SameFirstItemResult(share >= share_threshold, plain_id(top), share)
