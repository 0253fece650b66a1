"""The linear algebra of the closed-form item-item regressions (EASE, DLAE, EDLAE), shared across a sweep.

Each needs ``P = (XᵀX + Λ)⁻¹`` for a binary users x items matrix ``X`` and a diagonal penalty
``Λ = c·diag(XᵀX) + λI``: ``c = p / (1 - p)`` for input dropout ``p`` (DLAE, EDLAE), ``c = 0`` for EASE.

- With fewer users than items (the shape of a 100k-event log over a 10k-item catalogue), ``XᵀX`` has
  rank at most ``U`` and the work is users x users. For ``c = 0`` one eigendecomposition of ``XXᵀ``
  gives the non-zero eigenpairs of ``XᵀX`` (``V = XᵀQ diag(μ)^-½``), and for every λ
  ``P = I/λ + V diag(1/(μ+λ) - 1/λ) Vᵀ``. For ``c > 0`` the penalty differs per item, so λ is not
  a scalar shift and there is no shared decomposition: Woodbury's identity solves each
  configuration in U x U, ``P = Λ⁻¹ - Λ⁻¹Xᵀ(I + XΛ⁻¹Xᵀ)⁻¹XΛ⁻¹``.
- With at least as many users as items, the fits share the Gram matrix and invert per configuration.
  One eigendecomposition of ``XᵀX + c·diag(XᵀX)`` would serve every λ, but on this 2-core machine it
  costs about nine n x n inverses (bench/closed_form_sweeps.py: the default 4-λ EASE grid took 2.5x
  longer through it), so it would pay only past ~13 λ values per dropout, more than any default grid.

With users fewer than a quarter of the items, ``P = Λ⁻¹ - ZᵀZ`` for a thin ``Z`` (users x items) and the
weights are kept in that form (``FactoredWeights``): the dense n x n matrix is never built, saved
or loaded. At 10k items a dense float32 ``W`` is 400 MB per configuration, and writing those at the
disk's 115 MB/s was most of a sweep (docs/benchmarks.md, "Huge-page stalls and 400 MB weights").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from recs_platform.models.heuristics import item_counts

# Weights are kept factored when the factor has at most this share of the dense matrix's rows.
FACTORED_MAX_RANK_SHARE = 0.25
# Peak bytes per user x item of a factored fit: the scaled and projected float64 arrays, the float32 factor.
FACTORED_BYTES_PER_CELL = 20


def is_factored(n_items: int, n_users: int) -> bool:
    """Whether a closed-form fit over this shape keeps its weights as a thin factor."""
    return n_users <= FACTORED_MAX_RANK_SHARE * n_items


def dense_bytes(n_items: int, n_users: int) -> int:
    """Peak bytes of one closed-form fit: three thin U x n arrays when the weights are factored;
    otherwise the n x n float64 precision, its float32 weights, and either the shared Gram matrix
    with a working copy (users >= items) or two thin n x U factors (fewer users than items)."""
    if is_factored(n_items, n_users):
        return FACTORED_BYTES_PER_CELL * n_items * n_users
    if n_users < n_items:
        return 12 * n_items**2 + 16 * n_items * n_users
    return 28 * n_items**2


@dataclass(frozen=True)
class LowRankPrecision:
    """``P = diag(diagonal) - ZᵀZ`` with ``Z`` of k x n, k at most the users: the precision when
    users are fewer than items, where it has this form for every (c, λ)."""

    diagonal: np.ndarray  # Λ⁻¹
    factor: np.ndarray  # Z, float64

    def dense(self) -> np.ndarray:
        precision = -(self.factor.T @ self.factor)  # numpy's syrk path: A.T @ A
        precision[np.diag_indices_from(precision)] += self.diagonal
        return precision

    def factor_norms(self) -> np.ndarray:
        """diag(ZᵀZ), without ZᵀZ."""
        return np.einsum("ij,ij->j", self.factor, self.factor)


@dataclass(frozen=True)
class FactoredWeights:
    """``W = ZᵀZ diag(column_scale) - diag(self_weight)``: an item x item matrix of rank at most the
    users', kept as its factor. A row of items scores as ``((x Zᵀ) Z) * column_scale - x * self_weight``,
    which is what ``x @ W`` would give."""

    factor: np.ndarray  # Z, float32, k x n
    column_scale: np.ndarray
    self_weight: np.ndarray

    @classmethod
    def in_float32(cls, factor: np.ndarray, column_scale: np.ndarray, self_weight: np.ndarray) -> FactoredWeights:
        """Stored in float32, as dense weights are; the scales are computed in float64 first (P_jj
        is a difference of close numbers)."""
        return cls(*(array.astype(np.float32) for array in (factor, column_scale, self_weight)))

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> FactoredWeights:
        return cls(state["factor"], state["column_scale"], state["self_weight"])

    def state(self) -> dict[str, np.ndarray]:
        return {"factor": self.factor, "column_scale": self.column_scale, "self_weight": self.self_weight}

    def score_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        """``x @ W`` for each binary row of ``rows``."""
        scores = np.asarray(rows @ self.factor.T) @ self.factor
        scores *= self.column_scale
        held = rows.tocoo()
        scores[held.row, held.col] -= held.data * self.self_weight[held.col]
        return scores

    def score_items(self, items: np.ndarray) -> np.ndarray:
        """``x @ W`` for one row given by its item indices, shape (1, n)."""
        scores = (self.factor[:, items].sum(axis=1) @ self.factor) * self.column_scale
        scores[items] -= self.self_weight[items]
        return scores[None, :]

    def dense(self) -> np.ndarray:
        weights = (self.factor.T @ self.factor) * self.column_scale
        weights[np.diag_indices_from(weights)] -= self.self_weight
        return weights


class RidgeSolver:
    """``(XᵀX + c·diag(XᵀX) + λI)⁻¹`` for one training matrix and any (c, λ).

    With ``share=True`` (a sweep) what configurations can reuse is kept: the Gram matrix, and with
    fewer users than items the thin eigendecomposition that serves every EASE λ. With ``share=False``
    each call solves on its own.
    """

    def __init__(self, matrix: sp.csr_matrix, share: bool) -> None:
        self.matrix = matrix.astype(np.float64).tocsr()
        self.support = item_counts(matrix).astype(np.float64)  # diag(XᵀX) of the binary matrix
        self.share = share
        self.dual = matrix.shape[0] < matrix.shape[1]
        self._gram: np.ndarray | None = None
        self._eigen: tuple[np.ndarray, np.ndarray] | None = None  # thin (μ, V) of XᵀX

    @property
    def factored(self) -> bool:
        """Whether fits keep their weights as ``FactoredWeights`` (``low_rank``) rather than dense."""
        return is_factored(self.matrix.shape[1], self.matrix.shape[0])

    def precision(self, dropout_weight: float, l2: float) -> np.ndarray:
        """P = (XᵀX + c·diag(XᵀX) + λI)⁻¹ as a fresh n x n float64 array (callers may overwrite it)."""
        if self.dual:
            return self.low_rank(dropout_weight, l2).dense()
        system = self.gram().copy() if self.share else self._new_gram()
        system[np.diag_indices_from(system)] += dropout_weight * self.support + l2
        return np.linalg.inv(system)

    def low_rank(self, dropout_weight: float, l2: float) -> LowRankPrecision:
        """P as ``Λ⁻¹ - ZᵀZ`` (fewer users than items only)."""
        penalty = dropout_weight * self.support + l2
        if dropout_weight > 0 or not self.share:
            return self._woodbury(penalty)
        values, vectors = self._thin_eigen()
        shrink = np.sqrt(1.0 / l2 - 1.0 / (values + l2))  # XᵀX = V diag(μ) Vᵀ, the rest of the space at 0
        return LowRankPrecision(np.full(len(penalty), 1.0 / l2), (vectors * shrink).T)

    def gram(self) -> np.ndarray:
        """XᵀX, dense float64, computed once."""
        if self._gram is None:
            self._gram = self._new_gram()
        return self._gram

    def _new_gram(self) -> np.ndarray:
        return (self.matrix.T @ self.matrix).toarray()

    def _thin_eigen(self) -> tuple[np.ndarray, np.ndarray]:
        """Eigenpairs of XᵀX with non-zero eigenvalue, from the users x users XXᵀ; computed once."""
        if self._eigen is None:
            outer = (self.matrix @ self.matrix.T).toarray()
            values, user_vectors = scipy.linalg.eigh(outer, overwrite_a=True, check_finite=False)
            keep = values > values.max(initial=0.0) * 1e-12
            values, user_vectors = values[keep], user_vectors[:, keep]
            self._eigen = values, np.asarray(self.matrix.T @ user_vectors) / np.sqrt(values)
        return self._eigen

    def _woodbury(self, penalty: np.ndarray) -> LowRankPrecision:
        """(XᵀX + diag(penalty))⁻¹ through the users x users system I + X diag(penalty)⁻¹ Xᵀ."""
        inverse_root = 1.0 / np.sqrt(penalty)
        scaled = self.matrix @ sp.diags(inverse_root)  # Y = X Λ^-½
        system = (scaled @ scaled.T).toarray()
        system[np.diag_indices_from(system)] += 1.0
        factor = scipy.linalg.cholesky(system, lower=True, overwrite_a=True, check_finite=False)
        projected = scipy.linalg.solve_triangular(factor, scaled.toarray(), lower=True, check_finite=False)
        projected *= inverse_root  # Λ^-½ (I - Yᵀ(I + YYᵀ)⁻¹Y) Λ^-½ = Λ⁻¹ - ZᵀZ with Z = L⁻¹Y Λ^-½
        return LowRankPrecision(1.0 / penalty, projected)
