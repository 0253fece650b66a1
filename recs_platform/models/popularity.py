"""Global popularity: the baseline every learned model must beat."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recs_platform.models.base import Logger, Recommender, TrainingData, Validator, most_masked, order_prefix, register


@register
class PopularityRecommender(Recommender):
    """Ranks items by their number of training interactions, the same list for everyone."""

    name = "popularity"
    is_learned = False

    def _fit(self, data: TrainingData, validate: Validator | None, log: Logger) -> None:
        self.counts = np.asarray(data.matrix.sum(axis=0)).ravel().astype(np.float32)
        log(f"popularity: counted {int(self.counts.sum())} interactions over {len(self.counts)} items")

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(user_index), len(self.counts))).copy()

    def _ranking_scores(
        self, user_index: np.ndarray, k: int, masked_rows: sp.csr_matrix | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every list is a prefix of one order, so only its first ``k`` + (most masked) items are scored."""
        columns = order_prefix(self.counts, k + most_masked(masked_rows))
        return np.broadcast_to(self.counts[columns], (len(user_index), len(columns))).copy(), columns

    def most_popular(self, k: int, exclude_items: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The top-``k`` item ids and counts for anyone, e.g. users never seen in training."""
        self._require_fitted()
        counts = self.counts.astype(np.float64)
        if exclude_items is not None and len(exclude_items):
            known = self.item_map.contains(exclude_items)
            counts[self.item_map.index(exclude_items[known])] = -np.inf
        order = np.lexsort((self.item_map.ids, -counts))[:k]
        order = order[np.isfinite(counts[order])]
        return self.item_map.ids[order], counts[order]

    def _state(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.counts = state["counts"]
