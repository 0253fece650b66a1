"""Leave-one-out next-item evaluation, the protocol RecBole uses for sequential recommenders.

Per user, interactions are ordered by time: the last item is the test target, the one before
it the validation target, the rest is training. Every model ranks the full catalog with the
user's history masked, so sequential and general recommenders are compared on equal terms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from recs_platform.evaluation.evaluate import EvaluationResult, evaluate
from recs_platform.models.base import Logger, Recommender
from recs_platform.training import fit_recommender

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


def compare_next_item(
    tables: Mapping[str, pd.DataFrame],
    recommenders: Mapping[str, dict[str, Any]],
    k: int = 10,
    log: Logger | None = None,
) -> pd.DataFrame:
    """Fit each ``{name: params}`` on the leave-one-out split of all of a dataset's interactions
    (validation item for early stopping) and score it on the next item; best NDCG first."""
    interactions = pd.concat([tables[name] for name in ("train", "valid", "test")], ignore_index=True)
    split = leave_one_out_split(interactions)
    rows = []
    for name, params in recommenders.items():
        model, fit_seconds = fit_recommender(name, params, split["train"], tables, split["valid"], log)
        rows.append({"recommender": name, "fit_seconds": fit_seconds, **evaluate_next_item(model, split, k).summary})
        if log is not None:
            log(f"next-item {name}: {rows[-1]}")
    return pd.DataFrame(rows).sort_values(f"ndcg@{k}", ascending=False).reset_index(drop=True)
