"""A deployable bundle: the model, its fallbacks and the item catalog, pickle-free.

Layout::

    bundle.json      metadata: data version, code version, config, metrics
    model/           the recommender (config JSON + npz with id maps and weights)
    fallback/        popularity recommender, the last resort for users nothing else knows
    segment/         segment popularity, for new users whose demographics are known (optional)
    items.parquet    item_id, title and the item attributes shown on the inspection page
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from recs_platform.models.base import Recommender, as_ids, load_recommender, sorted_row
from recs_platform.models.heuristics import SegmentPopularityRecommender
from recs_platform.models.popularity import PopularityRecommender

BUNDLE_FILE = "bundle.json"
# Item attributes a bundle keeps beside the titles, when the item table has them.
ITEM_ATTRIBUTES = ("genres", "release_year", "n_users", "popularity_rank")
Loaded = TypeVar("Loaded", bound=Recommender)


def write_bundle(
    directory: Path,
    model: Recommender,
    fallback: PopularityRecommender,
    items: pd.DataFrame,
    metadata: dict[str, Any],
    segment: SegmentPopularityRecommender | None = None,
) -> Path:
    """Write a complete serving bundle into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / "model")
    fallback.save(directory / "fallback")
    if segment is not None:
        segment.save(directory / "segment")
    attributes = [column for column in ITEM_ATTRIBUTES if column in items]
    items[["item_id", "title", *attributes]].to_parquet(directory / "items.parquet", index=False)
    (directory / BUNDLE_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True, default=str))
    return directory


@dataclass
class ServingBundle:
    """A loaded bundle: the model and the fallbacks that answer users it does not know."""

    model: Recommender
    fallback: PopularityRecommender
    segment: SegmentPopularityRecommender | None
    titles: dict[int | str, str]
    metadata: dict[str, Any]
    version: str
    catalog: pd.DataFrame  # item_id index: title and the attributes the bundle kept

    @classmethod
    def load(cls, directory: Path, version: str) -> ServingBundle:
        items = pd.read_parquet(directory / "items.parquet")
        return cls(
            model=load_recommender(directory / "model"),
            fallback=_load_as(directory / "fallback", PopularityRecommender, version),
            segment=_load_as(directory / "segment", SegmentPopularityRecommender, version)
            if (directory / "segment").exists()
            else None,
            titles=dict(zip(items.item_id.tolist(), items.title.tolist(), strict=True)),
            metadata=json.loads((directory / BUNDLE_FILE).read_text()),
            version=version,
            catalog=items.set_index("item_id"),
        )


def _load_as(path: Path, cls: type[Loaded], version: str) -> Loaded:
    model = load_recommender(path)
    if not isinstance(model, cls):
        raise TypeError(f"bundle {version}: {path.name} is {model.name}, expected {cls.name}")
    return model


class PrecomputedLists:
    """Each known user's top-k lists of one bundle, computed offline (``batch_recommendations``).

    Stored as Parquet (``user_id``, ``item_ids``, ``scores``); held as flat arrays with offsets so a
    lookup is one binary search.
    """

    def __init__(self, frame: pd.DataFrame, bundle_version: str) -> None:
        frame = frame.sort_values("user_id")
        self.bundle_version = bundle_version
        self.user_ids = as_ids(frame.user_id.to_numpy())
        self.offsets = np.concatenate([[0], np.cumsum(frame.item_ids.map(len).to_numpy())])
        self.items = as_ids(np.concatenate([np.asarray(v) for v in frame.item_ids] or [np.zeros(0, np.int64)]))
        self.scores = np.concatenate([np.asarray(v, dtype=np.float64) for v in frame.scores] or [np.zeros(0)])

    @classmethod
    def read(cls, path: Path, bundle_version: str) -> PrecomputedLists:
        return cls(pd.read_parquet(path), bundle_version)

    def get(self, user_id: int | str, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The user's top ``k``, or None when the user has no list or a shorter one than asked."""
        row = sorted_row(self.user_ids, user_id)
        if row is None:
            return None
        start, end = self.offsets[row], self.offsets[row + 1]
        if end - start < k:
            return None
        return self.items[start : start + k], self.scores[start : start + k]


def precompute_lists(model: Recommender, k: int, batch_size: int | None = None) -> pd.DataFrame:
    """Top-``k`` of every user the model knows, as ``user_id, item_ids, scores`` (one row per user);
    ranked in batches of ``batch_size`` users, by default bounded by the score budget."""
    ranked = model.recommend(model.user_map.ids, k=k, batch_size=batch_size)
    grouped = ranked.groupby("user_id", sort=True)
    return pd.DataFrame(
        {
            "user_id": grouped.size().index.to_numpy(),
            "item_ids": grouped.item_id.agg(list).to_numpy(),
            "scores": grouped.score.agg(list).to_numpy(),
        }
    )
