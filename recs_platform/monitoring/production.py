"""Drift of the newest data and of served traffic against what the production model learned from."""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recs_platform.artifacts import TRAIN, DatasetVersion, training_rows
from recs_platform.monitoring.drift import (
    DriftReport,
    feature_drift,
    interaction_features,
    read_serving_log,
    serving_features,
)
from recs_platform.registry import ModelRegistry

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class DriftComparison:
    """One comparison: its name, the two feature frames, and the report."""

    name: str
    reference: pd.DataFrame
    current: pd.DataFrame
    report: DriftReport


@dataclass(frozen=True)
class ProductionTraining:
    """What the serving model learned from: a frozen dataset and the splits it was trained on."""

    dataset: DatasetVersion
    trained_on: str


def production_training_data(registry: ModelRegistry, datasets_root: Path) -> ProductionTraining | None:
    """The frozen dataset and splits the serving model was trained on, if a model serves and the
    dataset is on disk."""
    record = registry.production()
    if record is None:
        return None
    metadata = registry.metadata(record.tag)
    version = str(metadata.get("data_version"))
    path = datasets_root / version
    if not path.exists():
        return None
    # Bundles from before refitting existed were trained on the train split alone.
    return ProductionTraining(DatasetVersion(version, str(path)), metadata.get("trained_on") or TRAIN)


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
    production = production_training_data(registry, datasets_root)
    if production is None:
        return []
    reference_tables = production.dataset.load()
    rows = training_rows(reference_tables, production.trained_on)
    reference = interaction_features(rows, reference_tables["users"], reference_tables["items"])
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
