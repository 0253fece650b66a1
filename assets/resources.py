"""Resources, chosen per environment in one place (``RECS_ENV``: dev, ci or prod)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field, field_validator

from assets.dbt_project import DBT_EXECUTABLE, LocalDbtCliResource, dbt_project
from assets.executors import step_storage
from recs_platform.data import warehouse
from recs_platform.data.contract import DatasetContract, contract_for_home
from recs_platform.deployment import SHADOW_MARGIN, SHADOW_MIN_REQUESTS
from recs_platform.evaluation.metrics import DEFAULT_METRIC, parse_metric
from recs_platform.registry import CHALLENGER, CHAMPION, ModelRegistry
from recs_platform.serving.verify import verify_in_subprocess
from recs_platform.settings import PlatformPaths


class StorageResource(dg.ConfigurableResource):
    """The platform's home directory; every other path derives from it."""

    home: str = Field(description="Root folder for landing files, datasets, artifacts and evaluations.")

    @property
    def paths(self) -> PlatformPaths:
        return PlatformPaths(Path(self.home))

    def contract(self) -> DatasetContract:
        """The dataset contract of this home (``RECS_CONTRACT``, the imported one, or MovieLens)."""
        return contract_for_home(Path(self.home))


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse. Connections are short and retry while another process writes."""

    path: str = Field(description="DuckDB file holding the raw schema and the dbt models.")
    lock_timeout_s: float = Field(default=300.0, description="How long to wait for the write lock.")

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.connect(Path(self.path), read_only=read_only, timeout_s=self.lock_timeout_s) as connection:
            yield connection


class RegistryResource(dg.ConfigurableResource):
    """The BentoML model store, the aliases over its tags and their history. An alias only moves to
    a bundle that loads and answers smoke requests in a separate process."""

    store_dir: str = Field(description="BentoML model store folder (BENTOML_HOME/models).")
    registry_dir: str = Field(description="Folder of aliases.json (champion, challengers) and history.jsonl.")

    def registry(self) -> ModelRegistry:
        return ModelRegistry(Path(self.store_dir), Path(self.registry_dir), verifier=verify_in_subprocess)


class SplitSettings(dg.ConfigurableResource):
    """The evaluation protocol, passed to dbt as variables."""

    protocol: str = Field(default="random_per_user", description="random_per_user (RecBole default) or temporal.")
    seed: int = Field(default=2020, description="Seed of the per-user shuffle.")
    valid_ratio: float = Field(default=0.1, description="Per-user validation share (random_per_user).")
    test_ratio: float = Field(default=0.1, description="Per-user test share (random_per_user).")
    temporal_valid_quantile: float = Field(default=0.8, description="Time quantile where validation starts.")
    temporal_test_quantile: float = Field(default=0.9, description="Time quantile where test starts.")

    def dbt_vars(self) -> dict[str, object]:
        return {
            "split_protocol": self.protocol,
            "split_seed": self.seed,
            "valid_ratio": self.valid_ratio,
            "test_ratio": self.test_ratio,
            "temporal_valid_quantile": self.temporal_valid_quantile,
            "temporal_test_quantile": self.temporal_test_quantile,
        }


class RawHealthSettings(dg.ConfigurableResource):
    """Alarm thresholds for the raw layer."""

    max_quarantine_rate: float = Field(default=0.05, description="Highest acceptable quarantined share per file.")
    freshness_window_hours: float = Field(default=24.0, description="Alarm when no events landed for this long.")


class DriftSettings(dg.ConfigurableResource):
    """When a feature counts as drifted."""

    psi_threshold: float = Field(default=0.2, description="PSI above which a feature has drifted.")
    newest_days: float = Field(default=7.0, description="How many of the latest days count as the newest data.")


class GateSettings(dg.ConfigurableResource):
    """The platform's one metric, and what a candidate must reach on it before it may replace the champion."""

    metric: str = Field(
        default=DEFAULT_METRIC,
        description="<name>@<k> that drives early stopping, sweep selection, the candidate choice, the gates and "
        "the reports' ranking (e.g. ndcg@10, recall@20).",
    )
    min_metric: float = Field(default=0.2, description="Absolute floor for the candidate's test metric.")
    champion_tolerance: float = Field(
        default=0.005, description="How far below the champion (re-scored on the same test set) a candidate may be."
    )

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        parse_metric(metric)
        return metric


class PromotionSettings(dg.ConfigurableResource):
    """What a deployment that passed its gates moves."""

    promote_as: str = Field(
        default="champion",
        description="'champion' serves users at once; 'challenger' (or 'challenger-<name>') first sees "
        "mirrored shadow traffic, and a person or the shadow gate promotes it.",
    )

    shadow_gate: bool = Field(
        default=False, description="Promoting a challenger requires its shadow comparison to pass the shadow gate."
    )
    shadow_margin: float = Field(
        default=SHADOW_MARGIN, description="How much lower the challenger's shadow NDCG may be."
    )
    shadow_min_requests: int = Field(
        default=SHADOW_MIN_REQUESTS, description="Fewest shadow requests with closed windows to judge."
    )

    @field_validator("promote_as")
    @classmethod
    def _known_alias(cls, alias: str) -> str:
        if alias != CHAMPION and not alias.startswith(CHALLENGER):
            raise ValueError(f"promote_as must be {CHAMPION!r} or start with {CHALLENGER!r}, got {alias!r}")
        return alias


class EngagementSettings(dg.ConfigurableResource):
    """When the engagement alarm fires (and retrains)."""

    margin: float = Field(default=0.2, description="Relative drop of the consumption rate below its baseline.")
    min_requests: int = Field(default=100, description="Fewest requests on a day for its rate to count.")
    baseline_days: int = Field(default=7, description="Mature days before the newest one that form the baseline.")


CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def sweeps_paths(env: str | None = None) -> list[Path]:
    """The recommender sweep folders or files: ``RECS_SWEEPS`` (``:``-separated) if set, else the
    environment's default folder."""
    env = env or os.environ.get("RECS_ENV", "dev")
    if os.environ.get("RECS_SWEEPS"):
        return [Path(part) for part in os.environ["RECS_SWEEPS"].split(os.pathsep) if part]
    return [CONFIG_DIR / ("recommenders.ci" if env == "ci" else "recommenders")]


# Environment variables that override a setting's declared default: (variable, setting, field).
ENV_OVERRIDES = (
    ("RECS_SPLIT_PROTOCOL", "split", "protocol"),
    ("RECS_FRESHNESS_WINDOW_HOURS", "raw_health", "freshness_window_hours"),
    ("RECS_MAX_QUARANTINE_RATE", "raw_health", "max_quarantine_rate"),
    ("RECS_DRIFT_PSI", "drift", "psi_threshold"),
    ("RECS_GATE_METRIC", "gate", "metric"),
    ("RECS_GATE_MIN_METRIC", "gate", "min_metric"),
    ("RECS_PROMOTE_AS", "promotion", "promote_as"),
    ("RECS_SHADOW_GATE", "promotion", "shadow_gate"),
    ("RECS_SHADOW_MARGIN", "promotion", "shadow_margin"),
    ("RECS_SHADOW_MIN_REQUESTS", "promotion", "shadow_min_requests"),
    ("RECS_ENGAGEMENT_MARGIN", "engagement", "margin"),
    ("RECS_ENGAGEMENT_MIN_REQUESTS", "engagement", "min_requests"),
)
# The production floor is stricter than the declared default.
ENV_DEFAULTS = {"prod": {"gate": {"min_metric": 0.25}}}


def _settings(name: str, env: str) -> dict[str, str | float]:
    """Field values of setting ``name`` that the environment chooses; the rest keep their defaults."""
    values: dict[str, str | float] = dict(ENV_DEFAULTS.get(env, {}).get(name, {}))
    for variable, setting, field in ENV_OVERRIDES:
        if setting == name and variable in os.environ:
            values[field] = os.environ[variable]
    return values


def resources_for(env: str | None = None, home: Path | None = None) -> dict[str, object]:
    """All resources for one environment; the only place where environments differ."""
    env = env or os.environ.get("RECS_ENV", "dev")
    paths = PlatformPaths(home.resolve()) if home else PlatformPaths.from_env()
    # dbt reads the warehouse path from this variable (see dbt_project/profiles.yml).
    os.environ["RECS_WAREHOUSE_PATH"] = str(paths.warehouse)
    return {
        "storage": StorageResource(home=str(paths.home)),
        "warehouse": WarehouseResource(path=str(paths.warehouse)),
        "dbt": LocalDbtCliResource(
            project_dir=dbt_project,
            dbt_executable=DBT_EXECUTABLE,
            target=os.environ.get("DBT_TARGET", "prod" if env == "prod" else "local"),
        ),
        "registry": RegistryResource(store_dir=str(paths.bentoml_home / "models"), registry_dir=str(paths.registry)),
        "split": SplitSettings(**_settings("split", env)),
        "raw_health": RawHealthSettings(**_settings("raw_health", env)),
        "drift": DriftSettings(**_settings("drift", env)),
        "gate": GateSettings(**_settings("gate", env)),
        "engagement": EngagementSettings(**_settings("engagement", env)),
        "promotion": PromotionSettings(**_settings("promotion", env)),
        # Step outputs through a shared folder when the executor (RECS_EXECUTOR) runs steps elsewhere.
        **({"io_manager": io_manager} if (io_manager := step_storage(paths.home)) else {}),
    }
