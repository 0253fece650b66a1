"""Versioned model bundles in the BentoML model store, aliases over their tags and the alias history."""

from recs_platform.registry.bundle import ServingBundle, write_bundle
from recs_platform.registry.store import CHALLENGER, CHAMPION, AliasRecord, HistoryEntry, ModelRegistry

__all__ = ["CHALLENGER", "CHAMPION", "AliasRecord", "HistoryEntry", "ModelRegistry", "ServingBundle", "write_bundle"]
