"""Train any registered recommender on a frozen dataset and save it with its provenance."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from recs_platform.evaluation.evaluate import evaluate
from recs_platform.models.base import RECOMMENDERS, Logger, Recommender, load_recommender
from recs_platform.validation.datasets import DatasetVersion
from recs_platform.versioning import code_version

TRAIN = "train"
# The chosen configuration refit on train and validation together: once hyperparameters (and
# epoch counts) are fixed, validation data is training data (Dacrema et al., RecSys 2019).
TRAIN_AND_VALID = "train+valid"


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

    def load(self) -> Recommender:
        return load_recommender(Path(self.path))


def config_hash(recommender: str, params: dict[str, Any]) -> str:
    payload = json.dumps({"recommender": recommender, "params": params}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:10]


def training_rows(tables: dict[str, pd.DataFrame], trained_on: str) -> pd.DataFrame:
    """The interactions a model ``trained_on`` the given splits learned from."""
    if trained_on == TRAIN:
        return tables["train"]
    if trained_on == TRAIN_AND_VALID:
        return pd.concat([tables["train"], tables["valid"]], ignore_index=True)
    raise ValueError(f"trained_on must be {TRAIN!r} or {TRAIN_AND_VALID!r}, got {trained_on!r}")


def fit_recommender(
    recommender: str,
    params: dict[str, Any],
    rows: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    valid: pd.DataFrame | None = None,
    log: Logger | None = None,
) -> tuple[Recommender, float]:
    """A new ``recommender`` fit on ``rows`` with the dataset's catalogue and feature tables
    (``valid`` for early stopping), and the fit's wall seconds."""
    if recommender not in RECOMMENDERS:
        raise KeyError(f"unknown recommender {recommender!r}; known: {sorted(RECOMMENDERS)}")
    model = RECOMMENDERS[recommender](**params)
    started = time.perf_counter()
    model.fit(
        rows, catalog_items=tables["items"].item_id, valid=valid, log=log, users=tables["users"], items=tables["items"]
    )
    return model, time.perf_counter() - started


def train(
    recommender: str,
    params: dict[str, Any],
    dataset: DatasetVersion,
    artifacts_root: Path,
    log: Logger | None = None,
    trained_on: str = TRAIN,
) -> ModelArtifact:
    """Fit ``recommender`` on the dataset's train split and save it with its provenance.

    On ``TRAIN`` the validation split drives early stopping and is scored afterwards; on
    ``TRAIN_AND_VALID`` both splits are training data and nothing is validated. The artifact
    directory is keyed by data version, config and splits, so a rerun overwrites the same
    artifact instead of accumulating copies.
    """
    tables = dataset.load()
    refit = trained_on == TRAIN_AND_VALID
    rows = training_rows(tables, trained_on)
    model, fit_seconds = fit_recommender(recommender, params, rows, tables, None if refit else tables["valid"], log)
    version = code_version()
    model.metadata.update(
        data_version=dataset.version,
        code_version=version,
        config={"recommender": recommender, "params": model.params},
        trained_on=trained_on,
        fit_seconds=round(fit_seconds, 3),
    )
    suffix = "-refit" if refit else ""
    path = artifacts_root / recommender / f"{dataset.version}-{config_hash(recommender, model.params)}{suffix}"
    model.save(path)
    return ModelArtifact(
        recommender=recommender,
        path=str(path),
        data_version=dataset.version,
        code_version=version,
        params=model.params,
        is_learned=model.is_learned,
        fit_seconds=fit_seconds,
        metadata=dict(model.metadata),
        trained_on=trained_on,
        valid={} if refit else evaluate(model, tables["valid"], k=10).summary,
    )
