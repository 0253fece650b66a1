"""Deployment gates: threshold, beat-the-baselines and no-regression."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from recs_platform.evaluation.gates import GateResult, baseline_gate, champion_gate, threshold_gate

METRIC = "ndcg@10"


def scores(value: float) -> dict[str, float]:
    return {METRIC: value, "recall@10": 0.5}


@dataclass(frozen=True)
class Champion:
    test: dict[str, float]
    tag: str = "ease-20261201"
    recommender: str = "ease"


def champion(value: float) -> Champion:
    return Champion(scores(value))


# -- threshold ------------------------------------------------------------------------------------


def test_threshold_gate_passes_above() -> None:
    result = threshold_gate(scores(0.31), METRIC, 0.30)
    assert result == GateResult("threshold", True, result.description, 0.31, 0.30)
    assert "meets" in result.description


def test_threshold_gate_fails_below() -> None:
    result = threshold_gate(scores(0.29), METRIC, 0.30)
    assert not result.passed
    assert result.observed == 0.29 and result.required == 0.30
    assert "is below" in result.description


def test_threshold_gate_equal_passes() -> None:
    assert threshold_gate(scores(0.30), METRIC, 0.30).passed


def test_threshold_gate_zero_threshold_passes_zero() -> None:
    assert threshold_gate(scores(0.0), METRIC, 0.0).passed


def test_threshold_gate_missing_metric_raises() -> None:
    with pytest.raises(KeyError):
        threshold_gate({"recall@10": 0.9}, METRIC, 0.1)


# -- baselines ------------------------------------------------------------------------------------


def test_baseline_gate_passes_when_beating_every_baseline() -> None:
    result = baseline_gate(scores(0.25), {"popularity": scores(0.20), "random": scores(0.01)}, METRIC)
    assert result.passed
    assert result.name == "beats_baselines"
    assert result.required == 0.20  # compared against the best baseline
    assert "popularity" in result.description and "beats" in result.description


def test_baseline_gate_fails_when_one_baseline_is_better() -> None:
    result = baseline_gate(scores(0.15), {"popularity": scores(0.20), "random": scores(0.01)}, METRIC)
    assert not result.passed
    assert result.required == 0.20
    assert "does not beat popularity" in result.description


def test_baseline_gate_equal_to_best_baseline_fails() -> None:
    # The candidate must strictly beat the baselines; a tie is not good enough.
    assert not baseline_gate(scores(0.20), {"popularity": scores(0.20)}, METRIC).passed


def test_baseline_gate_names_the_best_baseline_regardless_of_order() -> None:
    result = baseline_gate(scores(0.1), {"a": scores(0.05), "b": scores(0.3), "c": scores(0.2)}, METRIC)
    assert result.required == 0.3 and "b (0.3000)" in result.description


def test_baseline_gate_without_baselines_raises() -> None:
    with pytest.raises(ValueError):
        baseline_gate(scores(0.5), {}, METRIC)


# -- champion -------------------------------------------------------------------------------------


def test_champion_gate_passes_without_champion() -> None:
    result = champion_gate(scores(0.0), None, METRIC, tolerance=0.0)
    assert result.passed
    assert result.required is None
    assert result.name == "no_regression"


def test_champion_gate_passes_within_tolerance() -> None:
    result = champion_gate(scores(0.295), champion(0.30), METRIC, tolerance=0.01)
    assert result.passed
    assert result.required == pytest.approx(0.29)
    assert "is within" in result.description
    assert "ease-20261201 (ease refit on the same training rows: 0.3000)" in result.description


def test_champion_gate_fails_beyond_tolerance() -> None:
    result = champion_gate(scores(0.28), champion(0.30), METRIC, tolerance=0.01)
    assert not result.passed
    assert "regresses beyond" in result.description


def test_champion_gate_exactly_at_tolerance_passes() -> None:
    # 0.25 - 0.125 is exact in binary floating point, so the boundary is tested exactly.
    assert champion_gate(scores(0.125), champion(0.25), METRIC, tolerance=0.125).passed
    assert not champion_gate(scores(0.124), champion(0.25), METRIC, tolerance=0.125).passed


def test_champion_gate_zero_tolerance_allows_a_tie_but_no_drop() -> None:
    assert champion_gate(scores(0.30), champion(0.30), METRIC, tolerance=0.0).passed
    assert not champion_gate(scores(0.2999), champion(0.30), METRIC, tolerance=0.0).passed


def test_champion_gate_improvement_passes() -> None:
    assert champion_gate(scores(0.40), champion(0.30), METRIC, tolerance=0.0).passed


def test_gate_result_is_frozen() -> None:
    result = threshold_gate(scores(0.5), METRIC, 0.1)
    with pytest.raises(AttributeError):
        result.passed = False  # type: ignore[misc]
