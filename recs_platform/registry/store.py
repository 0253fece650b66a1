"""The model registry: bundles in the BentoML model store, aliases over their tags, and the
append-only history of every alias move.

``champion`` names the bundle users are served; aliases starting with ``challenger`` name bundles
that see mirrored (shadow) traffic. In the spirit of MLflow's aliases, moving an alias is the only
way a bundle starts or stops serving: the alias file (``aliases.json``) is replaced atomically, so
a serving process that polls it swaps models without a restart, and each move appends one line to
``history.jsonl`` saying which tag, when, why and by whom. A lock file serialises movers (a
deployment run and an admin action may act at once).

Nothing unverified is promoted: given a ``verifier`` (the platform's registries get
``recs_platform.serving.verify.verify_in_subprocess``), an alias only moves to a tag whose bundle
loads and answers smoke requests; a refusal raises ``BundleRefused`` and appends a line to
``refusals.jsonl``.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

import bentoml
from bentoml._internal.models.model import ModelStore

from recs_platform.files import write_json_atomically
from recs_platform.registry.bundle import ServingBundle

BUNDLE_NAME = "recs-recommender"
CHAMPION = "champion"
CHALLENGER = "challenger"
ALIASES_FILE = "aliases.json"
HISTORY_FILE = "history.jsonl"
REFUSALS_FILE = "refusals.jsonl"
# Given a bundle's directory and tag: None when it may serve, else one sentence saying why not.
Verifier = Callable[[Path, str], str | None]


class BundleRefused(RuntimeError):
    """Verification refused to point an alias at a bundle; the message says why in one sentence."""


@dataclass
class AliasRecord:
    """Where one alias points, and how it got there."""

    alias: str
    tag: str
    set_at: str
    reason: str
    by: str
    metrics: dict[str, float] = field(default_factory=dict)
    shadow_share: float = 1.0  # for challengers: the share of requests mirrored to them

    @property
    def is_challenger(self) -> bool:
        return self.alias.startswith(CHALLENGER)


@dataclass
class HistoryEntry:
    """One alias move: ``tag`` None means the alias was removed."""

    at: str
    alias: str
    tag: str | None
    previous: str | None
    reason: str
    by: str
    shadow_share: float | None = None


@dataclass
class Refusal:
    """An alias move that verification refused: the alias stayed where it was."""

    at: str
    alias: str
    tag: str
    reason: str
    by: str


class ModelRegistry:
    """Register bundles, point aliases at them, roll back, and load what an alias names."""

    def __init__(self, store_dir: Path, registry_dir: Path, verifier: Verifier | None = None) -> None:
        self.store_dir = Path(store_dir)
        self.registry_dir = Path(registry_dir)
        self.verifier = verifier
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._store = ModelStore(str(self.store_dir))

    @property
    def aliases_path(self) -> Path:
        return self.registry_dir / ALIASES_FILE

    @property
    def history_path(self) -> Path:
        return self.registry_dir / HISTORY_FILE

    @property
    def refusals_path(self) -> Path:
        return self.registry_dir / REFUSALS_FILE

    # -- bundles -------------------------------------------------------------------------------
    def register(self, bundle_dir: Path, metadata: dict[str, Any], labels: dict[str, str]) -> str:
        """Copy a bundle directory into the model store as a new version; returns its tag."""
        with bentoml.models.create(
            BUNDLE_NAME, labels=labels, metadata=_flat(metadata), _model_store=self._store
        ) as model:
            for source in bundle_dir.rglob("*"):
                if source.is_file():
                    target = Path(model.path) / source.relative_to(bundle_dir)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(source.read_bytes())
        return str(model.tag)

    def bundle_path(self, tag: str) -> Path:
        return Path(self._store.get(tag).path)

    def metadata(self, tag: str) -> dict[str, Any]:
        return dict(self._store.get(tag).info.metadata)

    def tags(self) -> list[str]:
        return [str(model.tag) for model in self._store.list(BUNDLE_NAME)]

    def load(self, tag: str) -> ServingBundle:
        return ServingBundle.load(self.bundle_path(tag), version=tag)

    # -- aliases -------------------------------------------------------------------------------
    def aliases(self) -> dict[str, AliasRecord]:
        """Every alias, or none before the first promotion."""
        if not self.aliases_path.exists():
            return {}
        return {name: AliasRecord(**record) for name, record in json.loads(self.aliases_path.read_text()).items()}

    def production(self) -> AliasRecord | None:
        """The champion: what users are served."""
        return self.aliases().get(CHAMPION)

    def challengers(self) -> dict[str, AliasRecord]:
        return {name: record for name, record in self.aliases().items() if record.is_challenger}

    def set_alias(
        self,
        alias: str,
        tag: str,
        reason: str,
        by: str,
        metrics: dict[str, float] | None = None,
        shadow_share: float | None = None,
    ) -> AliasRecord:
        """Point ``alias`` at ``tag`` (which must be registered, and pass verification when it is a
        move) and record the move."""
        if alias != CHAMPION and not alias.startswith(CHALLENGER):
            raise ValueError(f"alias {alias!r} is neither {CHAMPION!r} nor starts with {CHALLENGER!r}")
        self._store.get(tag)  # fails loudly for a tag that is not in the store
        current = self.aliases().get(alias)
        if current is None or current.tag != tag:  # a share change on the same tag is no move
            self._verify(alias, tag, by)
        with self._locked():
            aliases = self.aliases()
            previous = aliases.get(alias)
            share = shadow_share if shadow_share is not None else (previous.shadow_share if previous else 1.0)
            record = AliasRecord(alias, tag, _now(), reason, by, dict(metrics or {}), share)
            aliases[alias] = record
            self._write(
                aliases, HistoryEntry(record.set_at, alias, tag, previous.tag if previous else None, reason, by, share)
            )
        return record

    def remove_alias(self, alias: str, reason: str, by: str) -> None:
        with self._locked():
            aliases = self.aliases()
            previous = aliases.pop(alias, None)
            if previous is None:
                raise KeyError(f"no alias {alias!r}")
            self._write(aliases, HistoryEntry(_now(), alias, None, previous.tag, reason, by))

    def set_shadow_share(self, alias: str, share: float, by: str) -> AliasRecord:
        """Mirror ``share`` (0..1) of requests to challenger ``alias``."""
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"a shadow share is in [0, 1], got {share}")
        record = self.aliases().get(alias)
        if record is None or not record.is_challenger:
            raise KeyError(f"no challenger alias {alias!r}")
        return self.set_alias(alias, record.tag, f"shadow share {share:.2f}", by, record.metrics, share)

    def promote(
        self,
        tag: str,
        reason: str,
        metrics: dict[str, float] | None = None,
        by: str = "deployment",
        alias: str = CHAMPION,
    ) -> AliasRecord:
        """Point ``alias`` (the champion unless told otherwise) at ``tag``."""
        return self.set_alias(alias, tag, reason, by, metrics)

    def rollback(self, to: str | None = None, by: str = "cli") -> AliasRecord:
        """Point the champion back at ``to``, which must have been champion before; by default the
        champion before the current one."""
        current = self.production()
        earlier = [tag for tag in self.champion_tags() if current is None or tag != current.tag]
        if not earlier:
            raise LookupError("no earlier champion to roll back to")
        target = to or earlier[0]
        if target not in earlier:
            raise LookupError(f"{target} was never champion; earlier champions: {earlier}")
        return self.set_alias(CHAMPION, target, f"rollback from {current.tag if current else 'none'}", by)

    def champion_tags(self) -> list[str]:
        """Tags that held the champion alias, most recent first, each once."""
        tags = [entry.tag for entry in reversed(self.history(CHAMPION)) if entry.tag is not None]
        return list(dict.fromkeys(tags))

    def history(self, alias: str | None = None) -> list[HistoryEntry]:
        """Every alias move, oldest first (of one alias when given)."""
        if not self.history_path.exists():
            return []
        entries = [HistoryEntry(**json.loads(line)) for line in self.history_path.read_text().splitlines() if line]
        return [entry for entry in entries if alias is None or entry.alias == alias]

    def refusals(self) -> list[Refusal]:
        """Every refused move, oldest first."""
        if not self.refusals_path.exists():
            return []
        return [Refusal(**json.loads(line)) for line in self.refusals_path.read_text().splitlines() if line]

    def _verify(self, alias: str, tag: str, by: str) -> None:
        """Raise ``BundleRefused`` (and record why) when the verifier refuses ``tag``.

        Runs outside the lock: loading a bundle takes seconds and must not hold up other movers.
        """
        if self.verifier is None:
            return
        reason = self.verifier(self.bundle_path(tag), tag)
        if reason is None:
            return
        with self._locked(), self.refusals_path.open("a", encoding="utf-8") as refusals:
            refusals.write(json.dumps(asdict(Refusal(_now(), alias, tag, reason, by))) + "\n")
        raise BundleRefused(reason)

    def load_production(self) -> ServingBundle:
        """Load the bundle the champion alias names."""
        record = self.production()
        if record is None:
            raise LookupError(f"no champion yet ({self.aliases_path} does not exist)")
        return self.load(record.tag)

    def _write(self, aliases: dict[str, AliasRecord], entry: HistoryEntry) -> None:
        """History first: an alias file never names a move the history lacks."""
        self.registry_dir.mkdir(parents=True, exist_ok=True)
        with self.history_path.open("a", encoding="utf-8") as history:
            history.write(json.dumps(asdict(entry)) + "\n")
        write_json_atomically(self.aliases_path, {name: asdict(record) for name, record in aliases.items()})

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.registry_dir.mkdir(parents=True, exist_ok=True)
        with (self.registry_dir / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _flat(metadata: dict[str, Any]) -> dict[str, Any]:
    """BentoML metadata accepts JSON-like values; stringify anything else."""
    return json.loads(json.dumps(metadata, default=str))
