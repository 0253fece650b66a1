"""Versioned model bundles in the BentoML model store and the production pointer."""

from recs_platform.registry.bundle import ServingBundle, write_bundle
from recs_platform.registry.store import ModelRegistry, ProductionRecord

__all__ = ["ModelRegistry", "ProductionRecord", "ServingBundle", "write_bundle"]
