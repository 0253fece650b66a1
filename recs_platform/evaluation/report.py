"""Evaluate every trained recommender identically and compare them in one report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from recs_platform.evaluation.evaluate import evaluate
from recs_platform.models.base import Recommender

PRIMARY_METRIC = "ndcg@10"


@dataclass
class ModelScores:
    """One recommender's validation and test metrics and where its run files are."""

    recommender: str
    is_learned: bool
    valid: dict[str, float]
    test: dict[str, float]
    n_test_users: int
    run_dir: str
    artifact_path: str


@dataclass
class EvaluationReport:
    """All recommenders of one dataset version, evaluated with the same code."""

    dataset_version: str
    k: int
    scores: dict[str, ModelScores] = field(default_factory=dict)

    def table(self, split: str = "test") -> pd.DataFrame:
        rows = [
            {"recommender": s.recommender, "kind": "learned" if s.is_learned else "baseline", **getattr(s, split)}
            for s in self.scores.values()
        ]
        return pd.DataFrame(rows).sort_values(PRIMARY_METRIC, ascending=False).reset_index(drop=True)

    def markdown(self, split: str = "test") -> str:
        return self.table(split).to_markdown(index=False, floatfmt=".4f")

    def best_learned(self, metric: str = PRIMARY_METRIC) -> ModelScores:
        """The learned model with the best validation score (test is never used to choose)."""
        learned = [s for s in self.scores.values() if s.is_learned]
        if not learned:
            raise LookupError("no learned recommender in the report")
        return max(learned, key=lambda s: s.valid[metric])

    def baselines(self) -> list[ModelScores]:
        return [s for s in self.scores.values() if not s.is_learned]


def score_recommender(
    model: Recommender, tables: dict[str, pd.DataFrame], k: int, run_dir: Path
) -> tuple[dict[str, float], dict[str, float], int]:
    """Validation metrics (train masked) and test metrics (train and validation masked)."""
    valid = evaluate(model, tables["valid"], k=k)
    test = evaluate(model, tables["test"], k=k, exclude=tables["valid"])
    test.write_run_files(run_dir)
    return valid.summary, test.summary, test.n_users


def build_report(
    models: Sequence[tuple[Recommender, str]],
    tables: dict[str, pd.DataFrame],
    dataset_version: str,
    out_dir: Path,
    k: int = 10,
) -> EvaluationReport:
    """Evaluate each ``(model, artifact_path)`` and write run files under ``out_dir/<name>/``."""
    report = EvaluationReport(dataset_version=dataset_version, k=k)
    for model, artifact_path in models:
        run_dir = out_dir / model.name
        valid, test, n_users = score_recommender(model, tables, k, run_dir)
        report.scores[model.name] = ModelScores(
            model.name, model.is_learned, valid, test, n_users, str(run_dir), artifact_path
        )
    return report
