"""Where the platform keeps its files, derived from one home directory.

``RECS_HOME`` chooses the home, so tests, CI and production point the same code at different
storage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = Path("var")


@dataclass(frozen=True)
class PlatformPaths:
    """The platform's storage layout under one home directory."""

    home: Path

    @classmethod
    def from_env(cls) -> PlatformPaths:
        return cls(Path(os.environ.get("RECS_HOME", DEFAULT_HOME)).resolve())

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def datasets(self) -> Path:
        return self.home / "datasets"

    @property
    def artifacts(self) -> Path:
        return self.home / "artifacts"

    @property
    def evaluations(self) -> Path:
        return self.home / "evaluations"

    @property
    def bentoml_home(self) -> Path:
        return self.home / "bentoml"

    @property
    def registry(self) -> Path:
        """Aliases over bundle tags (champion, challengers) and the history of their moves."""
        return self.home / "registry"

    @property
    def aliases(self) -> Path:
        """The file serving polls: which bundle each alias names."""
        return self.registry / "aliases.json"

    @property
    def logs(self) -> Path:
        """Full logs of the command line's graph runs and of the demo's servers."""
        return self.home / "logs"

    @property
    def serving_logs(self) -> Path:
        return self.landing / "serving_logs"

    @property
    def online(self) -> Path:
        """The online store: snapshots of users' current state and the pointer to the newest."""
        return self.home / "online"

    @property
    def serving_status(self) -> Path:
        """One status file per serving process: the tag it serves, the tag the champion names."""
        return self.home / "serving"

    @property
    def batch_recommendations(self) -> Path:
        """Precomputed top-k lists, one Parquet file per bundle tag."""
        return self.home / "batch"

    @property
    def dbt_targets(self) -> Path:
        """dbt's target folders: one per invocation while it runs, and the newest parse state."""
        return self.home / "dbt"

    @property
    def experiments(self) -> Path:
        """Every sweep configuration of every run and the test metrics of the chosen models."""
        return self.home / "experiments"
