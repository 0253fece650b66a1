"""Recommenders: one interface for heuristics and learned models."""

from recs_platform.models.base import RECOMMENDERS, Recommender, load_recommender
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
