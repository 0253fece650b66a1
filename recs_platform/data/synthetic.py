"""Synthetic interaction data in MovieLens landing shape, at any scale and with a learnable signal.

Users belong to demographic segments that prefer some genres; items carry genres, a latent vector
derived from them and a Zipf-like popularity prior; some items are released during the period.
A user picks items with probability proportional to ``popularity × exp(affinity / temperature)``
among the items released inside their activity window, so a personalized model can beat
popularity, while popularity alone is still a strong baseline.

Generation is vectorized and scores users in chunks against the whole catalogue, so memory stays
bounded and cost grows with users × items. Each user's items are an exact weighted sample
without replacement (successive sampling), so the affinity term shapes the data as specified.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from threadpoolctl import threadpool_limits

from recs_platform.data.contract import CatalogColumn, DatasetContract
from recs_platform.data.events import Track, write_landing_file
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
CHUNK_CELLS = 4_000_000  # user × item cells scored at once; bounds peak memory
BLOCK = 32  # columns per block in the two-level (block, then column) sampler


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


@dataclass(frozen=True)
class _Workspace:
    """Buffers reused across user chunks: fresh multi-megabyte arrays per chunk cost page faults."""

    right: np.ndarray  # (n_factors + 1, padded items): item vectors and log popularity, float32
    weight: np.ndarray  # (chunk rows, padded items) choice weights, float32
    exposure: np.ndarray  # (chunk rows, new items) float32


@dataclass(frozen=True)
class _World:
    """Everything event generation reads: the configuration, users, items and the chunk buffers."""

    config: SyntheticConfig
    users: _Users
    items: _Items
    workspace: _Workspace


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


def write_to_landing(
    synthetic: Synthetic, landing: Path, name_prefix: str = "synthetic", track: Track = iter
) -> list[Path]:
    """Write user and item catalogs plus one events file per day, like ``import_to_landing``;
    ``track`` walks the daily files."""
    catalogs = {"users": synthetic.users, "items": synthetic.items}
    written = [
        write_landing_file(frame, landing, kind, f"{name_prefix}-{kind}")
        for kind, frame in catalogs.items()
        if len(frame)
    ]
    days = synthetic.events.timestamp.dt.strftime("%Y-%m-%d")
    for day, frame in track(list(synthetic.events.groupby(days, sort=True))):
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
    # Activity windows give churn and late joiners; windows may run past either end of the period
    # (users active before or after it), which keeps the event rate roughly flat over the period.
    width = rng.uniform(0.1, 0.6, n) * config.days
    window_start = rng.uniform(-0.5 * width, config.days - 0.5 * width)
    window_end = np.minimum(window_start + width, config.days)
    window_start = np.maximum(window_start, 0.0)
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
    return _Users(taste, bias, window_start, window_end, frame)


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

    # Ids follow release order, as in a catalogue that grows: the back catalogue (up to 20 years
    # old) first, then the new releases. Event generation relies on new items coming last.
    n_old = config.n_old_items
    back_catalogue = -rng.integers(1, 20 * 365, n_old)
    release_day = np.sort(np.concatenate([back_catalogue, rng.integers(0, config.days, n - n_old)]))
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
    world = _World(config, users, items, _workspace(config, items, rows_per_chunk))
    # The user × item product has an inner size of n_factors + 1: it is memory-bound, and BLAS
    # threads only add synchronisation (ten times slower on a busy machine).
    with threadpool_limits(limits=1, user_api="blas"):
        parts = [
            _events_for_users(rng, world, chunk, counts[chunk])
            for chunk in np.array_split(np.arange(config.n_users), -(-config.n_users // rows_per_chunk))
        ]
    user, item, seconds, value = (np.concatenate(column) for column in zip(*parts, strict=True))
    order = np.argsort(seconds, kind="stable")  # chronological; stable keeps it deterministic
    user, item, seconds, value = user[order] + 1, item[order] + 1, seconds[order], value[order]
    return pd.DataFrame(
        {
            "event_id": _event_ids(user, item),
            "user_id": user.astype("int64"),
            "item_id": item.astype("int64"),
            "event_type": config.event_type,
            "value": value,
            "timestamp": pd.Timestamp(config.start) + pd.to_timedelta(seconds, unit="s"),
        }
    )


def _event_ids(user: np.ndarray, item: np.ndarray) -> np.ndarray:
    """``syn-{user}-{item}`` as Python strings; Arrow's kernels are far faster than NumPy's object loop."""
    text = [pc.cast(pa.array(ids), pa.string()) for ids in (user, item)]
    return pc.binary_join_element_wise("syn", *text, "-").to_numpy(zero_copy_only=False)


def _workspace(config: SyntheticConfig, items: _Items, rows: int) -> _Workspace:
    """Allocate the chunk buffers; padding items get a vanishing weight so blocks divide evenly."""
    padded = -(-config.n_items // BLOCK) * BLOCK
    right = np.zeros((config.n_factors + 1, padded), dtype=np.float32)
    right[:-1, : config.n_items] = items.vectors.T
    right[-1] = -1e30
    right[-1, : config.n_items] = items.log_popularity
    weight = np.empty((rows, padded), dtype=np.float32)
    exposure = np.empty((rows, config.n_items - config.n_old_items), dtype=np.float32)
    return _Workspace(right, weight, exposure)


def _events_for_users(
    rng: np.random.Generator, world: _World, chunk: np.ndarray, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``k[j]`` distinct items for each user ``chunk[j]``, with timestamps and ratings.

    Drawing the event time uniformly between the item's release (or the window start) and the
    window end, after choosing the item with weight ∝ that span, makes every released
    (item, time) pair equally likely: the choice is among the items out at the event time.
    """
    row, item = _choose_items(rng, world, chunk, k)
    users, items, user = world.users, world.items, chunk[row]
    affinity = np.einsum("ij,ij->i", users.taste[user], items.vectors[item])
    opens = np.maximum(users.window_start[user], items.release_day[item])
    end = users.window_end[user]
    seconds = ((opens + rng.random(len(row)) * (end - opens)) * SECONDS_PER_DAY).astype("int64")
    raw = 2.5 + 0.8 * affinity + users.bias[user] + items.bias[item] + rng.normal(0.0, 0.6, len(row))
    return user, item, seconds, np.clip(np.rint(raw), 1.0, 5.0)


def _choose_items(
    rng: np.random.Generator, world: _World, chunk: np.ndarray, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(row in chunk, item) pairs: ``k[j]`` distinct items per user, a weighted sample without replacement.

    Most users draw with replacement and keep first occurrences, which is exactly successive
    sampling and cheap while ``k`` is small against the support. Heavy users, and users whose
    redraws ran out, use the Gumbel top-k trick on exact log weights: same distribution, but a
    pass over the catalogue per user.
    """
    config = world.config
    weight = _choice_weights(world, chunk)
    light = k * 4 <= config.n_old_items  # old items are out for everyone, so support >= n_old
    row, item, done = _successive_draws(rng, weight, np.where(light, k, 0))
    redo = np.flatnonzero(~done)
    if len(redo) == 0:
        return row, item
    score = _log_choice_weights(world, chunk[redo]) + rng.gumbel(size=(len(redo), config.n_items))
    extra = [np.argpartition(-score[j], k[r] - 1)[: k[r]] for j, r in enumerate(redo)]
    return np.concatenate([row, np.repeat(redo, k[redo])]), np.concatenate([item, *extra])


def _log_choice_weights(world: _World, chunk: np.ndarray) -> np.ndarray:
    """log(popularity × exp(affinity / temperature) × share of the user's window the item is out)."""
    config, users, items = world.config, world.users, world.items
    start, end = users.window_start[chunk, None], users.window_end[chunk, None]
    exposure = np.clip((end - np.maximum(start, items.release_day)) / (end - start), 0.0, None)
    with np.errstate(divide="ignore"):
        return items.log_popularity + users.taste[chunk] @ items.vectors.T / config.temperature + np.log(exposure)


def _choice_weights(world: _World, chunk: np.ndarray) -> np.ndarray:
    """``exp(_log_choice_weights)`` up to a factor per user, fast: this is the hot loop.

    Works in float32 in reused buffers, popularity rides along in the matrix product and only the
    new-item block (the last ids) needs the exposure factor. Tiny weights may underflow to 0;
    users left short because of that fall back to the exact path.
    """
    config, users, items, workspace = world.config, world.users, world.items, world.workspace
    left = np.hstack([users.taste[chunk] / config.temperature, np.ones((len(chunk), 1))]).astype(np.float32)
    weight = np.matmul(left, workspace.right, out=workspace.weight[: len(chunk)])
    weight -= weight.max(axis=1, keepdims=True)  # exp stays finite at any temperature
    np.exp(weight, out=weight)
    start = users.window_start[chunk, None].astype(np.float32)
    end = users.window_end[chunk, None].astype(np.float32)
    exposure = workspace.exposure[: len(chunk)]
    np.maximum(start, items.release_day[None, config.n_old_items :].astype(np.float32), out=exposure)
    np.subtract(end, exposure, out=exposure)
    exposure /= end - start
    np.maximum(exposure, 0.0, out=exposure)
    weight[:, config.n_old_items : config.n_items] *= exposure
    return weight


def _successive_draws(
    rng: np.random.Generator, weight: np.ndarray, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First ``k[r]`` distinct draws per row from repeated draws with replacement.

    Rows short of ``k`` distinct columns draw again with a doubled batch while their draws stay
    within a budget (beyond it a Gumbel pass is cheaper and memory stays bounded). Rows with
    ``k`` 0 and rows still short are left out and flagged as not done.
    """
    n_rows, n_cols = weight.shape
    owners, cols = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    batch = np.where(k > 0, k + k // 2 + 4, 0)
    budget = batch + n_cols // 16
    drawn, have = np.zeros(n_rows, dtype=np.int64), np.zeros(n_rows, dtype=np.int64)
    first = np.empty(0, dtype=np.int64)
    draw = _block_sampler(weight)
    while batch.any():
        owner = np.repeat(np.arange(n_rows), batch)
        col, valid = draw(owner, rng.random(len(owner)))
        owners, cols = np.concatenate([owners, owner[valid]]), np.concatenate([cols, col[valid]])
        drawn += batch
        first = _first_draws(owners, cols, n_cols)
        have = np.bincount(owners[first], minlength=n_rows)
        batch = np.where((have < k) & (drawn + 2 * batch <= budget), 2 * batch, 0)
    done = (k > 0) & (have >= k)
    rank = np.arange(len(first)) - np.searchsorted(owners[first], owners[first])
    keep = first[(rank < k[owners[first]]) & done[owners[first]]]
    return owners[keep], cols[keep], done


def _first_draws(owners: np.ndarray, cols: np.ndarray, n_cols: int) -> np.ndarray:
    """Index of the first draw of each distinct (owner, col), ordered by owner, then draw order.

    Sorting values with the draw index packed into the low 32 bits is much faster than argsort
    (cells < 2**31 since a chunk has at most ``CHUNK_CELLS``, and draws per chunk < 2**32).
    """
    low = np.int64(0xFFFFFFFF)
    draw_index = np.arange(len(owners), dtype=np.int64)
    by_cell = np.sort(((owners * n_cols + cols) << 32) | draw_index)
    cell = by_cell >> 32
    first = by_cell[np.concatenate([[True], cell[1:] != cell[:-1]])] & low
    return np.sort((owners[first] << 32) | first) & low


def _block_sampler(weight: np.ndarray) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Inverse-CDF draws of one column per (row, uniform) pair, in two levels.

    A full per-cell CDF would cost a slow sequential pass over every cell; block sums are cheap,
    so draws pick a block of ``BLOCK`` columns from block CDFs, then a column inside it.
    """
    n_blocks = weight.shape[1] // BLOCK
    blocks = weight.reshape(-1, BLOCK)  # all rows' blocks, row-major
    block_sum = blocks.sum(axis=1).astype(np.float64)
    cdf = np.cumsum(block_sum)  # one CDF across rows: row r spans blocks [r * n_blocks, (r + 1) * n_blocks)
    row_end = cdf[n_blocks - 1 :: n_blocks]
    row_start = np.concatenate([[0.0], row_end[:-1]])
    prefix = np.triu(np.ones((BLOCK, BLOCK), dtype=np.float32))

    def draw(owner: np.ndarray, uniform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        target = row_start[owner] + uniform * (row_end - row_start)[owner]
        block = np.minimum(np.searchsorted(cdf, target, side="right"), len(cdf) - 1)
        inside = (target - (cdf[block] - block_sum[block])).astype(np.float32)
        # Prefix sums inside the block as a product with a triangular matrix: BLAS beats cumsum here.
        above = blocks[block] @ prefix > inside[:, None]
        col = (block % n_blocks) * BLOCK + above.argmax(axis=1)
        # Float round-off can land on a neighbouring row or a zero-weight cell; such draws are dropped.
        valid = (block // n_blocks == owner) & above[:, -1] & (weight[owner, col] > 0)
        return col, valid

    return draw


def shaped_for_contract(data: Synthetic, contract: DatasetContract, seed: int = 7) -> Synthetic:
    """The same users, items and events, in the shape ``contract`` declares.

    The learnable signal is kept: the first categorical user attributes carry the segment-driven
    occupation and gender, the first multi-valued item attribute carries the genres (joined with
    the contract's separator), a date column carries the release date. Further attributes get
    random values. String ids become ``user-000042`` / ``item-000042``; event types are drawn
    among the contract's positive types; a catalogue the contract lacks is left out (empty).
    """
    rng = np.random.default_rng(seed)
    user_id, item_id = _contract_ids(contract, "user_id", "user"), _contract_ids(contract, "item_id", "item")
    positive = sorted(contract.positive_weights)
    events = data.events.assign(user_id=user_id(data.events.user_id), item_id=item_id(data.events.item_id))
    if not events.event_type.isin(positive).all():
        events["event_type"] = np.asarray(positive, dtype=object)[rng.integers(0, len(positive), len(events))]
    if "rating" not in positive:
        events["value"] = np.nan
    users = _shaped_catalog(
        data.users, contract, "users", rng, {"numeric": "age", "categorical": ["occupation", "gender"]}
    )
    items = _shaped_catalog(data.items, contract, "items", rng, {"multi": "genres", "date": "release_date"})
    if contract.title_column:
        items[contract.title_column] = data.items.title.to_numpy()
    users.insert(0, "user_id", user_id(data.users.user_id).to_numpy())
    items.insert(0, "item_id", item_id(data.items.item_id).to_numpy())
    empty = pd.DataFrame()
    return Synthetic(
        events, users if contract.has_catalog("users") else empty, items if contract.has_catalog("items") else empty
    )


def _contract_ids(contract: DatasetContract, column: str, prefix: str) -> Callable[[pd.Series], pd.Series]:
    if contract.id_type(column) == "integer":
        return lambda ids: ids
    return lambda ids: prefix + "-" + ids.astype(str).str.zfill(6)


def _shaped_catalog(
    source: pd.DataFrame, contract: DatasetContract, kind: str, rng: np.random.Generator, carriers: dict
) -> pd.DataFrame:
    """The contract's columns of one catalogue: a source column of the same name, else the next
    signal-carrying source column of the same kind, else random values."""
    available = {key: list(value) if isinstance(value, list) else [value] for key, value in carriers.items()}
    shaped = pd.DataFrame(index=source.index)
    for column in contract.catalog(kind):
        if column.name == contract.title_column:
            continue
        carrier = available.get(column.kind, [])
        if column.name in source:
            shaped[column.name] = source[column.name].to_numpy()
        elif carrier:
            shaped[column.name] = _carried(source[carrier.pop(0)], column)
        else:
            shaped[column.name] = _random_values(rng, column, len(source))
    return shaped.reset_index(drop=True)


def _carried(values: pd.Series, column: CatalogColumn) -> pd.Series:
    if column.kind == "multi":
        return values.str.replace("|", column.separator, regex=False)
    return values


def _random_values(rng: np.random.Generator, column: CatalogColumn, n: int) -> np.ndarray:
    if column.kind == "numeric":
        return np.round(rng.gamma(2.0, 50.0, n), 2)
    if column.kind in ("date", "timestamp"):
        return (pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 3000, n), unit="D")).to_numpy()
    words = np.asarray([f"{column.name}-{i}" for i in range(12)], dtype=object)
    if column.kind == "categorical":
        return words[rng.integers(0, len(words), n)]
    picks = rng.random((n, len(words))) < 0.2
    return np.asarray([column.separator.join(words[row]) for row in picks], dtype=object)
