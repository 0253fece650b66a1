"""The model registry: bundles in the BentoML model store, and a production pointer.

The pointer is a small JSON file replaced atomically; promotion and rollback only move it, so a
serving process that watches it swaps models without a restart.
"""

from __future__ import annotations

import json
import os
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


@dataclass
class ProductionRecord:
    """What the production pointer says: the served tag and how it got there."""

    tag: str
    promoted_at: str
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)
    previous: list[str] = field(default_factory=list)


class ModelRegistry:
    """Register bundles, promote one to production, roll back, and load what is served."""

    def __init__(self, store_dir: Path, pointer_path: Path) -> None:
        self.store_dir = Path(store_dir)
        self.pointer_path = Path(pointer_path)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._store = ModelStore(str(self.store_dir))

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

    def production(self) -> ProductionRecord | None:
        """The current pointer, or None before the first deployment."""
        if not self.pointer_path.exists():
            return None
        return ProductionRecord(**json.loads(self.pointer_path.read_text()))

    def promote(self, tag: str, reason: str, metrics: dict[str, float] | None = None) -> ProductionRecord:
        """Point production at ``tag``, remembering the previous tags for rollback."""
        self._store.get(tag)  # fails loudly for a tag that is not in the store
        current = self.production()
        history = ([current.tag, *current.previous] if current else [])[:20]
        record = ProductionRecord(
            tag=tag,
            promoted_at=datetime.now(UTC).isoformat(),
            reason=reason,
            metrics=dict(metrics or {}),
            previous=[t for t in history if t != tag],
        )
        self._write_pointer(record)
        return record

    def rollback(self) -> ProductionRecord:
        """Move the pointer back to the previously served tag."""
        current = self.production()
        if current is None or not current.previous:
            raise RuntimeError("nothing to roll back to")
        record = ProductionRecord(
            tag=current.previous[0],
            promoted_at=datetime.now(UTC).isoformat(),
            reason=f"rollback from {current.tag}",
            previous=current.previous[1:],
        )
        self._write_pointer(record)
        return record

    def load_production(self) -> ServingBundle:
        """Load the bundle the pointer names."""
        record = self.production()
        if record is None:
            raise LookupError(f"no production model yet ({self.pointer_path} does not exist)")
        return ServingBundle.load(self.bundle_path(record.tag), version=record.tag)

    def _write_pointer(self, record: ProductionRecord) -> None:
        write_json_atomically(self.pointer_path, asdict(record))


def _flat(metadata: dict[str, Any]) -> dict[str, Any]:
    """BentoML metadata accepts JSON-like values; stringify anything else."""
    return json.loads(json.dumps(metadata, default=str))
