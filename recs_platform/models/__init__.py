"""Recommenders: one interface for heuristics and learned models."""

from recs_platform.models.base import RECOMMENDERS, Recommender, load_recommender
from recs_platform.models.bpr import BPRRecommender
from recs_platform.models.popularity import PopularityRecommender

__all__ = [
    "RECOMMENDERS",
    "BPRRecommender",
    "PopularityRecommender",
    "Recommender",
    "load_recommender",
]
