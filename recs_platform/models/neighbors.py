"""Item-neighbourhood models: item-kNN (cosine, scikit-learn), EASE (Steck 2019) and DLAE (Steck 2020).

All score a user as ``x_u @ W`` with ``x_u`` the binary row of the user's items and ``W`` an item x
item weight matrix; they differ in how ``W`` is learned. For a training user ``x_u`` is the base
class's ``seen`` row (saved anyway, so only ``W`` is model state); for a history the model never
saw, such as the user's current one at serving time, it is that history's row: the same formula,
so any history is scored without retraining.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from sklearn.metrics.pairwise import cosine_similarity

from recs_platform.models.base import Logger, Recommender, RecommenderParams, TrainingData, Validator, register
from recs_platform.models.heuristics import csr_restore, csr_state, item_counts

# A dense float64 item x item Gram matrix for 30k items is ~7 GB, and inverting needs more.
MAX_EASE_ITEMS = 30_000


def keep_top_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """The ``k`` largest entries of each row (ties by smaller column), the rest dropped."""
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    order = np.lexsort((matrix.indices, -matrix.data, rows))  # rows stay in CSR order
    keep = order[np.arange(len(order)) - matrix.indptr[rows] < k]
    return sp.csr_matrix((matrix.data[keep], (rows[keep], matrix.indices[keep])), shape=matrix.shape)


class ItemToItemRecommender(Recommender):
    """Scores a binary row of items, ``x @ W``, whether a training user's or any other history."""

    scores_any_history = True

    @property
    def item_weights(self) -> np.ndarray | sp.csr_matrix:
        """The item x item matrix ``W``."""
        raise NotImplementedError

    def _score_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        scores = rows @ self.item_weights
        return scores.toarray() if sp.issparse(scores) else np.asarray(scores)

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        if len(user_index) == 1 and isinstance(self.item_weights, np.ndarray):
            return self._score_one(self.seen_items(user_index[0]))
        return self._score_rows(self.seen[user_index])

    def _score_histories(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        if len(histories) == 1 and isinstance(self.item_weights, np.ndarray):
            return self._score_one(np.unique(histories[0]))
        return self._score_rows(self.history_matrix(histories))

    def _score_one(self, items: np.ndarray) -> np.ndarray:
        """``x @ W`` for one binary row given by its sorted item indices and a dense ``W``, shape (1, items).

        Summing W's rows adds the same terms in the same order as the sparse product (the same
        floats, bit for bit) without building a sparse row, which cost a serving request more
        than the product itself.
        """
        return self.item_weights[items].sum(axis=0, keepdims=True)


@register
class ItemKNNRecommender(ItemToItemRecommender):
    """Item-item cosine similarity on the binary matrix, pruned to each item's top neighbours.

    With ``shrinkage`` s the similarity is c_ij / (sqrt(n_i n_j) + s): pairs supported by few
    co-occurrences are damped, which matters for rare items whose raw cosine is noisy.
    """

    class Params(RecommenderParams):
        # Defaults chosen by validation NDCG@10 on MovieLens-100K; flat (0.19-0.21) over 10..2000 neighbours.
        neighbors: int = Field(10, ge=1, description="Similarities kept per item (its nearest neighbours).")
        shrinkage: float = Field(10.0, ge=0, description="s in c_ij / (sqrt(n_i n_j) + s); 0 is plain cosine.")

    name = "item_knn"

    def _fit(self, data: TrainingData, validate: Validator | None, log: Logger) -> None:
        similarity = cosine_similarity(data.matrix.T.tocsr(), dense_output=False).tocsr().astype(np.float32)
        similarity.setdiag(0.0)
        similarity.eliminate_zeros()
        if self.params.shrinkage > 0:
            self._shrink(similarity, item_counts(data.matrix))
        self.similarity = keep_top_per_row(similarity, self.params.neighbors)
        log(f"item_knn: {self.similarity.nnz} similarities kept of {similarity.nnz}")

    def _shrink(self, similarity: sp.csr_matrix, counts: np.ndarray) -> None:
        """cos * norm / (norm + s) == c_ij / (norm + s) for binary data, with norm = sqrt(n_i n_j)."""
        rows = np.repeat(np.arange(similarity.shape[0]), np.diff(similarity.indptr))
        norm = np.sqrt(counts[rows] * counts[similarity.indices])
        similarity.data *= (norm / (norm + self.params.shrinkage)).astype(np.float32)

    @property
    def item_weights(self) -> sp.csr_matrix:
        return self.similarity

    def _state(self) -> dict[str, np.ndarray]:
        return csr_state("similarity", self.similarity)

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        n_items = len(self.item_map)
        self.similarity = csr_restore("similarity", state, (n_items, n_items))


@register
class EASERecommender(ItemToItemRecommender):
    """Embarrassingly Shallow Autoencoder (Steck, 2019): a closed-form item-item regression.

    B = I - P / diag(P) with P = (XᵀX + l2 I)⁻¹, so diag(B) = 0 and no item predicts itself.
    The dense inverse limits it to ``MAX_EASE_ITEMS`` items.
    """

    class Params(RecommenderParams):
        # Default chosen by validation NDCG@10 on MovieLens-100K over {100, 200, 500, 1000}.
        l2: float = Field(200.0, gt=0, description="Ridge penalty added to the diagonal of XᵀX.")

    name = "ease"

    def _fit(self, data: TrainingData, validate: Validator | None, log: Logger) -> None:
        n_items = data.matrix.shape[1]
        if n_items > MAX_EASE_ITEMS:
            raise ValueError(
                f"{self.name}: {n_items} items need a dense {n_items}x{n_items} inverse "
                f"(~{n_items**2 * 8 / 1e9:.0f} GB per copy); the limit is {MAX_EASE_ITEMS} items -- "
                "prune the catalog or use item_knn"
            )
        gram = (data.matrix.T @ data.matrix).toarray().astype(np.float64)
        penalty = self._penalty(np.diag(gram).copy())
        gram[np.diag_indices(n_items)] += penalty
        self.weights = self._weights(np.linalg.inv(gram), penalty).astype(np.float32)
        log(f"{self.name}: {n_items} x {n_items} weights, params {self.params}")

    def _penalty(self, item_counts: np.ndarray) -> np.ndarray:
        """The diagonal added to XᵀX: ``l2`` for every item."""
        return np.full(len(item_counts), self.params.l2)

    def _weights(self, precision: np.ndarray, penalty: np.ndarray) -> np.ndarray:
        """B = I - P / diag(P): the minimiser under the zero-diagonal constraint."""
        weights = precision / -np.diag(precision)  # column j divided by -P_jj
        np.fill_diagonal(weights, 0.0)
        return weights

    @property
    def item_weights(self) -> np.ndarray:
        return self.weights

    def _state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.weights = state["weights"]


@register
class DLAERecommender(EASERecommender):
    """Denoising linear autoencoder (Steck, NeurIPS 2020, "Autoencoders that don't overfit
    towards the identity"): EASE whose penalty is what dropout of the input implies.

    Dropping each input item with probability p is, in expectation, the penalty
    Λ = p / (1 - p) · diag(XᵀX) + l2: popular items are regularised more. Without the zero-
    diagonal constraint (DLAE) B = I - P Λ; with it (EDLAE) B = I - P / diag(P), as in EASE.
    ``dropout`` 0 with ``zero_diagonal`` is exactly EASE.
    """

    class Params(EASERecommender.Params):
        # Defaults chosen by validation NDCG@10 on MovieLens-100K over dropout {0.25, 0.33, 0.5, 0.6, 0.7}
        # x l2 {50 .. 500} x both diagonals (bench/model_zoo.py records the test figures).
        dropout: float = Field(0.5, ge=0, lt=1, description="Input dropout probability p; penalty p/(1-p)·n_i.")
        zero_diagonal: bool = Field(False, description="Constrain diag(B) = 0 (EDLAE) instead of B = I - PΛ (DLAE).")

    name = "dlae"

    def _penalty(self, item_counts: np.ndarray) -> np.ndarray:
        dropout = self.params.dropout
        return dropout / (1.0 - dropout) * item_counts + self.params.l2

    def _weights(self, precision: np.ndarray, penalty: np.ndarray) -> np.ndarray:
        if self.params.zero_diagonal:
            return super()._weights(precision, penalty)
        return np.eye(len(penalty)) - precision * penalty[None, :]  # I - P Λ
