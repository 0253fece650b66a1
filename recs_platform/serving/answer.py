"""How one request is answered, from the bundle and the user's current state; no HTTP here.

The order, most personal first:

1. A user the model trained on, whose history has not changed since: the model's own list
   (``source="model"``), precomputed when the batch lists are loaded, else computed.
2. A history with items the model has not seen for this user (landed since training, or sent as
   ``recent_items``): models that score any history use it (``"model+fresh_history"``); the
   others answer from their training snapshot and say so (``history_source="training"``).
3. A user the model does not know but whose demographics are known (request or user catalog):
   segment popularity, or the two-tower's feature path when that is the model (``"segment"``).
4. Otherwise global popularity (``"popularity"``).

Items in the user's history are never recommended.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recs_platform.models.base import Recommender, as_ids
from recs_platform.online.store import UserState
from recs_platform.registry.bundle import PrecomputedLists, ServingBundle

if TYPE_CHECKING:  # imported for the annotation only: it imports LightGBM, faiss and PyTorch
    from recs_platform.models.two_stage import TwoStageRecommender


@dataclass(frozen=True)
class Request:
    """What a caller asks for (already validated by the HTTP layer)."""

    user_id: int | str  # the dataset contract's id type
    k: int
    recent_items: Sequence[int | str] = ()
    features: Mapping[str, Any] | None = None
    now: datetime | None = None  # the request's time (UTC); the two-stage ranker's context


@dataclass(frozen=True)
class Answer:
    """The ranked items and exactly what produced them, as logged."""

    item_ids: list[int | str]
    scores: list[float]
    source: str
    history_source: str
    history: list[int | str] = field(default_factory=list)
    features: dict[str, Any] = field(default_factory=dict)
    path: str | None = None  # "precomputed" or "online" for the model's own list
    # The two-stage ranker's feature rows of the returned items, exactly as they were scored.
    ranker_features: list[dict[str, Any]] = field(default_factory=list)


def current_history(state: UserState | None, recent_items: Sequence[int | str]) -> tuple[np.ndarray, str]:
    """The user's history now, oldest first: the online store's, then the request's recent items
    (most recent last; an item seen again moves to the end)."""
    recent = as_ids(recent_items)
    stored = state.history if state is not None and len(state.history) else recent[:0]
    if not len(recent_items):
        return stored, "online_store" if len(stored) else "none"
    _, last_from_end = np.unique(recent[::-1], return_index=True)  # each item's last occurrence
    recent = recent[::-1][np.sort(last_from_end)][::-1]
    history = np.concatenate([stored[~np.isin(stored, recent)], recent])
    return history, "online_store+request" if len(stored) else "request"


def answer(
    bundle: ServingBundle,
    request: Request,
    state: UserState | None,
    precomputed: PrecomputedLists | None = None,
) -> Answer:
    """The answer to ``request`` (see the module docstring for the order)."""
    model = bundle.model
    history, history_source = current_history(state, request.recent_items)
    features = _features(request, state)
    if model.ranks_at_request_time:
        ranked = _two_stage(model, request, state, history, history_source, features)
        if ranked is not None:
            return ranked
    user_row = model.user_map.row(request.user_id)
    if user_row is not None:
        return _known_user(bundle, request, user_row, history, history_source, features, precomputed)
    if model.scores_any_history and model.item_map.contains(history).any():
        items, scores = model.recommend_for_history(history, request.k)
        return _answer(items, scores, "model+fresh_history", history_source, history, features)
    if features:
        return _by_segment(bundle, request, history, history_source, features)
    items, scores = bundle.fallback.most_popular(request.k, exclude_items=history)
    return _answer(items, scores, "popularity", history_source, history, features)


def _known_user(
    bundle: ServingBundle,
    request: Request,
    user_row: int,
    history: np.ndarray,
    history_source: str,
    features: dict[str, Any],
    precomputed: PrecomputedLists | None,
) -> Answer:
    model = bundle.model
    fresh = bool(len(history)) and model.unseen_known(user_row, history).any()
    if fresh and model.scores_any_history:
        items, scores = model.recommend_for_history(history, request.k)
        return _answer(items, scores, "model+fresh_history", history_source, history, features)
    if fresh or not len(history):
        history, history_source = _trained(model, user_row), "training"  # what the answer really uses
    # Nothing new the model can use: its list for this user is the one it learned.
    listed = precomputed.get(request.user_id, request.k) if precomputed is not None else None
    if listed is not None:
        return _answer(*listed, "model", history_source, history, features, path="precomputed")
    items, scores = model.recommend_one(request.user_id, request.k)
    return _answer(items, scores, "model", history_source, history, features, path="online")


def _by_segment(
    bundle: ServingBundle, request: Request, history: np.ndarray, history_source: str, features: dict[str, Any]
) -> Answer:
    model = bundle.model
    if model.scores_features:
        frame = pd.DataFrame([{**features, "user_id": request.user_id}])
        ranked = model.recommend_for_features(frame, request.k, exclude_items=history)
        return _answer(ranked.item_id, ranked.score, "segment", history_source, history, features)
    if bundle.segment is None:
        items, scores = bundle.fallback.most_popular(request.k, exclude_items=history)
        return _answer(items, scores, "popularity", history_source, history, features)
    ranked = bundle.segment.recommend_for_segment(features, k=request.k + len(history))
    ranked = ranked[~ranked.item_id.isin(history)].head(request.k)
    return _answer(ranked.item_id, ranked.score, "segment", history_source, history, features)


def ranks_fresh_histories(model: Recommender) -> bool:
    """Whether ``model`` answers from a history it was not trained on (``"model+fresh_history"``)."""
    return model.scores_any_history or model.ranks_at_request_time


def _two_stage(
    model: TwoStageRecommender,
    request: Request,
    state: UserState | None,
    history: np.ndarray,
    history_source: str,
    features: dict[str, Any],
) -> Answer | None:
    """Retrieve and rank at the request's time from the user's current history, or None for a user
    the model does not know and whose history has no item it knows (the usual fallbacks answer)."""
    user_row = model.user_map.row(request.user_id)
    if user_row is None and not model.item_map.contains(history).any():
        return None
    now = request.now or datetime.now(UTC)
    seconds = float(int(now.timestamp()))
    if user_row is not None and not len(history):
        user, history_source = model.offline_inputs(user_row, seconds), "training"
        history = np.sort(model.item_map.ids[user.history])
        fresh = False
    else:
        times = _history_times(state, history, now)
        user = model.serving_inputs(request.user_id, history, times, features, seconds)
        fresh = user_row is None or bool(model.unseen_known(user_row, history).any())
    ranked = model.rank_for_user(user, request.k, exclude=history)
    source = "model+fresh_history" if fresh else "model"
    result = _answer(ranked.item_ids, ranked.scores, source, history_source, history, features, path="online")
    return replace(result, ranker_features=ranked.features)


def _trained(model: Recommender, user_row: int) -> np.ndarray:
    """The items ``model`` trained on for the user at ``user_row``, in id order."""
    return model.item_map.ids[np.sort(model.seen_items(user_row))]  # the map's indices follow id order


def _history_times(state: UserState | None, history: np.ndarray, now: datetime) -> np.ndarray:
    """When each history item was first consumed: the online store's time, else the request's."""
    naive = np.datetime64(now.astimezone(UTC).replace(tzinfo=None), "us")
    times = np.full(len(history), naive, dtype="datetime64[us]")
    if state is not None and len(state.history):
        stored = dict(zip(state.history.tolist(), state.history_times, strict=True))
        for position, item in enumerate(history.tolist()):
            if item in stored:
                times[position] = stored[item]
    return times


def _features(request: Request, state: UserState | None) -> dict[str, Any]:
    """The request's features, else the user catalog's; only the values that are known."""
    features = dict(request.features or (state.features if state is not None else {}))
    return {name: value for name, value in features.items() if value is not None}


def _answer(
    items: Sequence[int] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    source: str,
    history_source: str,
    history: np.ndarray,
    features: dict[str, Any] | None = None,
    path: str | None = None,
) -> Answer:
    # tolist(): Python ints, strs and floats in one call, not one conversion per element in Python.
    return Answer(
        item_ids=np.asarray(items).tolist(),  # int64 or str ids alike
        scores=np.asarray(scores, dtype=np.float64).tolist(),
        source=source,
        history_source=history_source,
        history=np.asarray(history).tolist(),
        features=dict(features or {}),
        path=path,
    )


def answer_record(
    request_id: str,
    served_by: str,
    served_at: datetime,
    request: Request,
    result: Answer,
    model_version: str,
    latency_ms: float,
    online_version: str | None,
) -> dict[str, Any]:
    """The serving-log record of one computed list (see ``recs_platform.data.serving_log``)."""
    return {
        "request_id": request_id,
        "served_by": served_by,
        "served_at": served_at.isoformat(),
        "user_id": request.user_id,
        "k": request.k,
        "model_version": model_version,
        "source": result.source,
        "path": result.path,
        "history_source": result.history_source,
        "history_items": result.history,
        "user_features": result.features,
        "item_ids": result.item_ids,
        "scores": result.scores,
        "latency_ms": round(latency_ms, 3),
        "online_version": online_version,
        **({"ranker_features": result.ranker_features} if result.ranker_features else {}),
    }
