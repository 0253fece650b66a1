"""Is a model's per-user metric really different from a baseline's? Paired tests on shared users."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

_CHUNK = 256  # resamples per batch, so memory stays n_users x 256 however many resamples


def paired_differences(candidate: pd.Series, baseline: pd.Series) -> np.ndarray:
    """candidate − baseline for users present (and not NaN) in both Series."""
    both = pd.concat([candidate.rename("c"), baseline.rename("b")], axis=1, join="inner").dropna()
    return (both.c - both.b).to_numpy(dtype=np.float64)


def _bootstrap_means(diffs: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    means = []
    for start in range(0, n_resamples, _CHUNK):
        size = min(_CHUNK, n_resamples - start)
        means.append(diffs[rng.integers(0, len(diffs), size=(size, len(diffs)))].mean(axis=1))
    return np.concatenate(means)


def paired_bootstrap(
    candidate: pd.Series, baseline: pd.Series, n_resamples: int = 2000, seed: int = 0, alpha: float = 0.05
) -> dict[str, float]:
    """Bootstrap over users of the mean paired difference, with a percentile CI.

    The two-sided p-value is the share of resampled means at least as far from the observed
    mean as the observed mean is from zero (the bootstrap distribution shifted to the null),
    with the +1 correction so it is never exactly 0.
    """
    diffs = paired_differences(candidate, baseline)
    if len(diffs) == 0:
        return {"mean_diff": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "n_users": 0}
    observed = float(diffs.mean())
    means = _bootstrap_means(diffs, n_resamples, np.random.default_rng(seed))
    extreme = np.count_nonzero(np.abs(means - observed) >= abs(observed))
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return {
        "mean_diff": observed,
        "ci_low": float(low),
        "ci_high": float(high),
        "p_value": (extreme + 1) / (n_resamples + 1),
        "n_users": len(diffs),
    }


def paired_t_test(candidate: pd.Series, baseline: pd.Series) -> dict[str, float]:
    """Student's paired t-test (scipy ``ttest_rel``) on the users both Series share."""
    diffs = paired_differences(candidate, baseline)
    if len(diffs) < 2:
        return {"mean_diff": float(diffs.mean()) if len(diffs) else np.nan, "t_stat": np.nan, "p_value": np.nan}
    if np.allclose(diffs, diffs[0], rtol=0, atol=1e-12):
        # No spread (up to rounding), so t is undefined: identical scores are no evidence,
        # a constant shift is total.
        shift = float(diffs.mean())
        return {"mean_diff": shift, "t_stat": np.nan, "p_value": 1.0 if abs(shift) <= 1e-12 else 0.0}
    result = stats.ttest_rel(diffs, np.zeros_like(diffs))
    return {"mean_diff": float(diffs.mean()), "t_stat": float(result.statistic), "p_value": float(result.pvalue)}
