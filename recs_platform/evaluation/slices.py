"""Metrics by user segment: demographics, activity level, and cold versus warm users."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

SEGMENT_COLUMNS = ("age_bucket", "gender", "activity_level")
# MovieLens keeps only users with at least 20 ratings, so a user with fewer than 20 training
# interactions is one the temporal split left thin: on ML-100k that is about a tenth of the
# users, where a threshold of 5 would mark none.
COLD_MAX = 20
UNKNOWN = "unknown"


def user_segments(
    users: pd.DataFrame,
    train: pd.DataFrame,
    cold_max: int = COLD_MAX,
    columns: Sequence[str] = SEGMENT_COLUMNS,
) -> pd.DataFrame:
    """One row per user: the segment columns the users table has, plus ``cold_warm``.

    ``cold`` means fewer than ``cold_max`` training interactions (none at all included);
    users missing from the users table get ``"unknown"`` demographics.
    """
    present = [column for column in columns if column in users.columns]
    n_train = train.groupby("user_id").size()
    ids = pd.Index(users.user_id).union(pd.Index(n_train.index), sort=True)
    segments = users.drop_duplicates("user_id").set_index("user_id")[present].reindex(ids)
    segments = segments.astype(object).fillna(UNKNOWN).astype(str)
    counts = n_train.reindex(ids, fill_value=0)
    segments["cold_warm"] = (counts < cold_max).map({True: "cold", False: "warm"})
    return segments.rename_axis("user_id").reset_index()


def sliced_metrics(per_user: pd.DataFrame, segments: pd.DataFrame) -> pd.DataFrame:
    """Mean of every per-user metric in every segment, as a long table.

    ``per_user`` has ``user_id`` and one numeric column per metric (``n_relevant`` is not a
    metric and is skipped); NaN values (say, ILD of a one-item list) are left out of both
    the mean and ``n_users``.
    """
    metrics = [c for c in per_user.columns if c not in ("user_id", "n_relevant")]
    joined = per_user[["user_id", *metrics]].merge(segments, on="user_id", how="inner")
    long = joined.melt(id_vars=["user_id", *metrics], var_name="segment_column", value_name="segment_value")
    long = long.melt(id_vars=["user_id", "segment_column", "segment_value"], var_name="metric", value_name="value")
    grouped = long.groupby(["segment_column", "segment_value", "metric"], sort=True).value
    return grouped.agg(mean="mean", n_users="count").reset_index()
