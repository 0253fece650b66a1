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
    def production_pointer(self) -> Path:
        return self.home / "registry" / "production.json"

    @property
    def logs(self) -> Path:
        """Full logs of the command line's graph runs and of the demo's servers."""
        return self.home / "logs"

    @property
    def serving_logs(self) -> Path:
        return self.landing / "serving_logs"
