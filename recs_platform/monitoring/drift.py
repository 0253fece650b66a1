"""Feature drift between a reference sample and a current one: PSI and Jensen–Shannon distance per feature.

Typical pairs: training interactions against the newest ones (data drift), and training interactions
against served requests (training/serving skew). Both sides are first turned into the same
per-event features by ``interaction_features`` and ``serving_features``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon

from recs_platform.monitoring.statistics import column_kind

N_BINS = 10
EPSILON = 1e-4  # share given to empty bins so that PSI stays finite
DEFAULT_THRESHOLD = 0.2  # PSI above 0.2 is the usual "significant shift"
MISSING = "(missing)"
UNSEEN = "(unseen)"
# A categorical user column with more values than this (postcodes, names) is an identifier, not
# a segment whose share can drift.
MAX_SEGMENT_VALUES = 50
FALLBACK_SOURCES = ("segment", "popularity")


@dataclass(frozen=True)
class Distributions:
    """One feature's reference and current shares over the same bins."""

    kind: str
    labels: list[str]
    reference: np.ndarray
    current: np.ndarray


def binned_distributions(reference: pd.Series, current: pd.Series, bins: int = N_BINS) -> Distributions:
    """Shares per bin: reference quantile bins for numbers, reference categories for the rest.

    Missing values get their own bin, and current categories the reference never saw share one
    ``(unseen)`` bin; bins empty on both sides are dropped.
    """
    if reference.empty or current.empty:
        raise ValueError(f"cannot compare {reference.name!r}: the reference or the current sample is empty")
    kind = drift_kind(reference)
    if kind == "numeric":
        labels, ref_counts, cur_counts = _numeric_counts(reference.astype("float64"), current.astype("float64"), bins)
    else:
        labels, ref_counts, cur_counts = _categorical_counts(reference, current)
    keep = (ref_counts + cur_counts) > 0
    return Distributions(
        kind,
        [label for label, kept in zip(labels, keep, strict=True) if kept],
        ref_counts[keep] / ref_counts.sum(),
        cur_counts[keep] / cur_counts.sum(),
    )


def drift_kind(series: pd.Series) -> str:
    """``numeric`` or ``categorical``; raw timestamps and lists have no meaningful drift, their features do."""
    kind = column_kind(series)
    if kind in ("datetime", "list"):
        raise ValueError(f"{series.name!r} is a {kind} column: derive features from it (e.g. interaction_features)")
    return kind


def _numeric_counts(reference: pd.Series, current: pd.Series, bins: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    values = reference.dropna().to_numpy()
    if values.size == 0:
        edges = np.array([])
    else:
        inner = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
        # An edge just above the reference maximum gives values beyond the reference range a bin of
        # their own, and splits a constant column into below / equal / above.
        edges = np.unique(np.append(inner, np.nextafter(values.max(), np.inf)))

    def counts(series: pd.Series) -> np.ndarray:
        present = series.dropna().to_numpy()
        binned = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
        return np.append(binned, series.isna().sum()).astype("float64")

    return [*_numeric_labels(edges), MISSING], counts(reference), counts(current)


def _numeric_labels(edges: np.ndarray) -> list[str]:
    if edges.size == 0:
        return ["all"]
    bounds = [f"{edge:.4g}" for edge in edges]
    inner = [f"[{low}, {high})" for low, high in itertools.pairwise(bounds)]
    # The last edge sits just above the reference maximum, so the bin below it ends at that maximum.
    if inner:
        inner[-1] = inner[-1][:-1] + "]"
    return [f"< {bounds[0]}", *inner, f"> {bounds[-1]}"]


def _categorical_counts(reference: pd.Series, current: pd.Series) -> tuple[list[str], np.ndarray, np.ndarray]:
    ref, cur = _as_labels(reference), _as_labels(current)
    seen = ref[ref != MISSING].value_counts()
    # Most frequent reference categories first, ties by name, so plots read like a Pareto chart.
    categories = sorted(seen.index, key=lambda label: (-seen[label], label))
    cur = cur.where(cur.isin(categories) | (cur == MISSING), UNSEEN)
    labels = [*categories, UNSEEN, MISSING]
    return (
        labels,
        ref.value_counts().reindex(labels, fill_value=0).to_numpy("float64"),
        cur.value_counts().reindex(labels, fill_value=0).to_numpy("float64"),
    )


def _as_labels(series: pd.Series) -> pd.Series:
    return series.astype(object).map(lambda value: MISSING if pd.isna(value) else str(value))


def population_stability_index(expected: Sequence[float], actual: Sequence[float], epsilon: float = EPSILON) -> float:
    """PSI = Σ (actual − expected) · ln(actual / expected) over bins; empty bins count as ``epsilon``."""
    p, q = _smoothed(expected, epsilon), _smoothed(actual, epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def _smoothed(shares: Sequence[float], epsilon: float) -> np.ndarray:
    floored = np.maximum(np.asarray(shares, dtype="float64"), epsilon)
    return floored / floored.sum()


def js_distance(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Jensen–Shannon distance in base 2: 0 for identical shares, 1 for disjoint ones; bounded, unlike PSI."""
    return float(np.nan_to_num(jensenshannon(expected, actual, base=2)))


@dataclass(frozen=True)
class DriftReport:
    """Per-feature drift: ``features`` has columns feature, kind, psi, js, threshold, drifted."""

    features: pd.DataFrame
    n_reference: int
    n_current: int

    @property
    def drifted_features(self) -> list[str]:
        return self.features.loc[self.features.drifted, "feature"].tolist()

    @property
    def passed(self) -> bool:
        return not self.drifted_features

    def to_markdown(self) -> str:
        return self.features.to_markdown(index=False, floatfmt=".4f")

    def to_records(self) -> list[dict[str, Any]]:
        """JSON-ready rows (Python floats and bools)."""
        return json.loads(self.features.to_json(orient="records"))


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str] | None = None,
    thresholds: dict[str, float] | float = DEFAULT_THRESHOLD,
) -> DriftReport:
    """PSI and JS distance of each feature (default: the columns both frames share).

    A feature drifts when its PSI exceeds its threshold; features missing from a ``thresholds``
    dict use ``DEFAULT_THRESHOLD``.
    """
    names = list(features) if features is not None else [name for name in reference.columns if name in current]
    rows = []
    for name in names:
        shares = binned_distributions(reference[name], current[name])
        psi = population_stability_index(shares.reference, shares.current)
        threshold = thresholds.get(name, DEFAULT_THRESHOLD) if isinstance(thresholds, dict) else thresholds
        js = js_distance(shares.reference, shares.current)
        rows.append(
            {
                "feature": name,
                "kind": shares.kind,
                "psi": psi,
                "js": js,
                "threshold": threshold,
                "drifted": psi > threshold,
            }
        )
    frame = pd.DataFrame(rows, columns=["feature", "kind", "psi", "js", "threshold", "drifted"])
    return DriftReport(frame.astype({"drifted": bool}), len(reference), len(current))


def interaction_features(interactions: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Per-interaction features for drift checks: who interacted, with what, and when.

    Columns: popularity_bucket (⌊log2 popularity_rank⌋ of the item, so the head is resolved finely
    and the long tail coarsely), release_year (when the items have one), the user's segment columns
    (``user_segment_columns``: MovieLens' activity_level, age_bucket, gender and occupation),
    hour_of_day and day_of_week (0 = Monday, UTC).
    """
    return _event_features(interactions["user_id"], interactions["item_id"], interactions["timestamp"], users, items)


def serving_features(serving_log: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """``interaction_features`` columns for served recommendations, one row per (request, served item).

    User features describe the requesting user (missing for users outside the catalog), item
    features the recommended item; ``fallback`` marks rows answered without the model (segment or
    popularity). A request that returned no items keeps one row with missing item features.
    """
    served = serving_log.explode("item_ids", ignore_index=True)
    item_ids = served["item_ids"]
    if items["item_id"].dtype.kind in "iu":  # exploded integer ids come back as objects
        item_ids = pd.to_numeric(item_ids)
    features = _event_features(served["user_id"], item_ids, served["served_at"], users, items)
    return features.assign(fallback=served["source"].isin(FALLBACK_SOURCES).to_numpy())


def _event_features(
    user_ids: pd.Series, item_ids: pd.Series, timestamps: pd.Series, users: pd.DataFrame, items: pd.DataFrame
) -> pd.DataFrame:
    user = users.set_index("user_id").reindex(user_ids.to_numpy())
    item = items.set_index("item_id").reindex(item_ids.to_numpy())
    # Naive timestamps are UTC; serving logs carry +00:00, with or without fractional seconds.
    when = pd.to_datetime(timestamps, utc=True, format="ISO8601")
    columns: dict[str, Any] = {"popularity_bucket": np.floor(np.log2(item["popularity_rank"].to_numpy("float64")))}
    if "release_year" in items:  # only datasets whose contract declares an item date have one
        columns["release_year"] = item["release_year"].to_numpy("float64")
    columns.update({name: user[name].to_numpy(object) for name in user_segment_columns(users)})
    columns.update(hour_of_day=when.dt.hour.to_numpy(), day_of_week=when.dt.dayofweek.to_numpy())
    return pd.DataFrame(columns)


def user_segment_columns(users: pd.DataFrame) -> list[str]:
    """The user table's categorical columns with few enough values to be segments, whatever the
    dataset contract named them (MovieLens: activity_level, age_bucket, gender, occupation)."""
    ordered = sorted(users.columns, key=lambda c: c != "activity_level")  # activity first, then as stored
    text = [c for c in ordered if c != "user_id" and users[c].dtype == object]
    return [
        c
        for c in text
        if users[c].map(lambda v: isinstance(v, str) or v is None).all() and users[c].nunique() <= MAX_SEGMENT_VALUES
    ]


def read_serving_log(directory: Path) -> pd.DataFrame:
    """All served requests logged in the landed files under ``directory``, in file-name order."""
    records = [
        json.loads(line)
        for path in sorted(directory.glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
        # A line without its newline may still be being written by the service.
        if line.endswith("\n") and line.strip()
    ]
    return pd.DataFrame.from_records(records)
