"""Value types passed between the library's layers: frozen dataset versions and trained model artifacts.

They hold paths and provenance only, so every layer can exchange them without importing the
layer that produced them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

TABLES = ("train", "valid", "test", "users", "items", "impressions")
# Served items with their attributed outcome (from the serving logs); empty before anything was
# served, and absent from dataset versions frozen before impressions were part of the dataset.
MANIFEST = "manifest.json"

TRAIN = "train"
# The chosen configuration refit on train and validation together: once hyperparameters (and
# epoch counts) are fixed, validation data is training data (Dacrema et al., RecSys 2019).
TRAIN_AND_VALID = "train+valid"


@dataclass(frozen=True)
class DatasetVersion:
    """A pointer to one frozen dataset version on disk."""

    version: str
    path: str

    def load(self) -> dict[str, pd.DataFrame]:
        tables = {}
        for name in TABLES:
            path = Path(self.path) / f"{name}.parquet"
            tables[name] = pd.read_parquet(path) if path.exists() else no_impressions()
        return tables

    def manifest(self) -> dict[str, Any]:
        return json.loads((Path(self.path) / MANIFEST).read_text())


def no_impressions(user_dtype: str = "int64", item_dtype: str = "int64") -> pd.DataFrame:
    """The impressions table of a dataset that has none (``object`` dtypes for string ids)."""
    return pd.DataFrame(
        {"user_id": pd.Series(dtype=user_dtype), "item_id": pd.Series(dtype=item_dtype),
         "served_at": pd.Series(dtype="datetime64[ns]"), "position": pd.Series(dtype="int64"),
         "consumed": pd.Series(dtype=bool)}
    )  # fmt: skip


@dataclass(frozen=True)
class ModelArtifact:
    """A trained recommender on disk, with what it was trained on and how."""

    recommender: str
    path: str
    data_version: str
    code_version: str
    params: dict[str, Any]
    is_learned: bool
    fit_seconds: float
    metadata: dict[str, Any] = field(default_factory=dict)
    trained_on: str = TRAIN
    # Validation metrics of the configuration as fit on train alone: what selection and the
    # reports compare, since a model refit on train+valid has seen the validation items.
    valid: dict[str, float] = field(default_factory=dict)


def training_rows(tables: dict[str, pd.DataFrame], trained_on: str) -> pd.DataFrame:
    """The interactions a model ``trained_on`` the given splits learned from."""
    if trained_on == TRAIN:
        return tables["train"]
    if trained_on == TRAIN_AND_VALID:
        return pd.concat([tables["train"], tables["valid"]], ignore_index=True)
    raise ValueError(f"trained_on must be {TRAIN!r} or {TRAIN_AND_VALID!r}, got {trained_on!r}")
