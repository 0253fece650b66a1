"""Choose a candidate, judge it against the gates, and promote it only if every gate passes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recs_platform.artifacts import DatasetVersion, training_rows
from recs_platform.evaluation.evaluate import evaluate
from recs_platform.evaluation.gates import GateResult, baseline_gate, champion_gate, shadow_gate, threshold_gate
from recs_platform.evaluation.metrics import parse_metric
from recs_platform.evaluation.report import EvaluationReport, ModelScores
from recs_platform.models.base import load_recommender
from recs_platform.models.popularity import PopularityRecommender
from recs_platform.registry import CHAMPION, AliasRecord, BundleRefused, ModelRegistry, write_bundle
from recs_platform.training import fit_recommender

FALLBACK = "popularity"
# The shadow gate's defaults: how much lower a challenger's shadow NDCG may be, on how many requests.
SHADOW_MARGIN = 0.01
SHADOW_MIN_REQUESTS = 200
SEGMENT = "segment_popularity"  # answers new users by their demographics, when it was trained


@dataclass(frozen=True)
class Candidate:
    """The model proposed for deployment, with the baselines it was evaluated beside."""

    dataset_version: str
    scores: ModelScores
    baselines: dict[str, ModelScores]


@dataclass(frozen=True)
class DeploymentOutcome:
    """What the deployment did: ``status`` is deployed, already_serving or refused; ``reason`` says
    why in one sentence."""

    status: str
    gates: dict[str, GateResult]
    record: AliasRecord | None
    reason: str

    @property
    def deployed(self) -> bool:
        return self.status != "refused"


def select_candidate(report: EvaluationReport) -> Candidate:
    """The best learned model on validation; the popularity baseline must be in the report."""
    if FALLBACK not in report.scores:
        raise LookupError("the report has no popularity baseline, which serving needs as fallback")
    baselines = {s.recommender: s for s in report.baselines()}
    return Candidate(report.dataset_version, report.best_learned(), baselines)


@dataclass(frozen=True)
class ChampionScores:
    """The champion's recipe, refit on the candidate's training rows, scored on the same test set."""

    tag: str
    recommender: str
    test: dict[str, float]


def champion_metrics(
    registry: ModelRegistry, dataset: DatasetVersion, metric: str, trained_on: str
) -> ChampionScores | None:
    """The champion compared fairly with a candidate trained on ``trained_on`` of ``dataset``.

    Re-scoring the champion's own weights would mask the items *it* trained on: once the data has
    moved on, test items the champion trained on would be unreachable for it and the comparison
    would lean toward the candidate. Instead the champion's recipe (recommender and chosen
    parameters, with its epoch count) is refit on exactly the candidate's training rows, so both
    models learned from the same interactions, mask the same ones and are scored on the same test
    set by the same code. None when nothing serves.
    """
    record = registry.production()
    if record is None:
        return None
    config = registry.metadata(record.tag)["config"]
    tables = dataset.load()
    champion, _ = fit_recommender(config["recommender"], config["params"], training_rows(tables, trained_on), tables)
    summary = evaluate(champion, tables["test"], k=parse_metric(metric)[1], exclude=tables["valid"]).summary
    return ChampionScores(record.tag, config["recommender"], summary)


def evaluate_gates(
    candidate: Candidate, dataset: DatasetVersion, registry: ModelRegistry, metric: str, floor: float, tolerance: float
) -> dict[str, GateResult]:
    """All gates, keyed by name: threshold, beats_baselines, no_regression."""
    test = candidate.scores.test
    baselines = {name: scores.test for name, scores in candidate.baselines.items()}
    results = [
        threshold_gate(test, metric, floor),
        baseline_gate(test, baselines, metric),
        champion_gate(
            test, champion_metrics(registry, dataset, metric, candidate.scores.trained_on), metric, tolerance
        ),
    ]
    return {result.name: result for result in results}


def deploy(
    candidate: Candidate,
    dataset: DatasetVersion,
    registry: ModelRegistry,
    metric: str,
    floor: float,
    tolerance: float,
    scratch: Path,
    alias: str = CHAMPION,
) -> DeploymentOutcome:
    """Register the candidate's bundle and point ``alias`` at it (the champion, or a challenger that
    first sees shadow traffic) if, and only if, every gate passes and, when ``registry`` has a
    verifier, the registered bundle loads and answers its smoke requests."""
    gates = evaluate_gates(candidate, dataset, registry, metric, floor, tolerance)
    if failed := [name for name, g in gates.items() if not g.passed]:
        return DeploymentOutcome("refused", gates, None, f"the gates refused it ({', '.join(failed)})")
    model = load_recommender(Path(candidate.scores.artifact_path))
    fallback = load_recommender(Path(candidate.baselines[FALLBACK].artifact_path))
    assert isinstance(fallback, PopularityRecommender)
    segment = candidate.baselines.get(SEGMENT)
    segment_model = load_recommender(Path(segment.artifact_path)) if segment is not None else None
    metadata = {
        "recommender": model.name,
        "data_version": candidate.dataset_version,
        "code_version": model.metadata.get("code_version"),
        "config": model.metadata.get("config"),
        "trained_on": model.metadata.get("trained_on"),
        "valid_metrics": candidate.scores.valid,
        "test_metrics": candidate.scores.test,
        "gates": {name: g.description for name, g in gates.items()},
    }
    current = registry.aliases().get(alias)
    if current is not None and _same_provenance(registry.metadata(current.tag), metadata):
        # A rerun on unchanged data, code and config trains the same model; don't register a copy.
        reason = f"{alias} already names {current.tag}, trained on the same data, code and config"
        return DeploymentOutcome("already_serving", gates, current, reason)
    items = dataset.load()["items"]
    bundle = write_bundle(scratch / "bundle", model, fallback, items, metadata, segment=segment_model)
    tag = registry.register(
        bundle, metadata, labels={"recommender": model.name, "data_version": candidate.dataset_version}
    )
    try:  # with a verifier, the registry loads the stored bundle in a separate process first
        record = registry.promote(tag, "all deployment gates passed", candidate.scores.test, "deployment", alias)
    except BundleRefused as refusal:
        return DeploymentOutcome("refused", gates, None, str(refusal))
    return DeploymentOutcome("deployed", gates, record, f"{alias} now names {tag}")


def _same_provenance(serving: dict, candidate: dict) -> bool:
    keys = ("recommender", "data_version", "code_version", "config")
    return all(serving.get(key) == candidate.get(key) for key in keys)


def promote_challenger(
    registry: ModelRegistry,
    alias: str,
    by: str,
    shadow: dict[str, float] | None = None,
    k: int = 10,
    gate: tuple[float, int] | None = None,
) -> AliasRecord:
    """Make challenger ``alias`` the champion and retire the alias. With ``gate`` (margin, minimum
    requests) the shadow comparison row ``shadow`` must pass the shadow gate first."""
    record = registry.challengers().get(alias)
    if record is None:
        raise KeyError(f"no challenger alias {alias!r}")
    if gate is not None:
        result = shadow_gate(shadow, k, *gate)
        if not result.passed:
            raise PromotionRefused(result.description)
    promoted = registry.promote(record.tag, f"challenger {alias} promoted", record.metrics, by=by)
    registry.remove_alias(alias, f"promoted to {CHAMPION}", by=by)
    return promoted


class PromotionRefused(RuntimeError):
    """A gate refused to move an alias; the message says which and why."""
