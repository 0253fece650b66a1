"""Versioned model bundles in the BentoML model store, aliases over their tags and the alias history."""

from recs_platform.registry.bundle import ServingBundle, write_bundle
from recs_platform.registry.store import (
    CHALLENGER,
    CHAMPION,
    AliasRecord,
    BundleRefused,
    HistoryEntry,
    ModelRegistry,
    Refusal,
    Verifier,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "AliasRecord",
    "BundleRefused",
    "HistoryEntry",
    "ModelRegistry",
    "Refusal",
    "ServingBundle",
    "Verifier",
    "write_bundle",
]
