"""What one serving process answers from, hot-reloaded when other processes replace it.

BentoML 1.4 has no in-process model reload, so a daemon thread polls the pointers and swaps in
what changed: the champion and challenger bundles (the registry's aliases), the online store (its
``current.json``) and the champion's precomputed lists (a file named after its tag). Each
new value is loaded completely before a single reference assignment publishes it: a request
reads each reference once and finishes on what it started with. A value that fails to load, a
pointer that cannot be read (truncated, not JSON) and a served bundle whose store folder was
removed are reported and the values in memory keep serving; ``ProductionModel.health`` then says
the server is degraded (see ``serving.health``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from recs_platform.console import error_sentence
from recs_platform.online.store import OnlineStore, read_pointer
from recs_platform.registry.bundle import PrecomputedLists, ServingBundle
from recs_platform.registry.store import ModelRegistry
from recs_platform.serving.verify import verify_in_subprocess
from recs_platform.settings import PlatformPaths

logger = logging.getLogger(__name__)

DEFAULT_RELOAD_INTERVAL_S = 2.0
Value = TypeVar("Value")


def production_registry(paths: PlatformPaths) -> ModelRegistry:
    """The registry that serving reads: BentoML's model store plus the aliases; an alias only moves
    to a bundle that loads and answers smoke requests in a separate process."""
    return ModelRegistry(paths.bentoml_home / "models", paths.registry, verifier=verify_in_subprocess)


def precomputed_path(paths: PlatformPaths, bundle_version: str) -> Path:
    """Where ``batch_recommendations`` writes the lists of one bundle."""
    return paths.batch_recommendations / f"{bundle_version.replace(':', '-')}.parquet"


class Watched(Generic[Value]):
    """A value loaded from files that other processes replace, reloaded when ``version()`` changes."""

    def __init__(self, name: str, version: Callable[[], str | None], load: Callable[[str], Value]) -> None:
        self.name = name
        self._version = version
        self._load = load
        self.value: Value | None = None
        self.version: str | None = None
        self.wanted: str | None = None  # the version the pointer named at the last poll
        self.failed_version: str | None = None
        self.failure: str | None = None  # why failed_version could not be loaded, on one line
        self.load_failures = 0
        self.read_error: str | None = None  # why the pointer could not be read at the last poll
        self.read_failures = 0

    def refresh(self) -> bool:
        """Swap in the value of the current version if it changed; True when a new value serves."""
        try:
            wanted = self._version()
        except Exception as error:
            if self.read_error is None:  # logged once while it lasts, not at every poll
                logger.exception("could not read the %s pointer; still serving %s", self.name, self.version)
            self.read_error, self.read_failures = error_sentence(error), self.read_failures + 1
            return False
        self.read_error = None
        self.wanted = wanted
        if wanted is None or wanted in (self.version, self.failed_version):
            return False
        try:
            value = self._load(wanted)
        except Exception as error:
            # Remember the version so a broken one is reported once, not on every poll.
            self.failed_version, self.load_failures = wanted, self.load_failures + 1
            self.failure = error_sentence(error)
            logger.exception("could not load %s %s; still serving %s", self.name, wanted, self.version)
            return False
        self.value, self.version = value, wanted
        logger.info("now serving %s %s", self.name, wanted)
        return True


@dataclass(frozen=True)
class ServingHealth:
    """What one serving process answers from, against what the champion alias names."""

    serving: str | None  # the champion tag this process answers with
    pointer: str | None  # the tag the champion alias named at the last poll that could read it
    # The alias names a bundle this process could not load, a pointer could not be read at the
    # last poll, or the served bundle's store folder is gone (it serves from memory).
    degraded: bool
    reason: str | None  # why, when degraded: one sentence per problem
    load_failures: dict[str, int]  # per watched value: bundle, precomputed lists, online store, challengers
    pointer_read_failures: dict[str, int] = field(default_factory=dict)  # polls that could not read it, per value

    @property
    def ready(self) -> bool:
        return self.serving is not None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ready": self.ready}


@dataclass(frozen=True)
class Challenger:
    """A challenger bundle and the share of requests mirrored to it."""

    alias: str
    bundle: ServingBundle
    shadow_share: float


class ProductionModel:
    """The champion bundle, its precomputed lists, the challengers and the online store of one
    serving process."""

    def __init__(self, reload_interval_s: float | None = None) -> None:
        if reload_interval_s is None:
            reload_interval_s = float(os.environ.get("RECS_RELOAD_INTERVAL_S", DEFAULT_RELOAD_INTERVAL_S))
        self.reload_interval_s = reload_interval_s
        self._stop = threading.Event()
        self.bundle: Watched[ServingBundle] | None = None
        self.precomputed: Watched[PrecomputedLists] | None = None
        self.online: Watched[OnlineStore] | None = None
        self.challengers: Watched[list[Challenger]] | None = None
        self.bundle_dir: Path | None = None  # the store folder of the served bundle
        self._listeners: list[Callable[[], None]] = []
        self._swap_listeners: list[Callable[[], None]] = []

    def start(self) -> None:
        """Load what the pointers name now, then watch them in the background.

        Called from the service's ``__init__`` rather than at import, so importing the service
        (as ``bentoml serve`` does in its supervisor process) touches no files.
        """
        paths = PlatformPaths.from_env()
        registry = production_registry(paths)

        def production_tag() -> str | None:
            record = registry.production()
            return record.tag if record else None

        def precomputed_version() -> str | None:
            version = self.bundle.version
            return version if version and precomputed_path(paths, version).exists() else None

        def online_version() -> str | None:
            pointer = read_pointer(paths.online)
            return pointer["version"] if pointer else None

        def challenger_version() -> str:
            challengers = registry.challengers()
            return json.dumps({alias: [r.tag, r.shadow_share] for alias, r in sorted(challengers.items())})

        def load_challengers(version: str) -> list[Challenger]:
            return [
                Challenger(alias, ServingBundle.load(registry.bundle_path(tag), tag), share)
                for alias, (tag, share) in json.loads(version).items()
            ]

        def load_bundle(tag: str) -> ServingBundle:
            path = registry.bundle_path(tag)
            bundle = ServingBundle.load(path, tag)
            self.bundle_dir = path  # nothing can fail between here and the swap
            return bundle

        self.bundle = Watched("bundle", production_tag, load_bundle)
        self.precomputed = Watched(
            "precomputed lists",
            precomputed_version,
            lambda tag: PrecomputedLists.read(precomputed_path(paths, tag), tag),
        )
        self.online = Watched("online store", online_version, lambda version: OnlineStore.load(paths.online))
        self.challengers = Watched("challengers", challenger_version, load_challengers)
        self.refresh()
        threading.Thread(target=self._watch, name="production-model-reload", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    @property
    def watched(self) -> tuple[Watched, ...]:
        return (self.bundle, self.precomputed, self.online, self.challengers)

    def refresh(self) -> None:
        swapped = [watched.refresh() for watched in self.watched]
        listeners = self._listeners + (self._swap_listeners if any(swapped) else [])
        for listener in listeners:
            try:
                listener()
            except Exception:  # a reporting problem must not stop the reload thread
                logger.exception("a refresh listener failed")

    def on_refresh(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every poll (the service writes its status file there)."""
        self._listeners.append(listener)

    def on_swap(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after a poll that swapped in a new value (the first load included)."""
        self._swap_listeners.append(listener)

    def health(self) -> ServingHealth:
        """Degraded when something on disk is wrong that this process works around (see
        ``problems``): it keeps answering with what it has in memory (or not at all, when it never
        loaded a bundle)."""
        bundle = self.bundle
        if bundle is None:  # not started
            return ServingHealth(None, None, False, None, {})
        problems = self.problems()
        return ServingHealth(
            serving=bundle.version,
            pointer=bundle.wanted,
            degraded=bool(problems),
            reason="; ".join(problems) if problems else None,
            load_failures={watched.name: watched.load_failures for watched in self.watched},
            pointer_read_failures={watched.name: watched.read_failures for watched in self.watched},
        )

    def problems(self) -> list[str]:
        """One sentence per problem now: the champion alias names a bundle that could not be
        loaded, a pointer could not be read at the last poll, the served bundle's folder is gone."""
        bundle, problems = self.bundle, []
        if bundle.wanted is not None and bundle.wanted == bundle.failed_version:
            problems.append(f"{bundle.wanted} could not be loaded ({bundle.failure})")
        problems += [f"the {w.name} pointer could not be read ({w.read_error})" for w in self.watched if w.read_error]
        if self.bundle_dir is not None and not self.bundle_dir.exists():
            problems.append(
                f"the store folder of {bundle.version} was removed ({self.bundle_dir}): served from memory, "
                "a restarted server could not load it"
            )
        return problems

    def _watch(self) -> None:
        while not self._stop.wait(self.reload_interval_s):
            self.refresh()
