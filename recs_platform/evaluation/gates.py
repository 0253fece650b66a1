"""Deployment gates: a candidate must clear a threshold, beat the baselines, not regress."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# Every gate a candidate passes before deployment, by the name its check and result carry.
GATES = {
    "threshold": "The candidate's test metric is at least the configured floor.",
    "beats_baselines": "The candidate beats every baseline on the same test set.",
    "no_regression": "The candidate is no worse than the champion's recipe refit on the same training rows.",
}


@dataclass(frozen=True)
class GateResult:
    """The outcome of one gate, with the numbers that decided it."""

    name: str
    passed: bool
    description: str
    observed: float
    required: float | None


def threshold_gate(candidate: dict[str, float], metric: str, threshold: float) -> GateResult:
    """The candidate's test metric is at least ``threshold``."""
    observed = candidate[metric]
    passed = observed >= threshold
    verdict = "meets" if passed else "is below"
    return GateResult(
        "threshold",
        passed,
        f"test {metric} {observed:.4f} {verdict} the threshold {threshold:.4f}",
        observed,
        threshold,
    )


def baseline_gate(candidate: dict[str, float], baselines: dict[str, dict[str, float]], metric: str) -> GateResult:
    """The candidate's test metric is strictly above every baseline's on the same test set."""
    if not baselines:
        raise ValueError("the baseline gate needs at least one evaluated baseline")
    best_name = max(baselines, key=lambda name: baselines[name][metric])
    best = baselines[best_name][metric]
    observed = candidate[metric]
    passed = observed > best
    verdict = "beats" if passed else "does not beat"
    return GateResult(
        "beats_baselines", passed, f"test {metric} {observed:.4f} {verdict} {best_name} ({best:.4f})", observed, best
    )


class ChampionLike(Protocol):
    tag: str
    recommender: str
    test: dict[str, float]


def champion_gate(
    candidate: dict[str, float], champion: ChampionLike | None, metric: str, tolerance: float
) -> GateResult:
    """The candidate is no worse than the champion's recipe trained on the same rows (see
    ``deployment.champion_metrics``) and scored on the same test set."""
    observed = candidate[metric]
    if champion is None:
        return GateResult("no_regression", True, "no champion is serving yet", observed, None)
    best = champion.test[metric]
    required = best - tolerance
    passed = observed >= required
    verdict = "is within" if passed else "regresses beyond"
    description = (
        f"test {metric} {observed:.4f} {verdict} tolerance {tolerance:.4f} of the champion "
        f"{champion.tag} ({champion.recommender} refit on the same training rows: {best:.4f})"
    )
    return GateResult("no_regression", passed, description, observed, required)


def shadow_gate(comparison: dict[str, float] | None, k: int, margin: float, min_requests: int) -> GateResult:
    """On shadow traffic, the challenger's NDCG@k against what users consumed is not worse than the
    champion's by more than ``margin``, on at least ``min_requests`` requests with closed windows."""
    if comparison is None:
        return GateResult("shadow", False, "the challenger has no shadow comparison yet", 0.0, float(min_requests))
    mature = int(comparison["mature_requests"])
    diff = float(comparison[f"ndcg@{k}_diff"])
    if mature < min_requests:
        return GateResult(
            "shadow",
            False,
            f"{mature} shadow requests with closed windows, {min_requests} needed",
            mature,
            min_requests,
        )
    passed = diff >= -margin
    verdict = "within" if passed else "beyond"
    description = (
        f"shadow ndcg@{k} challenger minus champion {diff:+.4f} on {mature} requests, {verdict} the margin {margin:.4f}"
    )
    return GateResult("shadow", passed, description, diff, -margin)
