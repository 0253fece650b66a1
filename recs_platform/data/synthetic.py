"""Synthetic interaction data in MovieLens landing shape, at any scale and with a learnable signal.

Users belong to demographic segments that prefer some genres; items carry genres, a latent vector
derived from them and a Zipf-like popularity prior; some items are released during the period.
A user picks items with probability proportional to ``popularity × exp(affinity / temperature)``
among the items released inside their activity window, so a personalized model can beat
popularity, while popularity alone is still a strong baseline.

Generation is vectorized and works in chunks of users, so memory stays bounded at tens of
millions of events. Sampling without replacement per user uses candidate sampling: draw
candidates from the popularity proposal, deduplicate, reweight each distinct candidate by
target weight / inclusion probability and keep the top ``k`` under Gumbel noise (Gumbel top-k).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recs_platform.data.events import write_landing_file
from recs_platform.data.movielens import GENRES as MOVIELENS_GENRES

GENRES = MOVIELENS_GENRES[1:]  # the 18 real genres, without "unknown"
OCCUPATIONS = (
    "administrator", "artist", "doctor", "educator", "engineer", "entertainment", "executive",
    "healthcare", "homemaker", "lawyer", "librarian", "marketing", "none", "other", "programmer",
    "retired", "salesman", "scientist", "student", "technician", "writer",
)  # fmt: skip
MIN_EVENTS_PER_USER = 5
N_SEGMENTS = 8
SECONDS_PER_DAY = 86_400
CHUNK_EVENTS = 500_000  # events generated per user chunk; bounds peak memory
MAX_TOP_UP_ROUNDS = 16


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and shape of a synthetic data set; the same config always gives the same data."""

    n_users: int = 1000
    n_items: int = 1700
    n_events: int = 100_000
    n_factors: int = 8
    start: str = "2024-01-01"
    days: int = 210
    seed: int = 7
    popularity_exponent: float = 1.1
    new_item_share: float = 0.3
    event_type: str = "rating"
    temperature: float = 0.5  # lower → taste dominates popularity more
    activity_sigma: float = 1.0  # lognormal spread of per-user activity

    def __post_init__(self) -> None:
        if self.n_users < 1 or self.days < 1 or self.n_factors < 1:
            raise ValueError("n_users, days and n_factors must be positive")
        if self.n_events < MIN_EVENTS_PER_USER * self.n_users:
            raise ValueError(f"n_events must be at least {MIN_EVENTS_PER_USER} per user")
        if not 0.0 <= self.new_item_share < 1.0:
            raise ValueError("new_item_share must be in [0, 1)")
        if self.n_events > self.n_users * self.max_events_per_user:
            raise ValueError("n_events exceeds what the catalogue allows without duplicates")

    @property
    def n_old_items(self) -> int:
        """Items released before the period starts, available to every user all the time."""
        return self.n_items - round(self.n_items * self.new_item_share)

    @property
    def max_events_per_user(self) -> int:
        """Half the always-available items: keeps sampling without replacement cheap and sane."""
        return max(MIN_EVENTS_PER_USER, self.n_old_items // 2)


@dataclass(frozen=True)
class Synthetic:
    """The three tables in the same shape as ``movielens.read`` produces."""

    events: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame


@dataclass(frozen=True)
class _Users:
    taste: np.ndarray  # (n_users, n_factors)
    bias: np.ndarray  # rating bias per user
    window_start: np.ndarray  # activity window in days since start
    window_end: np.ndarray
    frame: pd.DataFrame


@dataclass(frozen=True)
class _Items:
    vectors: np.ndarray  # (n_items, n_factors)
    log_popularity: np.ndarray
    bias: np.ndarray  # rating bias per item ("quality")
    release_day: np.ndarray  # days since start; negative for back-catalogue items
    frame: pd.DataFrame


def generate(config: SyntheticConfig) -> Synthetic:
    """Generate users, items and events for ``config`` deterministically from its seed."""
    rng = np.random.default_rng(config.seed)
    genre_vectors = rng.normal(size=(len(GENRES), config.n_factors))
    users = _make_users(rng, config, genre_vectors)
    items = _make_items(rng, config, genre_vectors)
    _normalize_affinity(rng, users, items)
    counts = _activity(rng, config)
    events = _make_events(rng, config, users, items, counts)
    return Synthetic(events=events, users=users.frame, items=items.frame)


def write_to_landing(synthetic: Synthetic, landing: Path, name_prefix: str = "synthetic") -> list[Path]:
    """Write user and item catalogs plus one events file per day, like ``import_to_landing``."""
    written = [
        write_landing_file(synthetic.users, landing, "users", f"{name_prefix}-users"),
        write_landing_file(synthetic.items, landing, "items", f"{name_prefix}-items"),
    ]
    days = synthetic.events.timestamp.dt.strftime("%Y-%m-%d")
    for day, frame in synthetic.events.groupby(days, sort=True):
        written.append(write_landing_file(frame, landing, "events", f"{name_prefix}-{day}"))
    return written


def _make_users(rng: np.random.Generator, config: SyntheticConfig, genre_vectors: np.ndarray) -> _Users:
    """Users inherit demographics and taste from a segment, so demographics predict taste."""
    n, n_genres = config.n_users, len(GENRES)
    favourites = np.argsort(rng.random((N_SEGMENTS, n_genres)), axis=1)[:, :2]
    segment_taste = genre_vectors[favourites].mean(axis=1)
    segment_age = rng.uniform(18, 60, N_SEGMENTS)
    segment_male_share = rng.uniform(0.3, 0.85, N_SEGMENTS)
    segment_occupation = rng.dirichlet(np.full(len(OCCUPATIONS), 0.5), N_SEGMENTS)

    segment = rng.integers(0, N_SEGMENTS, n)
    taste = segment_taste[segment] + 0.6 * rng.normal(size=(n, config.n_factors))
    age = np.clip(np.rint(rng.normal(segment_age[segment], 7.0)), 7, 80).astype("int64")
    gender = np.where(rng.random(n) < segment_male_share[segment], "M", "F")
    occupation = _categorical(rng, segment_occupation[segment])
    width = rng.uniform(0.2, 1.0, n) * config.days  # activity windows give churn and late joiners
    window_start = rng.random(n) * (config.days - width)
    frame = pd.DataFrame(
        {
            "user_id": np.arange(1, n + 1, dtype="int64"),
            "age": age,
            "gender": gender.astype(object),
            "occupation": np.asarray(OCCUPATIONS, dtype=object)[occupation],
            "zip_code": pd.Series(rng.integers(0, 100_000, n)).astype(str).str.zfill(5).to_numpy(dtype=object),
        }
    )
    bias = rng.normal(0.0, 0.35, n)
    return _Users(taste, bias, window_start, window_start + width, frame)


def _make_items(rng: np.random.Generator, config: SyntheticConfig, genre_vectors: np.ndarray) -> _Items:
    """Items get 1-3 genres (some genres far more common), genre-driven vectors and a Zipf prior."""
    n, n_genres = config.n_items, len(GENRES)
    genre_prior = rng.dirichlet(np.full(n_genres, 1.5))
    # Gumbel top-3 draws distinct genres weighted by the prior; the first 1-3 of them are kept.
    ranked = np.argsort(-(np.log(genre_prior) + rng.gumbel(size=(n, n_genres))), axis=1)[:, :3]
    n_genres_per_item = rng.choice([1, 2, 3], size=n, p=[0.5, 0.35, 0.15])
    flags = np.zeros((n, n_genres), dtype=bool)
    for slot in range(3):
        rows = np.flatnonzero(n_genres_per_item > slot)
        flags[rows, ranked[rows, slot]] = True
    vectors = flags @ genre_vectors / flags.sum(axis=1, keepdims=True)
    vectors = vectors + 0.5 * rng.normal(size=(n, config.n_factors))

    rank = rng.permutation(n) + 1
    log_popularity = -config.popularity_exponent * np.log(rank)
    quality = 0.3 * (log_popularity - log_popularity.mean()) / max(log_popularity.std(), 1e-9)
    bias = quality + rng.normal(0.0, 0.3, n)  # popular items are rated a little higher

    n_new = n - config.n_old_items
    release_day = -rng.integers(1, 20 * 365, n)  # back catalogue: up to 20 years before start
    new = rng.choice(n, size=n_new, replace=False)
    release_day[new] = rng.integers(0, config.days, n_new)
    start = pd.Timestamp(config.start)
    names = np.asarray(GENRES, dtype=object)
    frame = pd.DataFrame(
        {
            "item_id": np.arange(1, n + 1, dtype="int64"),
            "title": [f"Item {i + 1} ({names[ranked[i, 0]]})" for i in range(n)],
            "release_date": (start + pd.to_timedelta(release_day, unit="D")).date,
            "genres": ["|".join(names[row]) for row in flags],
        }
    )
    return _Items(vectors, log_popularity, bias, release_day.astype(float), frame)


def _categorical(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One draw per row of a (rows, categories) probability matrix."""
    cumulative = probabilities.cumsum(axis=1)
    draws = rng.random((len(probabilities), 1)) * cumulative[:, -1:]
    return np.minimum((cumulative < draws).sum(axis=1), probabilities.shape[1] - 1)


def _normalize_affinity(rng: np.random.Generator, users: _Users, items: _Items) -> None:
    """Rescale vectors in place so affinities have unit spread; the temperature then means the same
    thing whatever ``n_factors`` is."""
    u = rng.integers(0, len(users.taste), 20_000)
    i = rng.integers(0, len(items.vectors), 20_000)
    spread = np.einsum("ij,ij->i", users.taste[u], items.vectors[i]).std()
    scale = 1.0 / np.sqrt(max(spread, 1e-9))
    users.taste[:] *= scale
    items.vectors[:] *= scale


def _activity(rng: np.random.Generator, config: SyntheticConfig) -> np.ndarray:
    """Heavy-tailed (lognormal) event counts per user, each in [5, cap], summing to n_events."""
    weights = rng.lognormal(0.0, config.activity_sigma, config.n_users)
    extra = _water_fill(weights, config.n_events - MIN_EVENTS_PER_USER * config.n_users,
                        config.max_events_per_user - MIN_EVENTS_PER_USER)  # fmt: skip
    return MIN_EVENTS_PER_USER + extra


def _water_fill(weights: np.ndarray, total: int, cap: int) -> np.ndarray:
    """Split ``total`` proportionally to ``weights`` in integers, with no share above ``cap``."""
    share = np.zeros(len(weights))
    free = np.ones(len(weights), dtype=bool)
    remaining = float(total)
    while free.any():
        proposal = remaining * weights[free] / weights[free].sum()
        over = proposal >= cap
        if not over.any():
            share[free] = proposal
            break
        capped = np.flatnonzero(free)[over]
        share[capped] = cap
        free[capped] = False
        remaining -= cap * len(capped)
    counts = np.floor(share).astype("int64")
    leftover = total - int(counts.sum())
    counts[np.argsort(counts - share, kind="stable")[:leftover]] += 1  # largest remainders first
    return counts


def _make_events(
    rng: np.random.Generator, config: SyntheticConfig, users: _Users, items: _Items, counts: np.ndarray
) -> pd.DataFrame:
    """Generate events chunk by chunk of users and assemble the landing-shaped frame."""
    rows_per_chunk = max(1, CHUNK_CELLS // config.n_items)
    parts = [
        _events_for_users(rng, config, users, items, chunk, counts[chunk])
        for chunk in np.array_split(np.arange(config.n_users), -(-config.n_users // rows_per_chunk))
    ]
    user, item, seconds, value = (np.concatenate(column) for column in zip(*parts, strict=True))
    order = np.lexsort((item, user, seconds))  # chronological, ties broken deterministically
    user, item, seconds, value = user[order] + 1, item[order] + 1, seconds[order], value[order]
    user_text, item_text = user.astype(str).astype(object), item.astype(str).astype(object)
    return pd.DataFrame(
        {
            "event_id": "syn-" + user_text + "-" + item_text,
            "user_id": user.astype("int64"),
            "item_id": item.astype("int64"),
            "event_type": config.event_type,
            "value": value,
            "timestamp": pd.Timestamp(config.start) + pd.to_timedelta(seconds, unit="s"),
        }
    )


def _events_for_users(
    rng: np.random.Generator, config: SyntheticConfig, users: _Users, items: _Items, chunk: np.ndarray, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``k[j]`` distinct items for each user ``chunk[j]``, with timestamps and ratings.

    The choice weight is popularity × exp(affinity / temperature) × the share of the user's
    activity window during which the item is out. Drawing the event time uniformly after that
    makes every (item, time) pair with the item released equally likely, i.e. choice among
    the items released at the event time.
    """
    start, end = users.window_start[chunk, None], users.window_end[chunk, None]
    opens = np.maximum(start, items.release_day[None, :])
    with np.errstate(divide="ignore"):
        exposure = np.log(np.clip((end - opens) / (end - start), 0.0, None))  # -inf: never out for the user
    affinity = users.taste[chunk] @ items.vectors.T
    log_weight = items.log_popularity + affinity / config.temperature + exposure
    row, item = _sample_without_replacement(rng, log_weight, k)

    user, affinity, opens, end = chunk[row], affinity[row, item], opens[row, item], end[row, 0]
    seconds = ((opens + rng.random(len(row)) * (end - opens)) * SECONDS_PER_DAY).astype("int64")
    raw = 3.0 + 0.8 * affinity + users.bias[user] + items.bias[item] + rng.normal(0.0, 0.6, len(row))
    return user, item, seconds, np.clip(np.rint(raw), 1.0, 5.0)


def _sample_without_replacement(
    rng: np.random.Generator, log_weight: np.ndarray, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``k[r]`` distinct columns of each row ``r`` drawn successively with probability ∝ exp(log_weight).

    Cheap rows draw with replacement from the row CDF and keep first occurrences, which is exactly
    successive sampling; rows that would need many redraws (large ``k`` relative to the support)
    use the Gumbel top-k trick, which has the same distribution but costs a sort.
    """
    weight = np.exp(log_weight - log_weight.max(axis=1, keepdims=True))
    support = (weight > 0).sum(axis=1)
    heavy = k * 4 > support
    row, item = _successive_draws(rng, weight, k, ~heavy)
    short = np.bincount(row, minlength=len(k)) < np.where(heavy, 0, k)  # rare: redraws ran out
    parts = [(row, item), *(_gumbel_top_k(rng, log_weight[r], k[r], r) for r in np.flatnonzero(heavy | short))]
    row, item = (np.concatenate(column) for column in zip(*parts, strict=True))
    if short.any():  # drop the incomplete successive draws of rows redone with Gumbel
        keep = ~short[row] | np.concatenate([np.zeros(len(parts[0][0]), bool), np.ones(len(row) - len(parts[0][0]), bool)])
        row, item = row[keep], item[keep]
    return row, item
