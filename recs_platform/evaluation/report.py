"""Evaluate every trained recommender identically and compare them in one report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from recs_platform.artifacts import TRAIN, ModelArtifact
from recs_platform.evaluation.evaluate import EvaluationResult, evaluate
from recs_platform.evaluation.metrics import DEFAULT_METRIC, parse_metric
from recs_platform.models.base import Recommender, load_recommender


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
    trained_on: str = TRAIN
    run_depth: int = 0  # ranks per user in the run file (0: not recorded)
    # Split gain per ranker feature, largest first, for models that rank with features (two_stage).
    feature_importance: dict[str, float] = field(default_factory=dict)

    def feature_importance_markdown(self, top: int = 15) -> str:
        """The ``top`` features by gain with their share of the total, as a markdown table."""
        total = sum(self.feature_importance.values()) or 1.0
        rows = [
            {"feature": name, "gain": gain, "share": gain / total}
            for name, gain in list(self.feature_importance.items())[:top]
        ]
        return pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f")


@dataclass
class EvaluationReport:
    """All recommenders of one dataset version, evaluated with the same code."""

    dataset_version: str
    metric: str  # what selection and the gates compare; every metric is reported at its cutoff
    scores: dict[str, ModelScores] = field(default_factory=dict)
    # Recommenders that were not trained, with why (e.g. the memory a dense fit would need).
    skipped: dict[str, str] = field(default_factory=dict)

    def table(self, split: str = "test") -> pd.DataFrame:
        rows = [
            {"recommender": s.recommender, "kind": "learned" if s.is_learned else "baseline", **getattr(s, split)}
            for s in self.scores.values()
        ]
        return pd.DataFrame(rows).sort_values(self.metric, ascending=False).reset_index(drop=True)

    def markdown(self, split: str = "test") -> str:
        table = self.table(split).to_markdown(index=False, floatfmt=".4f")
        skipped = "".join(f"\n\nskipped: {name}: {reason}" for name, reason in sorted(self.skipped.items()))
        return table + skipped

    def best_learned(self) -> ModelScores:
        """The learned model with the best validation score (test is never used to choose)."""
        learned = [s for s in self.scores.values() if s.is_learned]
        if not learned:
            raise LookupError("no learned recommender in the report")
        return max(learned, key=lambda s: s.valid[self.metric])

    def baselines(self) -> list[ModelScores]:
        return [s for s in self.scores.values() if not s.is_learned]


# The run files hold each user's top 20 (or the metric's cutoff if deeper): as many as the evaluation
# suite's default cutoffs need, so it scores them instead of ranking every model again.
RUN_DEPTH = 20


def score_on_test(model: Recommender, tables: dict[str, pd.DataFrame], k: int, run_dir: Path) -> EvaluationResult:
    """Test metrics at ``k`` with train and validation items masked; the run files (``RUN_DEPTH``
    deep) go to ``run_dir``."""
    test = evaluate(model, tables["test"], k=k, exclude=tables["valid"], depth=RUN_DEPTH)
    test.write_run_files(run_dir)
    return test


def reusable_runs(report: EvaluationReport, artifacts: Sequence[ModelArtifact], depth: int) -> dict[str, pd.DataFrame]:
    """The report's test runs of ``artifacts`` that are at least ``depth`` deep, by recommender:
    only where the report scored that very artifact."""
    runs = {}
    for artifact in artifacts:
        scores = report.scores.get(artifact.recommender)
        if scores is not None and scores.artifact_path == artifact.path and scores.run_depth >= depth:
            runs[artifact.recommender] = pd.read_parquet(Path(scores.run_dir) / "run.parquet")
    return runs


def build_report(
    artifacts: Sequence[ModelArtifact],
    tables: dict[str, pd.DataFrame],
    dataset_version: str,
    out_dir: Path,
    metric: str = DEFAULT_METRIC,
) -> EvaluationReport:
    """Score each artifact on test at ``metric``'s cutoff and write its run files under ``out_dir/<name>/``;
    skipped artifacts are listed with their reason.

    Validation metrics are the ones the artifact was selected on (fit on train alone), so a
    model refit on train+valid is compared on the same footing as one that was not.
    """
    report = EvaluationReport(dataset_version=dataset_version, metric=metric)
    k = parse_metric(metric)[1]
    for artifact in artifacts:
        if artifact.skipped:
            report.skipped[artifact.recommender] = artifact.skipped
            continue
        run_dir = out_dir / artifact.recommender
        test = score_on_test(load_recommender(Path(artifact.path)), tables, k, run_dir)
        report.scores[artifact.recommender] = ModelScores(
            artifact.recommender,
            artifact.is_learned,
            artifact.valid,
            test.summary,
            test.n_users,
            str(run_dir),
            artifact.path,
            artifact.trained_on,
            max(k, RUN_DEPTH),
            artifact.metadata.get("feature_importance", {}),
        )
    return report
