"""Online metrics from what was served and what users did next, and the engagement alarm.

Per model version and day: requests, the share answered by each source, the consumption rate of
served items within the attribution window (a CTR proxy) at k, the hit rate (requests with at
least one consumed item in their top k), catalogue coverage of the served lists, and latency
percentiles. The inputs are the warehouse's ``attributed_feedback`` and ``stg_serving_requests``
dbt models; the Dagster asset and ``recs-platform online-report`` both call ``online_metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from recs_platform.data.serving_log import SOURCES

FEEDBACK_COLUMNS = ["request_id", "served_at", "model_version", "position", "item_id", "consumed", "window_closed"]
REQUEST_COLUMNS = ["request_id", "served_at", "model_version", "answer_source", "latency_ms"]
GROUP = ["model_version", "day"]
# What users were shown; the lists challengers computed in shadow are judged by the shadow comparison.
FEEDBACK_SQL = f"select {', '.join(FEEDBACK_COLUMNS)} from attributed_feedback where shown"
REQUESTS_SQL = f"select {', '.join(REQUEST_COLUMNS)} from stg_serving_requests where shown"


def has_feedback_tables(connection: duckdb.DuckDBPyConnection) -> bool:
    """False before dbt first built the serving-log models."""
    present = {name for (name,) in connection.execute("select table_name from information_schema.tables").fetchall()}
    return {"attributed_feedback", "stg_serving_requests"} <= present


def read_online_tables(connection: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The attributed feedback and the requests, or empty frames before anything was served."""
    if not has_feedback_tables(connection):
        return pd.DataFrame(columns=FEEDBACK_COLUMNS), pd.DataFrame(columns=REQUEST_COLUMNS)
    return connection.execute(FEEDBACK_SQL).df(), connection.execute(REQUESTS_SQL).df()


def online_metrics(feedback: pd.DataFrame, requests: pd.DataFrame, k: int, catalog_size: int) -> pd.DataFrame:
    """One row per model version and day (UTC) of serving, oldest day first.

    ``consumption_rate@k`` is consumed / shown over positions 1..k; ``hit_rate@k`` the share of
    requests with a consumed item there; ``mature`` is true when every window of the day closed,
    so its rates are final.
    """
    requests = requests.assign(day=_day(requests.served_at))
    top = feedback[feedback.position <= k].assign(day=_day(feedback.served_at))
    per_request = top.groupby([*GROUP, "request_id"]).consumed.any().reset_index()
    daily = requests.groupby(GROUP).agg(
        requests=("request_id", "size"),
        latency_p50_ms=("latency_ms", lambda s: float(np.percentile(s, 50))),
        latency_p99_ms=("latency_ms", lambda s: float(np.percentile(s, 99))),
    )
    shares = pd.crosstab([requests.model_version, requests.day], requests.answer_source, normalize="index")
    shares = shares.reindex(columns=list(SOURCES), fill_value=0.0).add_prefix("share_")
    consumption = top.groupby(GROUP).agg(
        impressions=("consumed", "size"),
        consumed=("consumed", "sum"),
        mature=("window_closed", "all"),
        distinct_items=("item_id", "nunique"),
    )
    hits = per_request.groupby(GROUP).consumed.mean().rename(f"hit_rate@{k}")
    table = daily.join(shares).join(consumption).join(hits)
    table[f"consumption_rate@{k}"] = table.consumed / table.impressions
    table["coverage"] = table.distinct_items / max(catalog_size, 1)
    columns = ["requests", *shares.columns, f"consumption_rate@{k}", f"hit_rate@{k}", "coverage"]
    columns += ["latency_p50_ms", "latency_p99_ms", "impressions", "consumed", "mature"]
    return table.reset_index().sort_values(["day", "model_version"])[GROUP + columns].reset_index(drop=True)


def _day(timestamps: pd.Series) -> pd.Series:
    return pd.to_datetime(timestamps).dt.strftime("%Y-%m-%d")


@dataclass(frozen=True)
class EngagementVerdict:
    """The engagement alarm's decision and the numbers behind it."""

    dropped: bool
    description: str
    day: str | None
    rate: float | None
    baseline: float | None
    requests: int


def engagement_drop(
    feedback: pd.DataFrame, k: int, margin: float, min_requests: int, baseline_days: int
) -> EngagementVerdict:
    """Did the consumption rate of the newest mature day fall more than ``margin`` (relative) below
    the mean rate of the ``baseline_days`` mature days before it, with at least ``min_requests``
    requests on that day? All model versions together: what users saw."""
    top = feedback[feedback.position <= k].assign(day=_day(feedback.served_at))
    days = top.groupby("day").agg(
        requests=("request_id", "nunique"), rate=("consumed", "mean"), mature=("window_closed", "all")
    )
    days = days[days.mature & (days.requests >= min_requests)]
    if len(days) < 2:
        return EngagementVerdict(
            False, f"not enough mature days with {min_requests}+ requests yet", None, None, None, 0
        )
    newest, before = days.iloc[-1], days.iloc[-1 - baseline_days : -1]
    baseline = float(before.rate.mean())
    dropped = newest.rate < (1 - margin) * baseline
    verdict = "fell more than" if dropped else "is within"
    description = (
        f"consumption rate@{k} {newest.rate:.4f} on {days.index[-1]} ({int(newest.requests)} requests) {verdict} "
        f"{margin:.0%} below the trailing {len(before)}-day baseline {baseline:.4f}"
    )
    return EngagementVerdict(
        bool(dropped), description, days.index[-1], float(newest.rate), baseline, int(newest.requests)
    )
