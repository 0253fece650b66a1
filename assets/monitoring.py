"""Dataset statistics and the drift check against the production model's training data."""

from pathlib import Path

import dagster as dg

from assets.datasets import dataset
from assets.resources import DriftSettings, RegistryResource, StorageResource
from recs_platform.artifacts import DatasetVersion
from recs_platform.monitoring.plots import drift_plot_markdown
from recs_platform.monitoring.production import drift_against_production
from recs_platform.monitoring.statistics import dataset_statistics, statistics_markdown, write_statistics


@dg.asset(group_name="datasets", automation_condition=dg.AutomationCondition.eager())
def dataset_statistics_report(dataset: DatasetVersion) -> dg.MaterializeResult:
    """Per-column statistics of every table of the dataset version (counts, missing, ranges, top values)."""
    stats = dataset_statistics(dataset.load())
    path = write_statistics(stats, Path(dataset.path) / "statistics.json")
    return dg.MaterializeResult(
        metadata={
            "dataset_version": dataset.version,
            "statistics": dg.MetadataValue.md(statistics_markdown(stats)),
            "path": dg.MetadataValue.path(str(path)),
        }
    )


@dg.asset_check(asset=dataset, description="Feature drift of the newest data and of served traffic (PSI).")
def feature_drift_vs_production(
    dataset: DatasetVersion, storage: StorageResource, registry: RegistryResource, drift: DriftSettings
) -> dg.AssetCheckResult:
    """Compares the newest interactions, and served requests once logged, with the production training data."""
    paths = storage.paths
    comparisons = drift_against_production(
        dataset, registry.registry(), paths.datasets, paths.serving_logs, drift.psi_threshold, drift.newest_days
    )
    if not comparisons:
        return dg.AssetCheckResult(passed=True, description="no production model yet: nothing to compare with")
    drifted = {c.name: c.report.drifted_features for c in comparisons}
    metadata: dict[str, object] = {}
    for comparison in comparisons:
        report = comparison.report
        metadata[f"{comparison.name}_psi"] = dg.MetadataValue.md(report.to_markdown())
        metadata[f"{comparison.name}_max_psi"] = float(report.features.psi.max())
        shown = report.drifted_features or list(report.features.sort_values("psi").feature.tail(1))
        plots = [drift_plot_markdown(comparison.reference, comparison.current, f) for f in shown[:4]]
        metadata[f"{comparison.name}_plots"] = dg.MetadataValue.md("\n\n".join(plots))
    moved = [f"{name}: {', '.join(features)}" for name, features in drifted.items() if features]
    return dg.AssetCheckResult(
        passed=not moved,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(moved) if moved else "no feature moved beyond its PSI threshold",
        metadata=metadata,
    )
