"""Recommenders: one interface for heuristics and learned models.

The classes are imported on first use (``from recs_platform.models import BPRRecommender`` imports
only the BPR module), as ``RECOMMENDERS`` imports a built-in recommender's module when it is asked
for: a process that needs one model does not pay for PyTorch, LightGBM and faiss.
"""

import importlib
from typing import TYPE_CHECKING

from recs_platform.models.base import BUILT_IN_MODULES, RECOMMENDERS, Recommender, load_recommender

if TYPE_CHECKING:
    from recs_platform.models.bpr import BPRRecommender, FeedbackBPRRecommender
    from recs_platform.models.heuristics import (
        CooccurrenceRecommender,
        RecentHistoryRecommender,
        SegmentPopularityRecommender,
    )
    from recs_platform.models.neighbors import DLAERecommender, EASERecommender, ItemKNNRecommender
    from recs_platform.models.popularity import PopularityRecommender
    from recs_platform.models.sasrec import SASRecRecommender
    from recs_platform.models.two_stage import TwoStageRecommender
    from recs_platform.models.two_tower import TwoTowerRecommender

_CLASS_NAMES = {
    "BPRRecommender": "bpr",
    "FeedbackBPRRecommender": "bpr_feedback",
    "CooccurrenceRecommender": "cooccurrence",
    "RecentHistoryRecommender": "recent_history",
    "SegmentPopularityRecommender": "segment_popularity",
    "DLAERecommender": "dlae",
    "EASERecommender": "ease",
    "ItemKNNRecommender": "item_knn",
    "PopularityRecommender": "popularity",
    "SASRecRecommender": "sasrec",
    "TwoStageRecommender": "two_stage",
    "TwoTowerRecommender": "two_tower",
}


def __getattr__(attribute: str) -> object:
    if attribute in _CLASS_NAMES:
        return RECOMMENDERS[_CLASS_NAMES[attribute]]
    if attribute in BUILT_IN_MODULES.values():
        return importlib.import_module(f"{__name__}.{attribute}")  # a submodule, as after a plain import
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")


__all__ = [
    "RECOMMENDERS",
    "BPRRecommender",
    "CooccurrenceRecommender",
    "DLAERecommender",
    "EASERecommender",
    "FeedbackBPRRecommender",
    "ItemKNNRecommender",
    "PopularityRecommender",
    "RecentHistoryRecommender",
    "Recommender",
    "SASRecRecommender",
    "SegmentPopularityRecommender",
    "TwoStageRecommender",
    "TwoTowerRecommender",
    "load_recommender",
]
