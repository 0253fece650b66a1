"""Train any registered recommender on a frozen dataset and save it with its provenance."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recs_platform.models.base import RECOMMENDERS, Logger, Recommender, load_recommender
from recs_platform.validation.datasets import DatasetVersion
from recs_platform.versioning import code_version


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

    def load(self) -> Recommender:
        return load_recommender(Path(self.path))


def config_hash(recommender: str, params: dict[str, Any]) -> str:
    payload = json.dumps({"recommender": recommender, "params": params}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:10]


def train(
    recommender: str,
    params: dict[str, Any],
    dataset: DatasetVersion,
    artifacts_root: Path,
    log: Logger | None = None,
) -> ModelArtifact:
    """Fit ``recommender`` on the dataset's train split (validation for early stopping) and save.

    The artifact directory is keyed by data version and config, so a rerun overwrites the
    same artifact instead of accumulating copies.
    """
    if recommender not in RECOMMENDERS:
        raise KeyError(f"unknown recommender {recommender!r}; known: {sorted(RECOMMENDERS)}")
    tables = dataset.load()
    model = RECOMMENDERS[recommender](**params)
    started = time.perf_counter()
    model.fit(
        tables["train"],
        catalog_items=tables["items"].item_id,
        valid=tables["valid"],
        log=log,
        users=tables["users"],
        items=tables["items"],
    )
    fit_seconds = time.perf_counter() - started
    version = code_version()
    model.metadata.update(
        data_version=dataset.version,
        code_version=version,
        config={"recommender": recommender, "params": model.params},
        fit_seconds=round(fit_seconds, 3),
    )
    path = artifacts_root / recommender / f"{dataset.version}-{config_hash(recommender, model.params)}"
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
    )
