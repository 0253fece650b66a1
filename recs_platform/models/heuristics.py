"""Count-based heuristics: popularity per demographic segment, repeat consumption, co-occurrence.

None of them is trained; each is a handful of counts stored as plain arrays, so they are
cheap baselines (and cold-start fallbacks) for the learned models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field
from scipy.sparse import _sparsetools  # the kernel behind toarray(), which adds into its output

from recs_platform.models.base import (
    Logger,
    Recommender,
    RecommenderParams,
    TrainingData,
    Validator,
    fingerprint,
    most_masked,
    order_prefix,
    register,
)


def item_counts(matrix: sp.csr_matrix) -> np.ndarray:
    """Number of users per item (the matrix is binary, so repeats count once)."""
    return np.asarray(matrix.sum(axis=0)).ravel().astype(np.float32)


def entry_rows(matrix: sp.csr_matrix) -> np.ndarray:
    """The row of each stored entry of a CSR matrix, in storage order."""
    return np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))


def drop_diagonal(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """``matrix`` without its diagonal entries, in place. Not ``setdiag``: it restructures every row
    (millions of stored pairs for an item x item matrix over 10k items)."""
    matrix.data[entry_rows(matrix) == matrix.indices] = 0.0
    matrix.eliminate_zeros()
    return matrix


def event_time(interactions: pd.DataFrame) -> np.ndarray:
    """When each interaction happened: the timestamp if given, else its row position.

    Interaction logs are appended in time order, so without timestamps the row order is the
    best available proxy.
    """
    if "timestamp" not in interactions:
        return np.arange(len(interactions), dtype=np.int64)
    stamps = interactions["timestamp"]
    if pd.api.types.is_datetime64_any_dtype(stamps):
        return stamps.to_numpy("datetime64[ns]").astype(np.int64)
    return stamps.to_numpy(np.float64)


def user_item_history(interactions: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, item): ``count`` of interactions and the ``last`` time, sorted by key.

    Grouping sorts by (user_index, item_index), so the result is independent of row order.
    """
    events = pd.DataFrame(
        {"user_index": interactions.user_index, "item_index": interactions.item_index, "time": event_time(interactions)}
    )
    grouped = events.groupby(["user_index", "item_index"])["time"]
    return grouped.agg(count="size", last="max").reset_index()


def csr_state(prefix: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    return {f"{prefix}_data": matrix.data, f"{prefix}_indices": matrix.indices, f"{prefix}_indptr": matrix.indptr}


def csr_restore(prefix: str, state: dict[str, np.ndarray], shape: tuple[int, int]) -> sp.csr_matrix:
    arrays = (state[f"{prefix}_data"], state[f"{prefix}_indices"], state[f"{prefix}_indptr"])
    return sp.csr_matrix(arrays, shape=shape)


@register
class SegmentPopularityRecommender(Recommender):
    """Popularity within the user's demographic segment (e.g. age bucket x gender).

    Segment values come from the ``users`` feature table and are matched by their string form.
    Users without a (complete) segment get global popularity. Ties within a segment are broken
    by global popularity, then by item id.
    """

    class Params(RecommenderParams):
        segment_columns: list[str] = Field(
            ["age_bucket", "gender"], min_length=1, description="User feature columns whose values form a segment."
        )

    name = "segment_popularity"
    is_learned = False

    def _fit(self, data: TrainingData, validate: Validator | None, log: Logger) -> None:
        self.global_counts = item_counts(data.matrix)
        self.user_segment, self.segment_keys = self._segments(data.users)
        known = np.flatnonzero(self.user_segment >= 0)
        membership = sp.csr_matrix(
            (np.ones(len(known), dtype=np.float32), (self.user_segment[known], known)),
            shape=(len(self.segment_keys), data.matrix.shape[0]),
        )
        self.segment_counts = np.asarray((membership @ data.matrix).todense(), dtype=np.float32)
        log(f"segment_popularity: {len(self.segment_keys)} segments, {len(known)} of {len(self.user_segment)} users")

    def _segments(self, users: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
        """Segment index per training user (-1 = unknown) and the sorted segment keys."""
        columns = list(self.params.segment_columns)
        n_users = len(self.user_map)
        if users is None or not {"user_id", *columns} <= set(users.columns):
            return np.full(n_users, -1, dtype=np.int64), np.empty((0, len(columns)), dtype=str)
        frame = users.drop_duplicates("user_id")
        frame = frame[self.user_map.contains(frame.user_id) & frame[columns].notna().all(axis=1)]
        if frame.empty:
            return np.full(n_users, -1, dtype=np.int64), np.empty((0, len(columns)), dtype=str)
        values = frame[columns].astype(str).to_numpy(dtype=str)
        keys, inverse = np.unique(values, axis=0, return_inverse=True)
        segment = np.full(n_users, -1, dtype=np.int64)
        segment[self.user_map.index(frame.user_id)] = inverse.ravel()
        return segment, keys

    def _table(self) -> np.ndarray:
        """Segment counts plus a last row of global counts for unknown segments, tie-broken."""
        prior = self.global_counts / (self.global_counts.max(initial=0.0) + 1.0)
        return np.vstack([self.segment_counts, self.global_counts[None, :]]) + prior

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        return self._table()[self.user_segment[user_index]]  # -1 selects the global row

    def _ranking_scores(
        self, user_index: np.ndarray, k: int, masked_rows: sp.csr_matrix | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each segment's lists are prefixes of its one order: the batch's segments' first ``k`` +
        (most masked) items are the only ones scored."""
        table, segments = self._table(), self.user_segment[user_index]
        length = k + most_masked(masked_rows)
        columns = np.unique(np.concatenate([order_prefix(table[row], length) for row in np.unique(segments)]))
        return table[:, columns][segments], columns

    def recommend_for_segment(self, values: Mapping[str, Any], k: int = 10) -> pd.DataFrame:
        """Top-``k`` ``item_id, rank, score`` for a new user described only by demographics.

        A segment never seen in training (or missing values) falls back to global popularity.
        """
        self._require_fitted()
        key = [values.get(column) for column in self.params.segment_columns]
        row = -1
        if not any(pd.isna(value) for value in key):
            matches = np.flatnonzero((self.segment_keys == np.array([str(v) for v in key])).all(axis=1))
            row = int(matches[0]) if len(matches) else -1
        scores = self._table()[row]
        order = np.lexsort((self.item_map.ids, -scores))[:k]
        return pd.DataFrame(
            {"item_id": self.item_map.ids[order], "rank": np.arange(1, len(order) + 1), "score": scores[order]}
        )

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "global_counts": self.global_counts,
            "segment_counts": self.segment_counts,
            "user_segment": self.user_segment,
            "segment_keys": self.segment_keys,
        }

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.global_counts = state["global_counts"]
        self.segment_counts = state["segment_counts"]
        self.user_segment = state["user_segment"]
        self.segment_keys = state["segment_keys"]


@register
class RecentHistoryRecommender(Recommender):
    """Re-recommends the user's own training items, most recent (or most frequent) first.

    This is a repeat-consumption heuristic: it is meant for ``recommend(..., exclude_seen=False)``.
    Under the platform's default protocol (seen items masked) every history item is masked and
    the ranking degenerates to global popularity, which is also how non-history items are
    ordered: history items score >= 1, others get popularity scaled into [0, 1).
    """

    class Params(RecommenderParams):
        mode: Literal["recent", "frequent"] = Field(
            "recent", description="Order history items by last interaction, or by count with recency as tie-break."
        )

    name = "recent_history"
    is_learned = False
    repeat_consumption = True
    scores_any_history = True

    def _fit(self, data: TrainingData, validate: Validator | None, log: Logger) -> None:
        counts = item_counts(data.matrix)
        self.prior = counts / (counts.max(initial=0.0) + 1.0)
        history = user_item_history(data.interactions)
        self.history = sp.csr_matrix(
            (self._history_scores(history), (history.user_index, history.item_index)),
            shape=data.matrix.shape,
            dtype=np.float64,
        )
        log(f"recent_history: {self.history.nnz} user-item histories, mode {self.params.mode}")

    def _history_scores(self, history: pd.DataFrame) -> np.ndarray:
        """Integer scores >= 1: recency rank within the user, or count with recency as tie-break."""
        recency = history.groupby("user_index")["last"].rank(method="dense").to_numpy()
        if self.params.mode == "recent":
            return recency
        return history["count"].to_numpy() * (recency.max() + 1) + recency

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        """The prior, with the history rows added in place by scipy's CSR-to-dense kernel (it
        accumulates): ``toarray() + prior`` wrote three users x items arrays per batch, this one."""
        rows = self.history[user_index]
        scores = np.tile(self.prior.astype(np.float64), (len(user_index), 1))
        _sparsetools.csr_todense(*rows.shape, rows.indptr, rows.indices, rows.data, scores)
        return scores

    def _score_histories(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """A history's items score their recency rank (1 = oldest), the rest popularity in [0, 1).

        A history carries each item once, so both modes rank it by recency."""
        scores = np.tile(self.prior.astype(np.float64), (len(histories), 1))
        for row, history in enumerate(histories):
            scores[row, history] += np.arange(1, len(history) + 1)
        return scores

    def _state(self) -> dict[str, np.ndarray]:
        return {"prior": self.prior, **csr_state("history", self.history)}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.prior = state["prior"]
        self.history = csr_restore("history", state, (len(self.user_map), len(self.item_map)))


@register
class CooccurrenceRecommender(Recommender):
    """ "Bought together": items that co-occur (in users' histories) with the user's last items.

    The score of item j is the sum over the user's ``n_last`` most recent training items i of
    the co-occurrence count c_ij, or of c_ij / sqrt(n_i n_j) with ``normalize`` so that
    blockbusters do not co-occur with everything.
    """

    class Params(RecommenderParams):
        n_last: int = Field(5, ge=1, description="How many of the user's most recent items anchor the scores.")
        normalize: bool = Field(True, description="Divide counts by sqrt(n_i n_j) so blockbusters do not dominate.")

    name = "cooccurrence"
    is_learned = False
    scores_any_history = True
    # The counts depend on the training data and ``normalize`` only, not on ``n_last``.
    shares_fit_work = True

    def _fit(self, data: TrainingData, validate: Validator | None, log: Logger) -> None:
        key = ("cooccurrence", fingerprint(data.matrix), self.params.normalize)
        self.cooccurrence = data.shared(key, lambda: self._cooccurrence(data.matrix))
        self.last_items = self._last_items(data.interactions, data.matrix.shape[0])
        log(f"cooccurrence: {self.cooccurrence.nnz} item pairs")

    def _cooccurrence(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        """Items x items counts without the diagonal, scaled in place over the stored pairs: two
        diagonal products restructured millions of pairs (a 10k catalogue: 6.7M)."""
        counts = drop_diagonal((matrix.T.tocsr() @ matrix).astype(np.float32))
        if self.params.normalize:
            scale = 1.0 / np.sqrt(np.maximum(item_counts(matrix), 1.0))
            counts.data = (counts.data * scale[entry_rows(counts)] * scale[counts.indices]).astype(np.float32)
        return counts

    def _last_items(self, interactions: pd.DataFrame, n_users: int) -> np.ndarray:
        """Users x n_last item indices, most recent first, padded with -1."""
        history = user_item_history(interactions)
        # Ties in time are broken by item index so the choice does not depend on row order.
        history = history.sort_values(["user_index", "last", "item_index"], ascending=[True, False, True])
        position = history.groupby("user_index").cumcount().to_numpy()
        keep = position < self.params.n_last
        last = np.full((n_users, self.params.n_last), -1, dtype=np.int64)
        last[history.user_index.to_numpy()[keep], position[keep]] = history.item_index.to_numpy()[keep]
        return last

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        return self._score_anchors(self.last_items[user_index])

    def _score_histories(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        last = np.full((len(histories), self.params.n_last), -1, dtype=np.int64)
        for row, history in enumerate(histories):
            recent = history[::-1][: self.params.n_last]  # most recent first, as in training
            last[row, : len(recent)] = recent
        return self._score_anchors(last)

    def _score_anchors(self, last_items: np.ndarray) -> np.ndarray:
        """Summed co-occurrence rows of each user's anchor items (-1 pads)."""
        rows, slots = np.nonzero(last_items >= 0)
        shape = (len(last_items), self.cooccurrence.shape[0])
        anchors = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, last_items[rows, slots])), shape=shape)
        return (anchors @ self.cooccurrence).toarray()

    def _state(self) -> dict[str, np.ndarray]:
        return {"last_items": self.last_items, **csr_state("cooccurrence", self.cooccurrence)}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.last_items = state["last_items"]
        n_items = len(self.item_map)
        self.cooccurrence = csr_restore("cooccurrence", state, (n_items, n_items))
