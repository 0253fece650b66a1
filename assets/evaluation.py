"""Every recommender through the same evaluation; one comparison report."""

import dagster as dg

from assets.resources import StorageResource
from recs_platform.evaluation.report import EvaluationReport, build_report
from recs_platform.training import ModelArtifact
from recs_platform.validation.datasets import DatasetVersion


def evaluation_report_asset(model_keys: list[dg.AssetKey]) -> dg.AssetsDefinition:
    """The report asset over every model asset of the graph."""
    return dg.asset(
        name="evaluation_report",
        group_name="evaluation",
        automation_condition=dg.AutomationCondition.eager(),
        ins={key.path[-1]: dg.AssetIn(key) for key in model_keys},
    )(evaluation_report)


def evaluation_report(
    context: dg.AssetExecutionContext, dataset: DatasetVersion, storage: StorageResource, **models: ModelArtifact
) -> dg.Output[EvaluationReport]:
    """Scores every recommender on validation and test (full ranking, history masked, K=10).

    Writes each model's top-k run file and ground truth as Parquet so outside tools can
    recompute the metrics.
    """
    tables = dataset.load()
    loaded = [(artifact.load(), artifact.path) for artifact in models.values()]
    out_dir = storage.paths.evaluations / dataset.version
    report = build_report(loaded, tables, dataset.version, out_dir)
    context.log.info("test metrics:\n" + report.markdown("test"))
    metadata: dict[str, object] = {
        "dataset_version": dataset.version,
        "test_metrics": dg.MetadataValue.md(report.markdown("test")),
        "valid_metrics": dg.MetadataValue.md(report.markdown("valid")),
        "run_files": dg.MetadataValue.path(str(out_dir)),
    }
    for name, scores in report.scores.items():
        metadata[f"{name}_test_ndcg@10"] = scores.test["ndcg@10"]
    return dg.Output(report, metadata=metadata)
