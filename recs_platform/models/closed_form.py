"""The linear algebra of the closed-form item-item regressions (EASE, DLAE, EDLAE), shared across a sweep.

Each needs ``P = (XᵀX + Λ)⁻¹`` for a binary users x items matrix ``X`` and a diagonal penalty
``Λ = c·diag(XᵀX) + λI``: ``c = p / (1 - p)`` for input dropout ``p`` (DLAE, EDLAE), ``c = 0`` for EASE.

- For a fixed ``c``, λ is a scalar shift of ``A_c = XᵀX + c·diag(XᵀX)``, so one eigendecomposition
  ``A_c = V diag(w) Vᵀ`` gives ``P = V diag(1 / (w + λ)) Vᵀ`` for every λ (and both diagonal
  constraints). Two dropout values are not a scalar shift of one another (their penalties differ per
  item), so each distinct ``c`` needs its own decomposition; the Gram matrix is computed once.
- With fewer users than items, ``XᵀX`` has rank at most ``U`` and the n x n work becomes U x U work:
  for ``c = 0`` the eigenpairs of ``XᵀX`` come from those of ``XXᵀ`` (``V = XᵀQ diag(μ)^-½`` and
  ``P = I/λ + V diag(1/(μ+λ) - 1/λ) Vᵀ``), so one small eigendecomposition serves every λ; for
  ``c > 0`` nothing but ``X`` is shared, and Woodbury's identity solves each configuration in U x U:
  ``P = Λ⁻¹ - Λ⁻¹Xᵀ(I + XΛ⁻¹Xᵀ)⁻¹XΛ⁻¹``.

A single fit (no sweep) solves directly instead: on this 2-core machine one symmetric
eigendecomposition costs about four to seven dense inverses, so it pays only when reused.
"""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.linalg
import scipy.sparse as sp


def fingerprint(matrix: sp.csr_matrix) -> str:
    """A digest of a binary CSR matrix's shape and pattern: equal digests, equal matrices."""
    digest = hashlib.blake2b(str(matrix.shape).encode(), digest_size=16)
    digest.update(np.ascontiguousarray(matrix.indptr).tobytes())
    digest.update(np.ascontiguousarray(matrix.indices).tobytes())
    return digest.hexdigest()


def item_support(matrix: sp.csr_matrix) -> np.ndarray:
    """Users per item, ``diag(XᵀX)`` of a binary matrix, as float64."""
    return np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.float64)


def dense_bytes(n_items: int, n_users: int) -> int:
    """Peak bytes of one closed-form fit: the n x n float64 precision, its float32 weights, and either
    the Gram matrix with one eigenvector matrix and a working copy (users >= items), or two thin
    n x U factors (fewer users than items)."""
    if n_users < n_items:
        return 12 * n_items**2 + 16 * n_items * n_users
    return 36 * n_items**2


class RidgeSolver:
    """``(XᵀX + c·diag(XᵀX) + λI)⁻¹`` for one training matrix and any (c, λ).

    With ``share=True`` (a sweep) decompositions are kept and reused across λ; the most recent ``c``
    only, so configurations are best fitted grouped by dropout. With ``share=False`` each call
    solves directly.
    """

    def __init__(self, matrix: sp.csr_matrix, share: bool) -> None:
        self.matrix = matrix.astype(np.float64).tocsr()
        self.support = item_support(matrix)
        self.share = share
        self.dual = matrix.shape[0] < matrix.shape[1]
        self._gram: np.ndarray | None = None
        self._eigen: tuple[float, np.ndarray, np.ndarray] | None = None  # (c, w, V)

    def precision(self, dropout_weight: float, l2: float) -> np.ndarray:
        """P = (XᵀX + c·diag(XᵀX) + λI)⁻¹ as a fresh n x n float64 array (callers may overwrite it)."""
        if self.dual and dropout_weight > 0:
            return self._woodbury(dropout_weight * self.support + l2)
        if not self.share:
            return self._direct(dropout_weight, l2)
        values, vectors = self._decomposition(dropout_weight)
        if self.dual:  # thin: XᵀX = V diag(μ) Vᵀ with V orthonormal columns, the rest of the space at 0
            shrink = np.sqrt(1.0 / l2 - 1.0 / (values + l2))
            scaled = vectors * shrink
            precision = -(scaled @ scaled.T)
            precision[np.diag_indices_from(precision)] += 1.0 / l2
            return precision
        scaled = vectors * np.sqrt(1.0 / (values + l2))
        return scaled @ scaled.T  # numpy's syrk path: A @ A.T

    def gram(self) -> np.ndarray:
        """XᵀX, dense float64, computed once."""
        if self._gram is None:
            self._gram = (self.matrix.T @ self.matrix).toarray()
        return self._gram

    def _direct(self, dropout_weight: float, l2: float) -> np.ndarray:
        if self.dual:
            return self._woodbury(dropout_weight * self.support + l2)
        system = self.gram().copy()
        system[np.diag_indices_from(system)] += dropout_weight * self.support + l2
        return np.linalg.inv(system)

    def _decomposition(self, dropout_weight: float) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues and eigenvectors of ``A_c`` (thin ones of XᵀX when dual), cached for the last ``c``."""
        if self._eigen is None or self._eigen[0] != dropout_weight:
            self._eigen = None  # release the previous vectors before computing new ones
            values, vectors = self._thin_eigen() if self.dual else self._full_eigen(dropout_weight)
            self._eigen = (dropout_weight, values, vectors)
        return self._eigen[1], self._eigen[2]

    def _full_eigen(self, dropout_weight: float) -> tuple[np.ndarray, np.ndarray]:
        system = self.gram().copy()
        system[np.diag_indices_from(system)] += dropout_weight * self.support
        values, vectors = scipy.linalg.eigh(system, driver="evr", overwrite_a=True, check_finite=False)
        return np.clip(values, 0.0, None), vectors  # A_c is positive semidefinite; clip rounding

    def _thin_eigen(self) -> tuple[np.ndarray, np.ndarray]:
        """Eigenpairs of XᵀX with non-zero eigenvalue, from the users x users XXᵀ."""
        outer = (self.matrix @ self.matrix.T).toarray()
        values, user_vectors = scipy.linalg.eigh(outer, overwrite_a=True, check_finite=False)
        keep = values > values.max(initial=0.0) * 1e-12
        values, user_vectors = values[keep], user_vectors[:, keep]
        vectors = np.asarray(self.matrix.T @ user_vectors) / np.sqrt(values)
        return values, vectors

    def _woodbury(self, penalty: np.ndarray) -> np.ndarray:
        """(XᵀX + diag(penalty))⁻¹ through the users x users system I + X diag(penalty)⁻¹ Xᵀ."""
        inverse_root = 1.0 / np.sqrt(penalty)
        scaled = self.matrix @ sp.diags(inverse_root)  # Y = X Λ^-½
        system = (scaled @ scaled.T).toarray()
        system[np.diag_indices_from(system)] += 1.0
        factor = scipy.linalg.cholesky(system, lower=True, overwrite_a=True, check_finite=False)
        projected = scipy.linalg.solve_triangular(factor, scaled.toarray(), lower=True, check_finite=False)
        precision = -(projected.T @ projected)  # Λ^-½ (I - Yᵀ(I + YYᵀ)⁻¹Y) Λ^-½
        precision[np.diag_indices_from(precision)] += 1.0
        precision *= inverse_root[:, None]
        precision *= inverse_root[None, :]
        return precision
