"""Drift of the newest data and of served traffic against what the production model learned from."""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recs_platform.registry import ModelRegistry
from recs_platform.validation.datasets import DatasetVersion
from recs_platform.validation.drift import (
    DriftReport,
    feature_drift,
    interaction_features,
    read_serving_log,
    serving_features,
)

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class DriftComparison:
    """One comparison: its name, the two feature frames, and the report."""

    name: str
    reference: pd.DataFrame
    current: pd.DataFrame
    report: DriftReport


def production_dataset(registry: ModelRegistry, datasets_root: Path) -> DatasetVersion | None:
    """The frozen dataset the serving model was trained on, if a model serves and it is on disk."""
    record = registry.production()
    if record is None:
        return None
    version = registry.metadata(record.tag).get("data_version")
    path = datasets_root / str(version)
    return DatasetVersion(str(version), str(path)) if path.exists() else None


def newest_interactions(tables: dict[str, pd.DataFrame], days: float) -> pd.DataFrame:
    """Interactions of the last ``days`` days of the dataset, whatever split they fell in."""
    interactions = pd.concat([tables[split] for split in SPLITS], ignore_index=True)
    cutoff = interactions.timestamp.max() - pd.Timedelta(days=days)
    return interactions[interactions.timestamp > cutoff]


def drift_against_production(
    current: DatasetVersion,
    registry: ModelRegistry,
    datasets_root: Path,
    serving_logs: Path,
    threshold: float,
    newest_days: float,
) -> list[DriftComparison]:
    """Newest data, and served requests when logs exist, against the production training data."""
    reference_version = production_dataset(registry, datasets_root)
    if reference_version is None:
        return []
    reference_tables = reference_version.load()
    reference = interaction_features(reference_tables["train"], reference_tables["users"], reference_tables["items"])
    tables = current.load()
    newest = interaction_features(newest_interactions(tables, newest_days), tables["users"], tables["items"])
    comparisons = [_compare("newest_data", reference, newest, threshold)]
    log = read_serving_log(serving_logs) if serving_logs.exists() else pd.DataFrame()
    if not log.empty:
        served = serving_features(log, tables["users"], tables["items"])
        comparisons.append(_compare("serving", reference, served, threshold))
    return comparisons


def _compare(name: str, reference: pd.DataFrame, current: pd.DataFrame, threshold: float) -> DriftComparison:
    features = [column for column in reference.columns if column in current.columns]
    return DriftComparison(name, reference, current, feature_drift(reference, current, features, threshold))
