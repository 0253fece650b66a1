"""Leave-one-out next-item evaluation, the protocol RecBole uses for sequential recommenders.

Per user, interactions are ordered by time: the last item is the test target, the one before
it the validation target, the rest is training. Every model ranks the full catalog with the
user's history masked, so sequential and general recommenders are compared on equal terms.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pandas as pd

from recs_platform.evaluation.evaluate import EvaluationResult, evaluate
from recs_platform.models.base import Recommender

NEXT_ITEM_METRICS = ("ndcg", "hit", "mrr")


@runtime_checkable
class HistoryAware(Protocol):
    """A model that can condition on interactions after fitting (e.g. SASRec's sequences)."""

    def with_history(self, interactions: pd.DataFrame) -> Recommender: ...


def leave_one_out_split(interactions: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Split each user's time-ordered distinct items into train / valid (second-to-last) / test (last).

    Ties in ``timestamp`` are broken by ``item_id`` so the split does not depend on row order;
    repeated (user, item) pairs keep their first occurrence. Users with fewer than three items
    stay in training only, as there is nothing left to learn from otherwise.
    """
    ordered = (
        interactions.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
        .drop_duplicates(["user_id", "item_id"])
        .reset_index(drop=True)
    )
    from_end = ordered.groupby("user_id").cumcount(ascending=False)
    eligible = ordered.groupby("user_id").user_id.transform("size") >= 3
    return {
        "train": ordered[~eligible | (from_end >= 2)].reset_index(drop=True),
        "valid": ordered[eligible & (from_end == 1)].reset_index(drop=True),
        "test": ordered[eligible & (from_end == 0)].reset_index(drop=True),
    }


def evaluate_next_item(model: Recommender, split: dict[str, pd.DataFrame], k: int = 10) -> EvaluationResult:
    """NDCG / Hit / MRR at ``k`` of ``model`` (fitted on ``split["train"]``) on the test items.

    Train and validation items are masked. A ``HistoryAware`` model first receives the
    validation items as history, so it predicts the test item from everything before it, as in
    RecBole; other models are used as fitted.
    """
    history = pd.concat([split["train"], split["valid"]], ignore_index=True)
    if isinstance(model, HistoryAware):
        model = model.with_history(split["valid"])
    return evaluate(model, split["test"], k=k, exclude=history, metrics=NEXT_ITEM_METRICS)
