"""Train any registered recommender on a frozen dataset and save it with its provenance.

Training sits above evaluation: the held-out score that drives early stopping is computed by
the same evaluation code as every report, on the one metric the platform is configured with.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from recs_platform.artifacts import TRAIN, TRAIN_AND_VALID, DatasetVersion, ModelArtifact, training_rows
from recs_platform.evaluation.evaluate import GroundTruth, evaluate
from recs_platform.evaluation.metrics import DEFAULT_METRIC, parse_metric
from recs_platform.evaluation.sequential import evaluate_next_item, leave_one_out_split
from recs_platform.models.base import RECOMMENDERS, FitCache, Logger, Recommender, Validator, new_recommender
from recs_platform.versioning import code_version

# Validation scores a seeded sample of at most this many users. It only chooses among
# configurations and epochs, every model on the same users, and a pass over all users ranks the
# whole catalogue for each (60-90 s per pass at 200k users x 50k items).
MAX_VALIDATION_USERS = 50_000


@dataclass(frozen=True)
class SharedWork:
    """What the fits on one dataset share: its tables, the validation ground truth prepared once
    (``MAX_VALIDATION_USERS`` of its users at most), and for a sweep the ``FitCache`` of work that
    fits on the same training rows reuse."""

    tables: dict[str, pd.DataFrame]
    valid: GroundTruth
    cache: FitCache | None = None

    @classmethod
    def load(cls, dataset: DatasetVersion, sweep: bool = False) -> SharedWork:
        """The dataset's shared work; ``sweep`` adds a fit cache for several configurations."""
        tables = dataset.load()
        valid = GroundTruth.of(tables["valid"]).sample_users(MAX_VALIDATION_USERS)
        return cls(tables, valid, FitCache() if sweep else None)

    @property
    def validation_note(self) -> str:
        """How many validation users the fits are scored on, and of how many."""
        total = self.tables["valid"].user_id.nunique()
        scored = len(self.valid.users)
        return f"validation on {scored:,} users" + (f" (a seeded sample of {total:,})" if scored < total else "")


def config_hash(recommender: str, params: dict[str, Any]) -> str:
    payload = json.dumps({"recommender": recommender, "params": params}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:10]


def validator(model: Recommender, valid: pd.DataFrame | GroundTruth, metric: str = DEFAULT_METRIC) -> Validator:
    """Every metric at ``metric``'s cutoff of ``model`` on ``valid`` (training items masked), for
    early stopping; the ranking dominates the cost, so the other metrics come almost free."""
    return Validator(metric, lambda: evaluate(model, valid, k=parse_metric(metric)[1]).summary)


def fit_recommender(
    recommender: str,
    params: dict[str, Any],
    rows: pd.DataFrame,
    tables: Mapping[str, pd.DataFrame],
    valid: pd.DataFrame | GroundTruth | None = None,
    log: Logger | None = None,
    metric: str = DEFAULT_METRIC,
    cache: FitCache | None = None,
) -> tuple[Recommender, float]:
    """A new ``recommender`` fit on ``rows`` with the dataset's catalogue and feature tables
    (``valid`` and ``metric`` for early stopping; ``cache`` shared with other fits on the same
    rows), and the fit's wall seconds."""
    model = new_recommender(recommender, params)
    truth = None if valid is None else GroundTruth.of(valid)  # prepared once, scored every validation
    validate = validator(model, truth, metric) if truth is not None and len(truth.users) else None
    started = time.perf_counter()
    model.fit(
        rows,
        catalog_items=tables["items"].item_id,
        validate=validate,
        log=log,
        users=tables["users"],
        items=tables["items"],
        impressions=tables.get("impressions"),
        cache=cache,
    )
    return model, time.perf_counter() - started


def with_dataset_defaults(recommender: str, params: dict[str, Any], dataset: DatasetVersion) -> dict[str, Any]:
    """``params`` plus the feature columns the dataset's contract names (``user_features``,
    ``item_features``, ``segment_columns``) for the ones the recommender declares and the sweep
    left unset."""
    declared = RECOMMENDERS[recommender].Params.model_fields
    defaults = dataset.manifest().get("model_defaults", {})
    return {**{name: value for name, value in defaults.items() if name in declared}, **params}


def train(
    recommender: str,
    params: dict[str, Any],
    dataset: DatasetVersion,
    artifacts_root: Path,
    log: Logger | None = None,
    trained_on: str = TRAIN,
    metric: str = DEFAULT_METRIC,
    shared: SharedWork | None = None,
) -> ModelArtifact:
    """Fit ``recommender`` on the dataset's train split and save it with its provenance.

    On ``TRAIN`` the validation split drives early stopping on ``metric`` and is scored
    afterwards (every metric at ``metric``'s cutoff); on ``TRAIN_AND_VALID`` both splits are
    training data and nothing is validated. The artifact directory is keyed by data version,
    config and splits, so a rerun overwrites the same artifact instead of accumulating copies.
    ``shared`` (a sweep's, on ``TRAIN``) supplies the tables, validation ground truth and fit cache.
    Raises ``CannotFit`` when the model does not fit its resources.
    """
    shared = shared or SharedWork.load(dataset)
    tables = shared.tables
    params = with_dataset_defaults(recommender, params, dataset)
    refit = trained_on == TRAIN_AND_VALID
    rows = training_rows(tables, trained_on)
    model, fit_seconds = fit_recommender(
        recommender, params, rows, tables, None if refit else shared.valid, log, metric, shared.cache
    )
    version = code_version()
    chosen = model.params.model_dump(mode="json")
    model.metadata.update(
        data_version=dataset.version,
        code_version=version,
        config={"recommender": recommender, "params": chosen},
        trained_on=trained_on,
        fit_seconds=round(fit_seconds, 3),
    )
    if not refit:
        model.metadata["validation_users"] = len(shared.valid.users)
    suffix = "-refit" if refit else ""
    path = artifacts_root / recommender / f"{dataset.version}-{config_hash(recommender, chosen)}{suffix}"
    model.save(path)
    return ModelArtifact(
        recommender=recommender,
        path=str(path),
        data_version=dataset.version,
        code_version=version,
        params=chosen,
        is_learned=model.is_learned,
        fit_seconds=fit_seconds,
        metadata=dict(model.metadata),
        trained_on=trained_on,
        valid={} if refit else model.validation or evaluate(model, shared.valid, k=parse_metric(metric)[1]).summary,
    )


def compare_next_item(
    tables: Mapping[str, pd.DataFrame],
    recommenders: Mapping[str, dict[str, Any]],
    k: int = 10,
    log: Logger | None = None,
    metric: str = DEFAULT_METRIC,
) -> pd.DataFrame:
    """Fit each ``{name: params}`` on the leave-one-out split of all of a dataset's interactions
    (validation item for early stopping on ``metric``) and score it on the next item; best NDCG first."""
    interactions = pd.concat([tables[name] for name in ("train", "valid", "test")], ignore_index=True)
    split = leave_one_out_split(interactions)
    rows = []
    for name, params in recommenders.items():
        model, fit_seconds = fit_recommender(name, params, split["train"], tables, split["valid"], log, metric)
        rows.append({"recommender": name, "fit_seconds": fit_seconds, **evaluate_next_item(model, split, k).summary})
        if log is not None:
            log(f"next-item {name}: {rows[-1]}")
    return pd.DataFrame(rows).sort_values(f"ndcg@{k}", ascending=False).reset_index(drop=True)
