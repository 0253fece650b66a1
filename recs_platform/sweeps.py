"""Hyperparameter sweeps from configuration: expand grids, train each configuration, pick on validation."""

import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from recs_platform.evaluation.evaluate import evaluate
from recs_platform.models.base import Logger
from recs_platform.training import ModelArtifact, train
from recs_platform.validation.datasets import DatasetVersion

SELECTION_METRIC = "ndcg@10"


@dataclass(frozen=True)
class SweepConfig:
    """One configuration of one recommender; ``config_id`` is stable and usable as a step key."""

    recommender: str
    config_id: str
    params: dict[str, Any]


@dataclass(frozen=True)
class SweepResult:
    config: SweepConfig
    artifact: ModelArtifact
    valid: dict[str, float]


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


def load_sweeps(path: Path) -> dict[str, list[SweepConfig]]:
    """Read ``{recommender: {params: {...}, grid: {name: [values]}}}`` from a YAML file."""
    spec = yaml.safe_load(path.read_text()) or {}
    sweeps = {}
    for recommender, entry in spec.items():
        entry = entry or {}
        unknown = set(entry) - {"params", "grid"}
        if unknown:
            raise ValueError(f"{path}: {recommender} has unknown keys {sorted(unknown)}; use params and grid")
        sweeps[recommender] = expand_grid(recommender, entry.get("params") or {}, entry.get("grid") or {})
    return sweeps


def train_and_validate(
    config: SweepConfig, dataset: DatasetVersion, artifacts_root: Path, log: Logger | None = None
) -> SweepResult:
    """Train one configuration and score it on validation only (test is never looked at here)."""
    artifact = train(config.recommender, config.params, dataset, artifacts_root, log=log)
    valid = evaluate(artifact.load(), dataset.load()["valid"], k=10).summary
    return SweepResult(config, artifact, valid)


def best(results: Sequence[SweepResult], metric: str = SELECTION_METRIC) -> SweepResult:
    """The configuration with the highest validation ``metric`` (first one on ties)."""
    return max(results, key=lambda result: result.valid[metric])


def sweep_table(results: Sequence[SweepResult], metric: str = SELECTION_METRIC) -> pd.DataFrame:
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
