"""Challengers judged on shadow traffic: the same requests as the champion, the same outcomes.

For each request a challenger answered in shadow, its list is compared with the champion's list,
the one the user was shown: how much they agree (overlap at k, Kendall's rank correlation on the
items both hold), how fast each was computed, and how well each anticipated what the user then
consumed (hit rate and NDCG at k, the relevant items being those consumed within the attribution
window from either list), with a paired bootstrap over requests for the difference. Only requests
whose attribution window closed count for the outcome figures.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from recs_platform.data.serving_log import SHOWN
from recs_platform.evaluation.metrics import hit_rate_at_k, ndcg_at_k
from recs_platform.evaluation.significance import paired_bootstrap
from recs_platform.monitoring.online import has_feedback_tables

LIST_COLUMNS = [
    "request_id",
    "served_by",
    "model_version",
    "position",
    "item_id",
    "consumed",
    "window_closed",
    "latency_ms",
]
LISTS_SQL = (
    "select feedback.request_id, feedback.served_by, feedback.model_version, feedback.position, feedback.item_id, "
    "feedback.consumed, feedback.window_closed, requests.latency_ms "
    "from attributed_feedback as feedback join stg_serving_requests as requests using (request_id, served_by)"
)


def read_lists(connection: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every computed list's items with their outcome and latency (empty before anything was served)."""
    if not has_feedback_tables(connection):
        return pd.DataFrame(columns=LIST_COLUMNS)
    return connection.execute(LISTS_SQL).df()


def shadow_comparison(lists: pd.DataFrame, k: int, n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per challenger (``served_by`` other than the champion) against the champion on the
    requests both answered. ``lists`` has one row per listed item: request_id, served_by,
    model_version, position, item_id, consumed, window_closed, latency_ms."""
    rows = [_compare(lists, alias, k, n_resamples, seed) for alias in sorted(set(lists.served_by) - {SHOWN})]
    return pd.DataFrame(rows)


def _compare(lists: pd.DataFrame, alias: str, k: int, n_resamples: int, seed: int) -> dict[str, object]:
    top = lists[lists.position <= k]
    champion, challenger = (_by_request(top[top.served_by == who]) for who in (SHOWN, alias))
    paired = champion.index.intersection(challenger.index)
    champion, challenger = champion.loc[paired], challenger.loc[paired]
    overlap = [len(set(a) & set(b)) / k for a, b in zip(champion["listed"], challenger["listed"], strict=True)]
    mature = champion["closed"] & challenger["closed"]
    relevant = [
        set(np.asarray(a)[np.asarray(ca)]) | set(np.asarray(b)[np.asarray(cb)])
        for a, ca, b, cb in zip(
            champion["listed"],
            champion["consumed_flags"],
            challenger["listed"],
            challenger["consumed_flags"],
            strict=True,
        )
    ]
    quality = {
        who: _outcomes(frame["listed"][mature], pd.Series(relevant, index=paired)[mature], k)
        for who, frame in (("champion", champion), ("challenger", challenger))
    }
    ndcg = paired_bootstrap(quality["challenger"].ndcg, quality["champion"].ndcg, n_resamples=n_resamples, seed=seed)
    return {
        "challenger": alias,
        "challenger_version": _mode(challenger["version"]),
        "champion_version": _mode(champion["version"]),
        "requests": len(paired),
        "mature_requests": int(mature.sum()),
        f"overlap@{k}": float(np.mean(overlap)) if overlap else np.nan,
        "rank_correlation": float(
            np.nanmean(
                [_kendall(a, b) for a, b in zip(champion["listed"], challenger["listed"], strict=True)] or [np.nan]
            )
        ),
        "champion_latency_p50_ms": _percentile(champion["latency"], 50),
        "challenger_latency_p50_ms": _percentile(challenger["latency"], 50),
        "challenger_latency_p99_ms": _percentile(challenger["latency"], 99),
        f"champion_hit_rate@{k}": float(quality["champion"].hit.mean()) if mature.any() else np.nan,
        f"challenger_hit_rate@{k}": float(quality["challenger"].hit.mean()) if mature.any() else np.nan,
        f"champion_ndcg@{k}": float(quality["champion"].ndcg.mean()) if mature.any() else np.nan,
        f"challenger_ndcg@{k}": float(quality["challenger"].ndcg.mean()) if mature.any() else np.nan,
        f"ndcg@{k}_diff": ndcg["mean_diff"],
        f"ndcg@{k}_diff_ci_low": ndcg["ci_low"],
        f"ndcg@{k}_diff_ci_high": ndcg["ci_high"],
    }


def _by_request(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per request: items and consumed flags in rank order, latency, version, closed window."""
    ordered = rows.sort_values(["request_id", "position"]).groupby("request_id", sort=True)
    return pd.DataFrame(
        {
            "listed": ordered.item_id.agg(list),
            "consumed_flags": ordered.consumed.agg(lambda s: list(s.astype(bool))),
            "closed": ordered.window_closed.agg("all"),
            "latency": ordered.latency_ms.first(),
            "version": ordered.model_version.first(),
        }
    )


def _outcomes(items: pd.Series, relevant: pd.Series, k: int) -> pd.DataFrame:
    """Per request, hit rate and NDCG at k of ``items`` against the ``relevant`` sets."""
    hits = np.zeros((len(items), k), dtype=bool)
    for row, (listed, wanted) in enumerate(zip(items, relevant, strict=True)):
        hits[row, : len(listed)] = [item in wanted for item in listed[:k]]
    n_relevant = np.array([len(wanted) for wanted in relevant], dtype=np.int64)
    return pd.DataFrame(
        {"hit": hit_rate_at_k(hits, n_relevant), "ndcg": ndcg_at_k(hits, n_relevant)}, index=items.index
    )


def _kendall(a: list[int], b: list[int]) -> float:
    """Kendall's tau between the two rankings of the items both lists hold (NaN below two)."""
    common = [item for item in a if item in set(b)]
    if len(common) < 2:
        return np.nan
    return float(kendalltau([a.index(i) for i in common], [b.index(i) for i in common]).statistic)


def _percentile(values: pd.Series, q: float) -> float:
    present = values.dropna()
    return float(np.percentile(present, q)) if len(present) else np.nan


def _mode(values: pd.Series) -> str:
    return str(values.mode().iloc[0]) if len(values) else ""
