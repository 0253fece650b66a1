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
from recs_platform.models.base import CannotFit, InvalidParams, Logger
from recs_platform.training import SharedWork, train


class SweepFileError(ValueError):
    """A sweep file that names an unknown recommender, key or parameter, or gives a wrong type."""


@dataclass(frozen=True)
class SweepConfig:
    """One configuration of one recommender; ``config_id`` is stable and usable as a step key."""

    recommender: str
    config_id: str
    params: dict[str, Any]


# A dataset is large above either size: its sweeps use their ``large`` grid when they have one.
LARGE_CATALOGUE_ITEMS = 20_000
LARGE_TRAINING_ROWS = 500_000


@dataclass(frozen=True)
class Sweep:
    """Every configuration of one recommender, and whether the chosen one is refit on train+valid.

    ``large_configs`` (from the file's ``large`` section), when given, replace ``configs`` on a
    large dataset (``is_large``): fewer, cheaper configurations where each fit costs minutes.
    """

    recommender: str
    configs: list[SweepConfig]
    refit: bool = True
    large_configs: list[SweepConfig] | None = None

    def configs_for(self, dataset_rows: dict[str, int]) -> list[SweepConfig]:
        """The configurations to fit on a dataset with these table row counts (its manifest's)."""
        return self.large_configs if self.large_configs and is_large(dataset_rows) else self.configs


def is_large(dataset_rows: dict[str, int]) -> bool:
    """Whether a dataset (row counts per table) has a large catalogue or training log."""
    return dataset_rows.get("items", 0) > LARGE_CATALOGUE_ITEMS or dataset_rows.get("train", 0) > LARGE_TRAINING_ROWS


@dataclass(frozen=True)
class SweepResult:
    """One configuration's trained artifact, or why it could not be fitted (``skipped``)."""

    config: SweepConfig
    artifact: ModelArtifact | None
    skipped: str = ""

    @property
    def valid(self) -> dict[str, float]:
        return self.artifact.valid if self.artifact else {}

    @property
    def fit_seconds(self) -> float:
        return self.artifact.fit_seconds if self.artifact else 0.0


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


SWEEP_KEYS = {"params", "grid", "refit", "large"}


def load_sweeps(*paths: Path) -> dict[str, Sweep]:
    """Sweeps from folders with one ``<recommender>.yaml`` per recommender, or from YAML files with
    a section per recommender; a later path adds to or replaces the recommenders of earlier ones.

    Each entry holds ``params`` (fixed), ``grid`` ({name: [values]}), ``refit`` (default true) and
    optionally ``large`` ({params, grid}): the configurations for a large dataset instead.
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
    configs = _configs(path, recommender, entry)
    large = entry.get("large")
    if large is not None and (not isinstance(large, dict) or set(large) - {"params", "grid"}):
        raise SweepFileError(f"{path}: {recommender}'s large section takes only params and grid")
    large_configs = _configs(path, recommender, large) if large else None
    return Sweep(recommender, configs, refit=bool(entry.get("refit", True)), large_configs=large_configs)


def _configs(path: Path, recommender: str, entry: dict[str, Any]) -> list[SweepConfig]:
    configs = expand_grid(recommender, entry.get("params") or {}, entry.get("grid") or {})
    for config in configs:
        check_params(config.recommender, config.params, source=str(path))
    return configs


def check_params(recommender: str, params: dict[str, Any], source: str) -> None:
    """Raise ``SweepFileError`` naming ``source``, the recommender and each bad field."""
    try:
        RECOMMENDERS[recommender].Params.parse(recommender, params)
    except InvalidParams as error:
        raise SweepFileError(f"{source}: recommender {error}") from None


def fit_batches(recommender: str, configs: list[SweepConfig]) -> list[list[SweepConfig]]:
    """The configurations each training step fits: all together when the recommender shares work
    across fits (one Gram matrix and decomposition), otherwise one per step."""
    if RECOMMENDERS[recommender].shares_fit_work:
        return [configs]
    return [[config] for config in configs]


def train_and_validate(
    configs: Sequence[SweepConfig],
    dataset: DatasetVersion,
    artifacts_root: Path,
    log: Logger | None = None,
    metric: str = DEFAULT_METRIC,
) -> list[SweepResult]:
    """Train each configuration on train and score it on validation (test is never looked at here).

    The configurations share the loaded tables, the validation ground truth and a fit cache; one
    that cannot fit its resources is skipped with its reason instead of failing the sweep.
    """
    shared = SharedWork.load(dataset, sweep=len(configs) > 1)
    if log is not None:
        log(shared.validation_note)
    results = []
    for config in configs:
        try:
            artifact = train(
                config.recommender, config.params, dataset, artifacts_root, log, metric=metric, shared=shared
            )
        except CannotFit as error:
            results.append(SweepResult(config, None, skipped=str(error)))
            if log is not None:
                log(f"{config.config_id} skipped: {error}")
            continue
        results.append(SweepResult(config, artifact))
    return results


def refit(
    chosen: SweepResult, dataset: DatasetVersion, artifacts_root: Path, log: Logger | None = None
) -> ModelArtifact:
    """The chosen configuration trained on train+valid, carrying its validation metrics from selection.

    Models that stopped early train for the epoch count that was best on validation. A refit that
    cannot fit its resources (it has more rows than the chosen fit) keeps the fit on train.
    """
    params = dict(chosen.config.params)
    if "best_epoch" in chosen.artifact.metadata:
        params["epochs"] = chosen.artifact.metadata["best_epoch"]
    try:
        artifact = train(
            chosen.config.recommender, params, dataset, artifacts_root, log=log, trained_on=TRAIN_AND_VALID
        )
    except CannotFit as error:
        if log is not None:
            log(f"refit skipped, keeping the fit on train: {error}")
        return chosen.artifact
    return replace(artifact, valid=chosen.valid)


def best(results: Sequence[SweepResult], metric: str = DEFAULT_METRIC) -> SweepResult | None:
    """The fitted configuration with the highest validation ``metric`` (first one on ties); None
    when every configuration was skipped."""
    fitted = [result for result in results if result.artifact is not None]
    return max(fitted, key=lambda result: result.valid[metric]) if fitted else None


def sweep_table(results: Sequence[SweepResult], metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """One row per configuration: id, parameters, validation metrics, fit time, and when any were
    the reason a configuration was skipped and the share of items pruned to fit; best first."""
    rows = [
        {
            "config_id": r.config.config_id,
            "params": json.dumps(r.config.params, sort_keys=True),
            **{f"valid_{name}": value for name, value in r.valid.items()},
            "fit_seconds": round(r.fit_seconds, 2),
            **({"skipped": r.skipped} if r.skipped else {}),
            **({"pruned_item_share": r.artifact.metadata["pruned_item_share"]} if _pruned(r) else {}),
        }
        for r in results
    ]
    table = pd.DataFrame(rows)
    order = f"valid_{metric}"
    return (table.sort_values(order, ascending=False) if order in table else table).reset_index(drop=True)


def _pruned(result: SweepResult) -> bool:
    return result.artifact is not None and "pruned_item_share" in result.artifact.metadata
