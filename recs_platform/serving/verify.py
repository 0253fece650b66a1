"""Load a bundle in a separate process and ask it the smoke requests; a bundle that fails never serves.

``python -m recs_platform.serving.verify BUNDLE_DIR [--tag TAG]`` loads the bundle and answers, with
the service's own ``answer``, a known user, an unknown user and each fresh-history path the bundle
supports (recent items for a known and an unknown user, demographics when it has a segment model).
It prints one JSON object and exits 0 when every answer is sound, 1 otherwise.

``verify_in_subprocess`` is the registry's verifier (``ModelRegistry(..., verifier=...)``): a
separate process, so a bundle that crashes or exhausts memory while loading cannot take its caller
(a deployment run, the API's admin action) down with it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recs_platform.console import error_sentence
from recs_platform.registry.bundle import ServingBundle
from recs_platform.serving.answer import Answer, Request, answer, ranks_fresh_histories

SMOKE_K = 5
DEFAULT_TIMEOUT_S = 300.0
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding this recs_platform package


@dataclass(frozen=True)
class SmokeRequest:
    """One request the bundle must answer, and the source its answer must come from."""

    name: str
    request: Request
    expected_source: str


def smoke_requests(bundle: ServingBundle, k: int = SMOKE_K) -> list[SmokeRequest]:
    """A known user, an unknown user and every fresh-history path ``bundle`` supports."""
    model = bundle.model
    known = model.user_map.ids[0].item()
    unknown = _unknown_user(model.user_map.ids)
    fresh = "model+fresh_history" if ranks_fresh_histories(model) else "model"
    requests = [
        SmokeRequest("known user", Request(known, k), "model"),
        SmokeRequest("unknown user", Request(unknown, k), "popularity"),
    ]
    if unseen := _unseen_items(bundle, known):
        requests.append(SmokeRequest("known user with recent items", Request(known, k, unseen), fresh))
    if ranks_fresh_histories(model):
        recent = model.item_map.ids[:3].tolist()
        requests.append(SmokeRequest("unknown user with recent items", Request(unknown, k, recent), fresh))
    if bundle.segment is not None and len(bundle.segment.segment_keys):
        values = [str(value) for value in bundle.segment.segment_keys[0]]
        features = dict(zip(bundle.segment.params.segment_columns, values, strict=True))
        requests.append(SmokeRequest("new user with demographics", Request(unknown, k, (), features), "segment"))
    return requests


def _unknown_user(user_ids: np.ndarray) -> int | str:
    """An id of the bundle's id type that no user has: one past the largest (the ids are sorted)."""
    return f"{user_ids[-1]}~" if user_ids.dtype.kind == "U" else user_ids[-1].item() + 1


def _unseen_items(bundle: ServingBundle, user_id: int | str, count: int = 2) -> list[int | str]:
    """Items the model knows but ``user_id`` did not train on: a history that has moved on."""
    model, items = bundle.model, bundle.model.item_map.ids
    return items[model.unseen_known(model.user_map.row(user_id), items)][:count].tolist()


def problem_with(bundle: ServingBundle, smoke: SmokeRequest, result: Answer) -> str | None:
    """What is wrong with ``result`` as an answer to ``smoke``, or None when it is sound."""
    items = result.item_ids
    if result.source != smoke.expected_source:
        return f"came from {result.source!r}, not {smoke.expected_source!r}"
    if not 1 <= len(items) <= smoke.request.k:
        return f"returned {len(items)} items for k={smoke.request.k}"
    if len(set(items)) != len(items):
        return "repeated an item"
    if unknown := [item for item in items if item not in bundle.titles]:
        return f"recommended items missing from the bundle's catalog ({unknown[:3]})"
    if set(items) & set(result.history):
        return "recommended items from the user's own history"
    if any(math.isnan(score) for score in result.scores):
        return "returned NaN scores"
    return None


def check_bundle(directory: Path, tag: str) -> str | None:
    """Load the bundle in ``directory`` and answer its smoke requests: None when all are sound, else
    one sentence saying why ``tag`` must not serve."""
    try:
        bundle = ServingBundle.load(directory, version=tag)
    except Exception as error:
        return f"{tag} failed verification: it could not be loaded ({error_sentence(error)})"
    try:
        smokes = smoke_requests(bundle)
    except Exception as error:  # e.g. a model that knows no user at all
        return f"{tag} failed verification: its smoke requests could not be built ({error_sentence(error)})"
    for smoke in smokes:
        try:
            problem = problem_with(bundle, smoke, answer(bundle, smoke.request, state=None))
        except Exception as error:
            problem = f"raised {error_sentence(error)}"
        if problem is not None:
            return f"{tag} failed verification: the {smoke.name} request {problem}"
    return None


def verify_in_subprocess(directory: Path, tag: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> str | None:
    """``check_bundle`` in a fresh Python process running this same code: the registry's verifier."""
    command = [sys.executable, "-m", __name__, str(directory), "--tag", tag]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        finished = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
    except subprocess.TimeoutExpired:
        return f"{tag} failed verification: loading and answering took longer than {timeout_s:.0f}s"
    try:
        return json.loads(finished.stdout.strip().splitlines()[-1])["reason"]
    except (IndexError, ValueError, KeyError):
        # No verdict printed: the process died (a crash, the memory killer) before it could say why.
        last = (finished.stderr.strip().splitlines() or ["no output"])[-1]
        return f"{tag} failed verification: the verifying process exited with code {finished.returncode} ({last})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="a bundle directory (e.g. a tag's folder in the model store)")
    parser.add_argument("--tag", help="the name the verdict uses (default: the folder's name)")
    args = parser.parse_args(argv)
    reason = check_bundle(args.bundle, args.tag or args.bundle.name)
    print(json.dumps({"passed": reason is None, "reason": reason}))
    return 0 if reason is None else 1


if __name__ == "__main__":
    sys.exit(main())
