"""Hyperparameter sweeps from configuration: expand grids, train each configuration, pick on
validation, then refit the chosen configuration on train and validation together."""

import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from recs_platform.artifacts import TRAIN_AND_VALID, DatasetVersion, ModelArtifact
from recs_platform.evaluation.metrics import DEFAULT_METRIC
from recs_platform.models import RECOMMENDERS
from recs_platform.models.base import InvalidParams, Logger
from recs_platform.training import train


class SweepFileError(ValueError):
    """A sweep file that names an unknown recommender, key or parameter, or gives a wrong type."""


@dataclass(frozen=True)
class SweepConfig:
    """One configuration of one recommender; ``config_id`` is stable and usable as a step key."""

    recommender: str
    config_id: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Sweep:
    """Every configuration of one recommender, and whether the chosen one is refit on train+valid."""

    recommender: str
    configs: list[SweepConfig]
    refit: bool = True


@dataclass(frozen=True)
class SweepResult:
    config: SweepConfig
    artifact: ModelArtifact

    @property
    def valid(self) -> dict[str, float]:
        return self.artifact.valid


def expand_grid(recommender: str, fixed: dict[str, Any], grid: dict[str, Sequence[Any]]) -> list[SweepConfig]:
    """Every combination of ``grid`` values on top of the ``fixed`` parameters."""
    names = sorted(grid)
    combinations = itertools.product(*(grid[name] for name in names)) if names else [()]
    configs = []
    for index, values in enumerate(combinations):
        params = {**fixed, **dict(zip(names, values, strict=True))}
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:6]
        configs.append(SweepConfig(recommender, f"c{index}_{digest}", params))
    return configs


SWEEP_KEYS = {"params", "grid", "refit"}


def load_sweeps(*paths: Path) -> dict[str, Sweep]:
    """Sweeps from folders with one ``<recommender>.yaml`` per recommender, or from YAML files with
    a section per recommender; a later path adds to or replaces the recommenders of earlier ones.

    Each entry holds ``params`` (fixed), ``grid`` ({name: [values]}) and ``refit`` (default true).
    """
    sweeps: dict[str, Sweep] = {}
    for path in paths:
        for recommender, (source, entry) in _entries(path).items():
            sweeps[recommender] = _sweep(source, recommender, entry or {})
    return sweeps


def _entries(path: Path) -> dict[str, tuple[Path, Any]]:
    """``{recommender: (the file it is defined in, its entry)}``."""
    if not path.is_dir():
        return {name: (path, entry) for name, entry in (yaml.safe_load(path.read_text()) or {}).items()}
    entries = {file.stem: (file, yaml.safe_load(file.read_text())) for file in sorted(path.glob("*.yaml"))}
    if not entries:
        raise SweepFileError(f"{path}: no <recommender>.yaml files")
    return entries


def _sweep(path: Path, recommender: str, entry: dict[str, Any]) -> Sweep:
    """One recommender's sweep, every configuration validated against the recommender's ``Params``."""
    if recommender not in RECOMMENDERS:
        raise SweepFileError(f"{path}: unknown recommender {recommender!r}; known: {sorted(RECOMMENDERS)}")
    unknown = set(entry) - SWEEP_KEYS
    if unknown:
        raise SweepFileError(f"{path}: {recommender} has unknown keys {sorted(unknown)}; use {sorted(SWEEP_KEYS)}")
    configs = expand_grid(recommender, entry.get("params") or {}, entry.get("grid") or {})
    for config in configs:
        check_params(config.recommender, config.params, source=str(path))
    return Sweep(recommender, configs, refit=bool(entry.get("refit", True)))


def check_params(recommender: str, params: dict[str, Any], source: str) -> None:
    """Raise ``SweepFileError`` naming ``source``, the recommender and each bad field."""
    try:
        RECOMMENDERS[recommender].Params.parse(recommender, params)
    except InvalidParams as error:
        raise SweepFileError(f"{source}: recommender {error}") from None


def train_and_validate(
    config: SweepConfig,
    dataset: DatasetVersion,
    artifacts_root: Path,
    log: Logger | None = None,
    metric: str = DEFAULT_METRIC,
) -> SweepResult:
    """Train one configuration on train and score it on validation (test is never looked at here)."""
    artifact = train(config.recommender, config.params, dataset, artifacts_root, log=log, metric=metric)
    return SweepResult(config, artifact)


def refit(
    chosen: SweepResult, dataset: DatasetVersion, artifacts_root: Path, log: Logger | None = None
) -> ModelArtifact:
    """The chosen configuration trained on train+valid, carrying its validation metrics from selection.

    Models that stopped early train for the epoch count that was best on validation.
    """
    params = dict(chosen.config.params)
    if "best_epoch" in chosen.artifact.metadata:
        params["epochs"] = chosen.artifact.metadata["best_epoch"]
    artifact = train(chosen.config.recommender, params, dataset, artifacts_root, log=log, trained_on=TRAIN_AND_VALID)
    return replace(artifact, valid=chosen.valid)


def best(results: Sequence[SweepResult], metric: str = DEFAULT_METRIC) -> SweepResult:
    """The configuration with the highest validation ``metric`` (first one on ties)."""
    return max(results, key=lambda result: result.valid[metric])


def sweep_table(results: Sequence[SweepResult], metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """One row per configuration: id, parameters, validation metrics, fit time; best first."""
    rows = [
        {
            "config_id": r.config.config_id,
            "params": json.dumps(r.config.params, sort_keys=True),
            **{f"valid_{name}": value for name, value in r.valid.items()},
            "fit_seconds": round(r.artifact.fit_seconds, 2),
        }
        for r in results
    ]
    return pd.DataFrame(rows).sort_values(f"valid_{metric}", ascending=False).reset_index(drop=True)
