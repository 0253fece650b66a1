"""A deployable bundle: the model, its popularity fallback and the item catalog, pickle-free.

Layout::

    bundle.json      metadata: data version, code version, config, metrics
    model/           the recommender (config JSON + npz with id maps and weights)
    fallback/        popularity recommender for users the model has never seen
    items.parquet    item_id, title
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recs_platform.models.base import Recommender, load_recommender
from recs_platform.models.popularity import PopularityRecommender

BUNDLE_FILE = "bundle.json"


def write_bundle(
    directory: Path,
    model: Recommender,
    fallback: PopularityRecommender,
    items: pd.DataFrame,
    metadata: dict[str, Any],
) -> Path:
    """Write a complete serving bundle into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / "model")
    fallback.save(directory / "fallback")
    items[["item_id", "title"]].to_parquet(directory / "items.parquet", index=False)
    (directory / BUNDLE_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True, default=str))
    return directory


@dataclass
class Recommendation:
    item_id: int
    title: str
    score: float


@dataclass
class ServingBundle:
    """A loaded bundle that answers one user's request."""

    model: Recommender
    fallback: PopularityRecommender
    titles: dict[int, str]
    metadata: dict[str, Any]
    version: str

    @classmethod
    def load(cls, directory: Path, version: str) -> ServingBundle:
        items = pd.read_parquet(directory / "items.parquet")
        fallback = load_recommender(directory / "fallback")
        if not isinstance(fallback, PopularityRecommender):
            raise TypeError(f"bundle {version}: fallback is {fallback.name}, expected popularity")
        return cls(
            model=load_recommender(directory / "model"),
            fallback=fallback,
            titles=dict(zip(items.item_id.tolist(), items.title.tolist(), strict=True)),
            metadata=json.loads((directory / BUNDLE_FILE).read_text()),
            version=version,
        )

    def recommend(self, user_id: int, k: int) -> tuple[list[Recommendation], bool]:
        """Top-``k`` for a user, and whether the popularity fallback answered (unknown user)."""
        if self.model.known_users([user_id])[0]:
            ranked = self.model.recommend([user_id], k=k)
            pairs = zip(ranked.item_id.tolist(), ranked.score.tolist(), strict=True)
            used_fallback = False
        else:
            item_ids, counts = self.fallback.most_popular(k)
            pairs = zip(item_ids.tolist(), np.asarray(counts, dtype=float).tolist(), strict=True)
            used_fallback = True
        items = [Recommendation(int(i), self.titles.get(int(i), ""), float(s)) for i, s in pairs]
        return items, used_fallback
