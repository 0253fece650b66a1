"""The two-stage recommender: the shared contract, the leakage-free training protocol, identical
features offline and at serving, and the ANN index's recall."""

from __future__ import annotations

from helpers_recommenders import RecommenderContract

from recs_platform.models import TwoStageRecommender

# Small enough for the contract's 12 x 15 fixture: every item is a candidate, few trees.
SMALL = {"candidates": 15, "trees": 5, "min_child_samples": 2, "min_label_history": 3, "threads": 1}


class TestTwoStage(RecommenderContract):
    def make_recommender(self, **params) -> TwoStageRecommender:
        return TwoStageRecommender(**{**SMALL, **params})
