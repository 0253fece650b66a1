"""The ranker's features: one function computes them for training rows, offline scoring and serving.

A ``FeatureSnapshot`` is everything about items and users the features read that is not the
request itself: item statistics counted on one set of interactions (popularity, trend, first and
last interaction), item attribute tokens and numeric columns, user category vocabularies. It is
built once from interactions and the catalogue tables and saved with the model, so serving reads
the exact transform the ranker was trained with. A ``UserInputs`` is what one request knows about
a user: history and its times, category codes, the request time. ``user_item_features`` maps a
snapshot, a user and candidate items (with their retrieval scores and ranks) to one row per
item; nothing else computes ranker features.

Catalogue columns are optional: a configured column the tables lack is missing (NaN), so the same
code runs on catalogues with or without genres, release years or demographics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recs_platform.models.heuristics import csr_restore, csr_state
from recs_platform.models.two_tower import as_strings, attribute_tokens, encode, vocabulary

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class FeatureColumns:
    """Which catalogue columns the features use; absent ones are missing, never an error."""

    user_features: Sequence[str]
    item_features: Sequence[str]
    item_numeric: Sequence[str]
    trend_days: float
    recent_items: int


@dataclass(frozen=True)
class UserInputs:
    """One user at one moment, as the ranker sees them."""

    history: np.ndarray  # item indices the model knows
    times: np.ndarray  # float64 epoch seconds aligned with ``history`` (NaN when unknown)
    codes: np.ndarray  # float64 user category codes (NaN when unknown), one per user column
    now: float  # request time, epoch seconds (NaN when unknown)
    user_index: int | None = None  # the model's index of a known user, else None


def epoch_seconds(times: pd.Series | np.ndarray) -> np.ndarray:
    """Datetimes as float64 seconds since the epoch (whole seconds; NaT as NaN)."""
    values = pd.to_datetime(pd.Series(np.asarray(times)), utc=False).astype("datetime64[s]")
    seconds = values.to_numpy().astype(np.int64).astype(np.float64)
    return np.where(values.isna().to_numpy(), np.nan, seconds)


class FeatureSnapshot:
    """Item statistics and attribute encodings at one moment, aligned with the model's item indices."""

    def __init__(self, columns: FeatureColumns, arrays: dict[str, np.ndarray]) -> None:
        self.columns = columns
        self.arrays = arrays
        shape = (len(arrays["tokens_indptr"]) - 1, len(arrays["token_names"]))
        # Dense: a few dozen attribute values per catalogue, and per-request sparse indexing costs
        # more than the arithmetic (items x values float64: 1,682 x 19 on MovieLens-100K).
        self.tokens = csr_restore("tokens", arrays, shape).toarray()
        self.user_vocab = {column: arrays[f"vocab.{column}"] for column in columns.user_features}

    @classmethod
    def build(
        cls,
        columns: FeatureColumns,
        interactions: pd.DataFrame,
        n_items: int,
        item_table: pd.DataFrame,
        user_table: pd.DataFrame,
    ) -> FeatureSnapshot:
        """Statistics of ``interactions`` (``item_index`` and ``seconds``), catalogue encodings of
        ``item_table`` (one row per item index, any columns) and vocabularies of ``user_table``."""
        items, seconds = interactions.item_index.to_numpy(), interactions.seconds.to_numpy()
        reference = float(np.nanmax(seconds)) if len(seconds) and np.isfinite(seconds).any() else np.nan
        recent = items[seconds >= reference - columns.trend_days * SECONDS_PER_DAY]
        token_names, tokens = _item_tokens(item_table, columns.item_features)
        arrays = {
            "reference": np.array([reference]),
            "item_count": np.bincount(items, minlength=n_items).astype(np.float64),
            "item_recent": np.bincount(recent, minlength=n_items).astype(np.float64),
            "item_first": _per_item(items, seconds, n_items, np.fmin),
            "item_last": _per_item(items, seconds, n_items, np.fmax),
            "item_numeric": _numeric(item_table, columns.item_numeric),
            "token_names": token_names,
            **csr_state("tokens", tokens),
            **{f"vocab.{c}": vocabulary(as_strings(_column(user_table, c))) for c in columns.user_features},
        }
        return cls(columns, arrays)

    def user_codes(self, table: pd.DataFrame) -> np.ndarray:
        """Category codes of each row of ``table`` (NaN for missing or never-seen values)."""
        codes = [encode(as_strings(_column(table, c)), self.user_vocab[c]) for c in self.columns.user_features]
        stacked = np.stack(codes, axis=1).astype(np.float64) if codes else np.zeros((len(table), 0))
        return np.where(stacked == 0, np.nan, stacked)

    def feature_names(self, sources: Sequence[str]) -> list[str]:
        retrieval = [f"{source}_{what}" for source in sources for what in ("score", "rank")]
        numeric = self.columns.item_numeric
        return [
            *retrieval,
            "n_sources",
            "user_history_length",
            "user_days_since_last",
            "user_mean_log_popularity",
            *(f"user_{column}" for column in self.columns.user_features),
            "item_log_popularity",
            "item_trend",
            "item_days_since_last",
            "item_days_since_first",
            *(f"item_{column}" for column in numeric),
            "affinity_mean",
            "affinity_max",
            "affinity_recent",
            "days_since_same_attribute",
            "popularity_gap",
            *(f"{column}_gap" for column in numeric),
            "hour",
            "weekday",
        ]

    def categorical_features(self) -> list[str]:
        return [f"user_{column}" for column in self.columns.user_features]


def user_item_features(
    snapshot: FeatureSnapshot, user: UserInputs, items: np.ndarray, retrieval: np.ndarray
) -> np.ndarray:
    """One float64 row per item in ``items``, columns as ``snapshot.feature_names``.

    ``retrieval`` holds each source's score and rank of each item (NaN where a source did not
    retrieve it), as ``_retrieved`` in ``two_stage`` lays them out.
    """
    arrays, n = snapshot.arrays, len(items)
    order = np.lexsort((user.history, user.times))
    history, times = user.history[order], user.times[order]
    log_popularity = np.log1p(arrays["item_count"])
    user_part = [
        np.full(n, float(len(history))),
        np.full(n, _days(user.now, np.max(times) if len(times) else np.nan)),
        np.full(n, log_popularity[history].mean() if len(history) else np.nan),
        *(np.full(n, code) for code in user.codes),
    ]
    item_part = [
        log_popularity[items],
        _trend(arrays)[items],
        _days(user.now, arrays["item_last"][items]),
        _days(user.now, arrays["item_first"][items]),
        *arrays["item_numeric"][items].T,
    ]
    cross = [
        *_affinities(snapshot.tokens, history, items, snapshot.columns.recent_items),
        _days(user.now, _last_shared_attribute(snapshot.tokens, history, times, items)),
        log_popularity[items] - (log_popularity[history].mean() if len(history) else np.nan),
        *(_gap(arrays["item_numeric"], history, items).T),
    ]
    context = _hour_and_weekday(user.now)
    n_sources = np.isfinite(retrieval[:, 0::2]).sum(axis=1).astype(np.float64)
    columns = [*retrieval.T, n_sources, *user_part, *item_part, *cross, np.full(n, context[0]), np.full(n, context[1])]
    return np.column_stack(columns).astype(np.float64) if n else np.zeros((0, len(columns)))


def _days(now: float, then: np.ndarray | float) -> np.ndarray | float:
    return (now - then) / SECONDS_PER_DAY


def _trend(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """log of the item's share of its interactions in the trend window, relative to everyone's."""
    count, recent = arrays["item_count"], arrays["item_recent"]
    overall = np.log((recent.sum() + 1.0) / (count.sum() + 1.0))
    return np.log((recent + 1.0) / (count + 1.0)) - overall


def _affinities(
    tokens: np.ndarray, history: np.ndarray, items: np.ndarray, recent_items: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and max over the item's attribute values of the share of the user's history carrying
    each value, and the mean over the ``recent_items`` newest history items only."""
    if not tokens.shape[1]:
        return (np.full(len(items), np.nan),) * 3
    candidate = tokens[items]
    n_tokens = np.maximum(candidate.sum(axis=1), 1.0)
    profile = _token_share(tokens, history)
    recent = _token_share(tokens, history[-recent_items:])
    mean = candidate @ profile / n_tokens
    recent_mean = candidate @ recent / n_tokens
    maximum = (candidate * profile[None, :]).max(axis=1)
    return mean, maximum, recent_mean


def _token_share(tokens: np.ndarray, history: np.ndarray) -> np.ndarray:
    if not len(history):
        return np.zeros(tokens.shape[1])
    return tokens[history].sum(axis=0) / len(history)


def _last_shared_attribute(tokens: np.ndarray, history: np.ndarray, times: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The newest time the user consumed an item sharing an attribute value with each item (NaN if never)."""
    known = np.isfinite(times)
    if not known.any() or not tokens.shape[1]:
        return np.full(len(items), np.nan)
    # Shifted so that 0 means "never" in the maxima below.
    shift = np.min(times[known]) - 1.0
    token_last = (tokens[history[known]] * (times[known] - shift)[:, None]).max(axis=0)
    latest = (tokens[items] * token_last[None, :]).max(axis=1)
    return np.where(latest > 0, latest + shift, np.nan)


def _gap(numeric: np.ndarray, history: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Each numeric item column minus its mean over the user's history."""
    if not len(history) or not numeric.shape[1]:
        return np.full((len(items), numeric.shape[1]), np.nan)
    values = numeric[history]
    counts = np.isfinite(values).sum(axis=0)
    means = np.where(counts > 0, np.nansum(values, axis=0) / np.maximum(counts, 1), np.nan)
    return numeric[items] - means[None, :]


def _hour_and_weekday(now: float) -> tuple[float, float]:
    if not np.isfinite(now):
        return np.nan, np.nan
    moment = pd.Timestamp(int(now), unit="s")
    return float(moment.hour), float(moment.weekday())


def _per_item(items: np.ndarray, seconds: np.ndarray, n_items: int, pick: Any) -> np.ndarray:
    values = np.full(n_items, np.nan)
    pick.at(values, items, seconds)
    return values


def _column(table: pd.DataFrame, column: str) -> pd.Series:
    return table[column] if column in table else pd.Series([None] * len(table), index=table.index, dtype=object)


def _numeric(table: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    values = [pd.to_numeric(_column(table, c), errors="coerce").to_numpy(dtype=np.float64) for c in columns]
    return np.stack(values, axis=1) if values else np.zeros((len(table), 0))


def _item_tokens(table: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, sp.csr_matrix]:
    """Binary items x attribute-value matrix: one token per ``column=value`` (as the two-tower's)."""
    per_item = attribute_tokens(table, list(columns))
    flat = np.asarray([token for item in per_item for token in item], dtype=str)
    names = vocabulary(flat)
    rows = np.repeat(np.arange(len(per_item)), [len(item) for item in per_item])
    cols = encode(flat, names) - 1 if len(flat) else np.zeros(0, dtype=np.int64)
    matrix = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(table), len(names)))
    matrix.data[:] = 1.0
    return names, matrix
