"""Candidate selection, blocking gates, and the gated deployment to the BentoML model store."""

import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import dagster as dg

from assets.resources import GateSettings, PromotionSettings, RegistryResource
from recs_platform.artifacts import DatasetVersion
from recs_platform.deployment import Candidate, deploy, evaluate_gates, select_candidate
from recs_platform.evaluation.gates import GATES
from recs_platform.evaluation.report import EvaluationReport


@dg.asset(group_name="deployment", automation_condition=dg.AutomationCondition.eager())
def candidate_model(evaluation_report: EvaluationReport) -> dg.Output[Candidate]:
    """The learned model with the best validation score, with its test and baseline scores."""
    candidate = select_candidate(evaluation_report)
    metric = evaluation_report.metric
    return dg.Output(
        candidate,
        metadata={
            "recommender": candidate.scores.recommender,
            f"valid_{metric}": candidate.scores.valid[metric],
            f"test_{metric}": candidate.scores.test[metric],
            "data_version": candidate.dataset_version,
        },
    )


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(name, asset=candidate_model, additional_deps=["dataset"], blocking=True, description=text)
        for name, text in GATES.items()
    ],
    ins={"candidate": dg.AssetIn(candidate_model.key), "dataset": dg.AssetIn("dataset")},
)
def deployment_gates(
    candidate: Candidate, dataset: DatasetVersion, gate: GateSettings, registry: RegistryResource
) -> Iterator[dg.AssetCheckResult]:
    """Blocking gates: when one fails, the deployment does not run and the champion keeps serving."""
    results = evaluate_gates(
        candidate, dataset, registry.registry(), gate.metric, gate.min_metric, gate.champion_tolerance
    )
    for name, result in results.items():
        yield dg.AssetCheckResult(
            asset_key=candidate_model.key,
            check_name=name,
            passed=result.passed,
            description=result.description,
            metadata={
                "observed": result.observed,
                "required": result.required if result.required is not None else "none",
            },
        )


@dg.asset(
    group_name="deployment",
    automation_condition=dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed(),
)
def deployment(
    context: dg.AssetExecutionContext,
    candidate_model: Candidate,
    dataset: DatasetVersion,
    gate: GateSettings,
    registry: RegistryResource,
    promotion: PromotionSettings,
) -> dg.MaterializeResult:
    """Registers the candidate's bundle in the BentoML model store and points the configured alias
    (champion, or a challenger for shadow traffic first) at it.

    Runs only after every blocking gate on the candidate passed; the gates are evaluated once
    more here so that a deploy can never happen unchecked, even when launched on its own. The
    registered bundle must then load and answer smoke requests in a separate process before the
    alias moves; a refusal fails the asset with the reason in one sentence.
    """
    with tempfile.TemporaryDirectory() as scratch:
        outcome = deploy(
            candidate_model,
            dataset,
            registry.registry(),
            gate.metric,
            gate.min_metric,
            gate.champion_tolerance,
            Path(scratch),
            alias=promotion.promote_as,
        )
    gates_md = "\n".join(
        f"- {'✅' if g.passed else '❌'} **{g.name}**: {g.description}" for g in outcome.gates.values()
    )
    if not outcome.deployed:
        raise dg.Failure(
            description=f"deployment refused: {outcome.reason}; the {promotion.promote_as} alias did not move",
            metadata={"reason": outcome.reason, "gates": dg.MetadataValue.md(gates_md)},
        )
    context.log.info(f"{outcome.status}: {outcome.record.tag}")
    return dg.MaterializeResult(
        metadata={
            "deployment_status": outcome.status,
            "reason": outcome.reason,
            "tag": outcome.record.tag,
            "alias": outcome.record.alias,
            "gates": dg.MetadataValue.md(gates_md),
            "metrics": dg.MetadataValue.json(outcome.record.metrics),
            "pointer": dg.MetadataValue.json(asdict(outcome.record)),
        }
    )
