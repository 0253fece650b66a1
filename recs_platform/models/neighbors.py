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
from scipy.sparse import _sparsetools  # the kernels behind scipy's sparse products

from recs_platform.models.base import (
    CannotFit,
    Logger,
    Recommender,
    RecommenderParams,
    TrainingData,
    Validator,
    fingerprint,
    register,
    sorted_unique,
)
from recs_platform.models.closed_form import (
    FACTORED_BYTES_PER_CELL,
    FactoredWeights,
    LowRankPrecision,
    RidgeSolver,
    dense_bytes,
    is_factored,
)
from recs_platform.models.heuristics import csr_restore, csr_state, drop_diagonal, entry_rows, item_counts


def keep_top_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """The ``k`` largest entries of each row (ties by smaller column), the rest dropped.

    One partition per row longer than ``k``, and columns compared only among the entries tied at
    the cut: sorting every entry, or every row's columns (a 10k-item similarity holds about 17M),
    took seconds where this takes a fraction of one.
    """
    keep = np.ones(matrix.nnz, dtype=bool)
    for row in np.flatnonzero(np.diff(matrix.indptr) > k):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        values = matrix.data[start:end]
        threshold = np.partition(values, len(values) - k)[len(values) - k]
        row_keep = values > threshold
        ties = np.flatnonzero(values == threshold)
        columns = matrix.indices[start:end][ties]
        row_keep[ties[np.argsort(columns, kind="stable")[: k - np.count_nonzero(row_keep)]]] = True
        keep[start:end] = row_keep
    indptr = np.concatenate([[0], np.cumsum(np.bincount(entry_rows(matrix)[keep], minlength=matrix.shape[0]))])
    kept = sp.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape)
    kept.sort_indices()  # canonical, and cheap once pruned
    return kept


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

    @property
    def scores_rows_alone(self) -> bool:
        """Whether one row is scored by ``_score_one`` rather than as a sparse product (dense ``W``)."""
        return isinstance(self.item_weights, np.ndarray)

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        if len(user_index) == 1 and self.scores_rows_alone:
            return self._score_one(self.seen_items(user_index[0]))
        return self._score_rows(self.seen[user_index])

    def _score_histories(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        if len(histories) == 1 and self.scores_rows_alone:
            return self._score_one(sorted_unique(histories[0]))
        return self._score_rows(self.history_matrix(histories))

    def _score_one(self, items: np.ndarray) -> np.ndarray:
        """``x @ W`` for one binary row given by its sorted item indices and a dense ``W``, shape (1, items).

        scipy's CSR x dense kernel, the one the sparse product runs (the same floats, bit for
        bit), called on the row's indices directly: building a sparse row cost a serving request
        more than the product, and gathering W's rows before summing them reads them twice.
        """
        weights = self.item_weights
        scores = np.zeros((1, weights.shape[1]), dtype=weights.dtype)
        row_bounds = np.array([0, len(items)], dtype=items.dtype)
        ones = np.ones(len(items), dtype=weights.dtype)
        _sparsetools.csr_matvecs(1, *weights.shape, row_bounds, items, ones, weights.ravel(), scores.ravel())
        return scores


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
    # The shrunk similarities depend on the training data and ``shrinkage`` only, not on ``neighbors``.
    shares_fit_work = True

    def _fit(self, data: TrainingData, validate: Validator | None, log: Logger) -> None:
        key = ("item_knn", fingerprint(data.matrix), self.params.shrinkage)
        similarity = data.shared(key, lambda: self._similarity(data.matrix))
        self.similarity = keep_top_per_row(similarity, self.params.neighbors)
        log(f"item_knn: {self.similarity.nnz} similarities kept of {similarity.nnz}")

    def _similarity(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        """Cosine between items, without the diagonal, shrunk."""
        # Imported here: scikit-learn takes a second and a half to import, and loading a DLAE or EASE
        # bundle (this module) never needs it.
        from sklearn.metrics.pairwise import cosine_similarity

        similarity = cosine_similarity(matrix.T.tocsr(), dense_output=False).tocsr().astype(np.float32)
        drop_diagonal(similarity)
        if self.params.shrinkage > 0:
            self._shrink(similarity, item_counts(matrix))
        return similarity

    def _shrink(self, similarity: sp.csr_matrix, counts: np.ndarray) -> None:
        """cos * norm / (norm + s) == c_ij / (norm + s) for binary data, with norm = sqrt(n_i n_j)."""
        norm = np.sqrt(counts[entry_rows(similarity)] * counts[similarity.indices])
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
    P is dense n x n: when that does not fit ``memory_gib``, the model keeps the items with the most
    users that do (the share pruned is in its metadata; the others are never recommended), or with
    ``prune_to_fit`` false raises ``CannotFit`` with the memory it would need. In a sweep the
    Gram matrix, or with fewer users than items one eigendecomposition for every l2, is shared by
    the configurations (``closed_form.RidgeSolver``).
    """

    class Params(RecommenderParams):
        # Default chosen by validation NDCG@10 on MovieLens-100K over {100, 200, 500, 1000}.
        l2: float = Field(200.0, gt=0, description="Ridge penalty added to the diagonal of XᵀX.")
        memory_gib: float = Field(6.0, gt=0, description="Memory the dense item x item fit may use.")
        prune_to_fit: bool = Field(
            True, description="Over the memory budget, keep the most-supported items that fit; false: do not fit."
        )

    name = "ease"
    shares_fit_work = True
    # Item indices W covers when the catalogue was pruned to fit; None for the whole catalogue.
    kept_items: np.ndarray | None = None
    # W as its thin factor with far fewer users than items (closed_form.is_factored), else None
    # and ``weights`` is the dense W.
    factored: FactoredWeights | None = None
    weights: np.ndarray | None = None

    def _fit(self, data: TrainingData, validate: Validator | None, log: Logger) -> None:
        matrix = self._fitting_matrix(data.matrix, log)
        solver = data.shared(("ridge", fingerprint(matrix)), lambda: RidgeSolver(matrix, share=data.cache is not None))
        penalty = self._dropout_weight() * solver.support + self.params.l2
        n_items = matrix.shape[1]
        if solver.factored:
            self.weights = None
            self.factored = self._factored_weights(solver.low_rank(self._dropout_weight(), self.params.l2), penalty)
            form = f"of rank {self.factored.factor.shape[0]}, kept factored"
        else:
            self.factored = None
            self.weights = self._weights(solver.precision(self._dropout_weight(), self.params.l2), penalty)
            form = "dense"
        log(f"{self.name}: {n_items} x {n_items} weights {form}, params {self.params}")

    def _fitting_matrix(self, matrix: sp.csr_matrix, log: Logger) -> sp.csr_matrix:
        """The training matrix, restricted to the most-supported items when the dense fit would not fit."""
        self.kept_items = None
        n_users, n_items = matrix.shape
        budget = self.params.memory_gib * 2**30
        needed = dense_bytes(n_items, n_users)
        if needed <= budget:
            return matrix
        reason = (
            f"dense {self.name} needs {needed / 1e9:.1f} GB for {n_items:,} items "
            f"(budget {self.params.memory_gib:g} GiB)"
        )
        if not self.params.prune_to_fit:
            raise CannotFit(reason)
        keep = max_items_within(budget, n_users)
        self.kept_items = np.sort(np.argsort(-item_counts(matrix), kind="stable")[:keep])
        pruned = 1.0 - keep / n_items
        self.metadata.update(pruned_item_share=round(pruned, 4), kept_items=keep, pruned_because=reason)
        log(f"{self.name}: {reason}; kept the {keep:,} most-supported items ({pruned:.1%} of the catalogue pruned)")
        return matrix[:, self.kept_items]

    def _dropout_weight(self) -> float:
        """c in the penalty c·diag(XᵀX) + l2: 0 for EASE."""
        return 0.0

    def _weights(self, precision: np.ndarray, penalty: np.ndarray) -> np.ndarray:
        """B = I - P / diag(P): the minimiser under the zero-diagonal constraint (P is overwritten)."""
        precision /= -np.diag(precision).copy()  # column j divided by -P_jj
        np.fill_diagonal(precision, 0.0)
        return precision.astype(np.float32)

    def _factored_weights(self, precision: LowRankPrecision, penalty: np.ndarray) -> FactoredWeights:
        """B = I - P / diag(P) for P = Λ⁻¹ - ZᵀZ: off the diagonal (ZᵀZ)_ij / P_jj, and 0 on it."""
        norms = precision.factor_norms()
        inverse_diagonal = 1.0 / (precision.diagonal - norms)
        return FactoredWeights.in_float32(precision.factor, inverse_diagonal, norms * inverse_diagonal)

    def _score_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        if self.kept_items is None:
            return self._score_kept(rows)
        scores = np.full(rows.shape, -np.inf)  # items outside the pruned catalogue are never recommended
        scores[:, self.kept_items] = self._score_kept(rows[:, self.kept_items])
        return scores

    def _ranking_scores(
        self, user_index: np.ndarray, k: int, masked_rows: sp.csr_matrix | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """A pruned fit never recommends the items it dropped: only the kept ones are scored and ranked."""
        if self.kept_items is None:
            return super()._ranking_scores(user_index, k, masked_rows)
        return self._score_kept(self.seen[user_index][:, self.kept_items]), self.kept_items

    def _score_kept(self, rows: sp.csr_matrix) -> np.ndarray:
        if self.factored is not None:
            return self.factored.score_rows(rows)
        return np.asarray(rows @ self.weights)

    @property
    def scores_rows_alone(self) -> bool:
        """Unless the catalogue was pruned: W then covers the kept items only, and a row goes through
        ``_score_rows``, which maps catalogue columns to kept ones."""
        return self.kept_items is None

    def _score_one(self, items: np.ndarray) -> np.ndarray:
        if self.factored is not None:
            return self.factored.score_items(items)
        return super()._score_one(items)

    @property
    def item_weights(self) -> np.ndarray:
        """The dense W over the kept items; built from the factor when factored (n x n: inspection only)."""
        return self.weights if self.factored is None else self.factored.dense()

    def _state(self) -> dict[str, np.ndarray]:
        kept = {} if self.kept_items is None else {"kept_items": self.kept_items}
        weights = {"weights": self.weights} if self.factored is None else self.factored.state()
        return {**weights, **kept}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.factored = FactoredWeights.from_state(state) if "factor" in state else None
        self.weights = state.get("weights")
        self.kept_items = state.get("kept_items")


def max_items_within(budget_bytes: float, n_users: int) -> int:
    """The most items whose closed-form fit needs at most ``budget_bytes`` (``dense_bytes``)."""
    linear = int(budget_bytes // (FACTORED_BYTES_PER_CELL * n_users))
    if is_factored(linear, n_users):
        return linear
    low, high = 1, 1
    while dense_bytes(high * 2, n_users) <= budget_bytes:
        high *= 2
    high *= 2
    while low < high - 1:  # dense_bytes grows with the items: bisect
        middle = (low + high) // 2
        low, high = (middle, high) if dense_bytes(middle, n_users) <= budget_bytes else (low, middle)
    return low


@register
class DLAERecommender(EASERecommender):
    """Denoising linear autoencoder (Steck, NeurIPS 2020, "Autoencoders that don't overfit
    towards the identity"): EASE whose penalty is what dropout of the input implies.

    Dropping each input item with probability p is, in expectation, the penalty
    Λ = p / (1 - p) · diag(XᵀX) + l2: popular items are regularised more. Without the zero-
    diagonal constraint (DLAE) B = I - P Λ; with it (EDLAE) B = I - P / diag(P), as in EASE.
    ``dropout`` 0 with ``zero_diagonal`` is exactly EASE. The dropout penalty differs per item,
    so l2 is not a scalar shift and no decomposition serves the grid; a sweep shares the Gram
    matrix, or with fewer users than items solves each configuration users x users (``closed_form``).
    """

    class Params(EASERecommender.Params):
        # Defaults chosen by validation NDCG@10 on MovieLens-100K over dropout {0.25, 0.33, 0.5, 0.6, 0.7}
        # x l2 {50 .. 500} x both diagonals (bench/model_zoo.py records the test figures).
        dropout: float = Field(0.5, ge=0, lt=1, description="Input dropout probability p; penalty p/(1-p)·n_i.")
        zero_diagonal: bool = Field(False, description="Constrain diag(B) = 0 (EDLAE) instead of B = I - PΛ (DLAE).")

    name = "dlae"

    def _dropout_weight(self) -> float:
        return self.params.dropout / (1.0 - self.params.dropout)

    def _weights(self, precision: np.ndarray, penalty: np.ndarray) -> np.ndarray:
        if self.params.zero_diagonal:
            return super()._weights(precision, penalty)
        precision *= -penalty[None, :]  # I - P Λ
        precision[np.diag_indices_from(precision)] += 1.0
        return precision.astype(np.float32)

    def _factored_weights(self, precision: LowRankPrecision, penalty: np.ndarray) -> FactoredWeights:
        if self.params.zero_diagonal:
            return super()._factored_weights(precision, penalty)
        return FactoredWeights.in_float32(precision.factor, penalty, np.zeros_like(penalty))  # ZᵀZΛ
