"""Every recommender through the same evaluation; one comparison report."""

from collections.abc import Callable, Sequence
from pathlib import Path

import dagster as dg
from pydantic import Field

from assets.resources import GateSettings, StorageResource
from recs_platform.artifacts import DatasetVersion, ModelArtifact
from recs_platform.evaluation.html_report import write_html_report
from recs_platform.evaluation.report import EvaluationReport, build_report, reusable_runs
from recs_platform.evaluation.suite import full_evaluation
from recs_platform.experiments import record_evaluation
from recs_platform.models.base import load_recommender
from recs_platform.training import compare_next_item


def over_models(
    compute: Callable[..., object], model_keys: list[dg.AssetKey], after: Sequence[str] = ()
) -> dg.AssetsDefinition:
    """An evaluation asset named after ``compute`` whose inputs are every model asset of the graph
    (and the assets named in ``after``)."""
    return dg.asset(
        name=compute.__name__,
        group_name="evaluation",
        automation_condition=dg.AutomationCondition.eager(),
        ins={key.path[-1]: dg.AssetIn(key) for key in model_keys} | {name: dg.AssetIn(name) for name in after},
    )(compute)


def evaluation_report(
    context: dg.AssetExecutionContext,
    dataset: DatasetVersion,
    storage: StorageResource,
    gate: GateSettings,
    **models: ModelArtifact,
) -> dg.Output[EvaluationReport]:
    """Scores every recommender on test (full ranking, train and validation masked, at the
    configured metric's cutoff) beside the validation metrics it was selected on.

    Writes each model's top-k run file and ground truth as Parquet so outside tools can
    recompute the metrics.
    """
    out_dir = storage.paths.evaluations / dataset.version
    report = build_report(list(models.values()), dataset.load(), dataset.version, out_dir, gate.metric)
    context.log.info("test metrics:\n" + report.markdown("test"))
    metadata: dict[str, object] = {
        "dataset_version": dataset.version,
        "metric": gate.metric,
        "test_metrics": dg.MetadataValue.md(report.markdown("test")),
        "valid_metrics": dg.MetadataValue.md(report.markdown("valid")),
        "run_files": dg.MetadataValue.path(str(out_dir)),
    }
    for name, scores in report.scores.items():
        metadata[f"{name}_test_{gate.metric}"] = scores.test[gate.metric]
        if scores.feature_importance:
            metadata[f"{name}_feature_importance"] = dg.MetadataValue.md(scores.feature_importance_markdown())
    return dg.Output(report, metadata=metadata)


class SuiteConfig(dg.Config):
    """What the evaluation suite computes (editable in the Launchpad)."""

    ks: list[int] = Field(default=[5, 10, 20], description="Cutoffs for every accuracy metric.")
    custom_metrics: list[str] = Field(
        default=["recs_platform.evaluation.custom:long_tail_share"],
        description='Extra metrics: registered names, "module:function" paths or recs_platform.metrics entry points.',
    )


def evaluation_suite(
    context: dg.AssetExecutionContext,
    config: SuiteConfig,
    dataset: DatasetVersion,
    storage: StorageResource,
    gate: GateSettings,
    evaluation_report: EvaluationReport,
    **models: ModelArtifact,
) -> dg.MaterializeResult:
    """Accuracy at several k, coverage, diversity, novelty, popularity bias, slices, custom metrics and
    significance against the best baseline, with plots and a standalone HTML report. The test
    rankings the evaluation report wrote are scored again rather than recomputed, when deep enough."""
    loaded = {a.recommender: load_recommender(Path(a.path)) for a in models.values() if not a.skipped}
    suite = full_evaluation(
        loaded,
        dataset.load(),
        ks=config.ks,
        custom_metrics=config.custom_metrics,
        primary_metric=gate.metric,
        contract=storage.contract(),
        runs=reusable_runs(evaluation_report, list(models.values()), max(config.ks)),
    )
    html = write_html_report(suite, storage.paths.evaluations / dataset.version / "report.html")
    record_evaluation(storage.paths.experiments, dataset.version, {name: m.summary for name, m in suite.models.items()})
    flagged = [name for name, model in suite.models.items() if model.first_item.flagged]
    if flagged:
        context.log.warning(f"same item first for most users: {flagged}")
    tables = {name: dg.MetadataValue.md(text) for name, text in suite.markdown_tables().items()}
    plots = {f"plot_{name}": dg.MetadataValue.md(text) for name, text in suite.plot_markdown().items()}
    return dg.MaterializeResult(
        metadata={
            **tables,
            **plots,
            "html_report": dg.MetadataValue.path(str(html)),
            "best_baseline": suite.baseline or "none",
            "skipped_models": ", ".join(f"{a.recommender} ({a.skipped})" for a in models.values() if a.skipped)
            or "none",
            "same_first_item_flagged": ", ".join(flagged) or "none",
        }
    )


# General recommenders compared with the sequential model on its task, when they are trained.
NEXT_ITEM_PEERS = ("popularity", "bpr")


def next_item_evaluation(
    context: dg.AssetExecutionContext, dataset: DatasetVersion, gate: GateSettings, **models: ModelArtifact
) -> dg.MaterializeResult:
    """Next-item prediction under leave-one-out (RecBole's sequential protocol): each model is
    refit, with its chosen configuration, on every user's sequence but the last two items, and
    ranks the full catalogue for the last one (history masked)."""
    chosen = {artifact.recommender: artifact.params for artifact in models.values() if not artifact.skipped}
    table = compare_next_item(dataset.load(), chosen, log=context.log.info, metric=gate.metric)
    return dg.MaterializeResult(
        metadata={
            "dataset_version": dataset.version,
            "next_item_metrics": dg.MetadataValue.md(table.to_markdown(index=False, floatfmt=".4f")),
            **{f"{row.recommender}_next_item_ndcg@10": float(row["ndcg@10"]) for _, row in table.iterrows()},
        }
    )


def next_item_models(model_keys: list[dg.AssetKey]) -> list[dg.AssetKey]:
    """The model assets ``next_item_evaluation`` compares: SASRec and its peers; none without SASRec."""
    names = {key.path[-1]: key for key in model_keys}
    if "sasrec_model" not in names:
        return []
    return [names[f"{name}_model"] for name in ("sasrec", *NEXT_ITEM_PEERS) if f"{name}_model" in names]
