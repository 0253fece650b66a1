"""The production bundle of one serving process, hot-reloaded when the pointer moves.

BentoML 1.4 has no in-process model reload, so a daemon thread polls the registry's production
pointer and swaps bundles itself. The new bundle is loaded completely before a single reference
assignment publishes it: requests already running keep the bundle they started with, and no
request ever sees a half-loaded model.
"""

from __future__ import annotations

import logging
import os
import threading

from recs_platform.registry.bundle import ServingBundle
from recs_platform.registry.store import ModelRegistry, ProductionRecord
from recs_platform.settings import PlatformPaths

logger = logging.getLogger(__name__)

DEFAULT_RELOAD_INTERVAL_S = 2.0


def production_registry(paths: PlatformPaths) -> ModelRegistry:
    """The registry that serving reads: BentoML's model store plus the production pointer."""
    return ModelRegistry(paths.bentoml_home / "models", paths.production_pointer)


class ProductionModel:
    """Owns loading the production bundle; ``bundle`` is None until one has been promoted."""

    def __init__(self, reload_interval_s: float | None = None) -> None:
        if reload_interval_s is None:
            reload_interval_s = float(os.environ.get("RECS_RELOAD_INTERVAL_S", DEFAULT_RELOAD_INTERVAL_S))
        self.reload_interval_s = reload_interval_s
        self.bundle: ServingBundle | None = None
        self._registry: ModelRegistry | None = None
        self._failed_tag: str | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        """Load what production points at now, then watch the pointer in the background.

        Called from the service's ``__init__`` rather than at import, so importing the service
        (as ``bentoml serve`` does in its supervisor process) touches no files.
        """
        self._registry = production_registry(PlatformPaths.from_env())
        self.refresh()
        threading.Thread(target=self._watch, name="production-model-reload", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def refresh(self) -> bool:
        """Swap in the pointer's bundle if it changed; returns whether a new bundle is served."""
        record = self._read_pointer()
        if record is None or record.tag in (self.version, self._failed_tag):
            return False
        try:
            bundle = ServingBundle.load(self._registry.bundle_path(record.tag), version=record.tag)
        except Exception:
            # Remember the tag so a broken bundle is reported once, not on every poll.
            self._failed_tag = record.tag
            logger.exception("could not load bundle %s; still serving %s", record.tag, self.version)
            return False
        self.bundle = bundle
        logger.info("now serving %s", record.tag)
        return True

    @property
    def version(self) -> str | None:
        bundle = self.bundle
        return bundle.version if bundle else None

    def _read_pointer(self) -> ProductionRecord | None:
        try:
            return self._registry.production()
        except Exception:
            # The pointer is replaced atomically, so this is corruption or I/O trouble: keep serving.
            logger.exception("could not read the production pointer %s", self._registry.pointer_path)
            return None

    def _watch(self) -> None:
        while not self._stop.wait(self.reload_interval_s):
            self.refresh()
