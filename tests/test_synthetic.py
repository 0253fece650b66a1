"""The synthetic generator: landing shapes, determinism and the properties the models rely on."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recs_platform.data import synthetic as syn
from recs_platform.data.events import ITEM_COLUMNS, USER_COLUMNS, landed_files
from recs_platform.data.synthetic import GENRES, Synthetic, SyntheticConfig, generate, write_to_landing

SMALL = SyntheticConfig(n_users=300, n_items=500, n_events=12_000, days=30, seed=3)


@pytest.fixture(scope="module")
def small() -> Synthetic:
    return generate(SMALL)


@pytest.fixture(scope="module")
def default() -> Synthetic:
    return generate(SyntheticConfig())


def test_frames_have_the_movielens_landing_shape(small: Synthetic) -> None:
    events, users, items = small.events, small.users, small.items
    assert list(events.columns) == ["event_id", "user_id", "item_id", "event_type", "value", "timestamp"]
    assert events.dtypes.astype(str).to_dict() == {
        "event_id": "object",
        "user_id": "int64",
        "item_id": "int64",
        "event_type": "object",
        "value": "float64",
        "timestamp": "datetime64[ns]",
    }
    assert (events.event_type == "rating").all()
    assert set(events.value.unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert (events.event_id == "syn-" + events.user_id.astype(str) + "-" + events.item_id.astype(str)).all()
    assert len(events) == SMALL.n_events

    assert tuple(users.columns) == USER_COLUMNS
    assert users.user_id.dtype == "int64" and users.age.dtype == "int64"
    assert users.user_id.tolist() == list(range(1, SMALL.n_users + 1))
    assert users.zip_code.str.fullmatch(r"\d{5}").all()
    assert set(users.gender) <= {"M", "F"}

    assert tuple(items.columns) == ITEM_COLUMNS
    assert items.item_id.tolist() == list(range(1, SMALL.n_items + 1))
    assert all(isinstance(day, dt.date) for day in items.release_date)
    genre_lists = items.genres.str.split("|")
    assert genre_lists.map(len).between(1, 3).all()
    assert genre_lists.map(lambda names: set(names) <= set(GENRES)).all()
    assert items.title.str.fullmatch(r"Item \d+ \(.+\)").all()
    assert set(events.user_id) <= set(users.user_id) and set(events.item_id) <= set(items.item_id)


def test_same_seed_same_data_and_other_seed_other_data(small: Synthetic) -> None:
    again = generate(SMALL)
    pd.testing.assert_frame_equal(small.events, again.events)
    pd.testing.assert_frame_equal(small.users, again.users)
    pd.testing.assert_frame_equal(small.items, again.items)
    other = generate(dataclasses.replace(SMALL, seed=SMALL.seed + 1))
    assert not small.events[["user_id", "item_id"]].equals(other.events[["user_id", "item_id"]])


def test_no_duplicate_user_item_pairs(small: Synthetic, default: Synthetic) -> None:
    for synthetic in (small, default):
        assert not synthetic.events.duplicated(["user_id", "item_id"]).any()


def test_events_follow_release_and_stay_inside_the_period(small: Synthetic) -> None:
    start = pd.Timestamp(SMALL.start)
    released = small.events.item_id.map(small.items.set_index("item_id").release_date)
    assert (small.events.timestamp >= pd.to_datetime(released)).all()
    assert small.events.timestamp.min() >= start
    assert small.events.timestamp.max() < start + pd.Timedelta(days=SMALL.days)
    new_items = small.items[pd.to_datetime(small.items.release_date) >= start]
    assert len(new_items) == round(SMALL.n_items * SMALL.new_item_share)
    assert small.events.item_id.isin(new_items.item_id).any()  # new items do get picked up


def test_popularity_is_skewed_at_the_default_exponent(default: Synthetic) -> None:
    counts = default.events.item_id.value_counts()
    top = counts.iloc[: len(default.items) // 10].sum()
    assert top / len(default.events) > 0.35


def test_every_user_has_at_least_five_events_and_activity_is_heavy_tailed(default: Synthetic) -> None:
    per_user = default.events.user_id.value_counts().reindex(default.users.user_id, fill_value=0)
    assert per_user.min() >= 5
    assert len(default.events) == SyntheticConfig().n_events
    assert per_user.max() > 4 * per_user.median()


@pytest.mark.parametrize("temperature", [0.05, 5.0])
def test_extreme_temperatures_keep_the_invariants(temperature: float) -> None:
    # A very low temperature underflows most float32 weights and sends users down the exact path.
    config = dataclasses.replace(SMALL, temperature=temperature)
    events = generate(config).events
    assert len(events) == config.n_events
    assert not events.duplicated(["user_id", "item_id"]).any()
    assert events.user_id.value_counts().min() >= 5


def test_fast_weights_match_the_exact_log_weights() -> None:
    config = SMALL
    rng = np.random.default_rng(config.seed)
    genre_vectors = rng.normal(size=(len(GENRES), config.n_factors))
    users = syn._make_users(rng, config, genre_vectors)
    items = syn._make_items(rng, config, genre_vectors)
    chunk = np.arange(50)
    world = syn._World(config, users, items, syn._workspace(config, items, len(chunk)))
    fast = syn._choice_weights(world, chunk)
    exact = np.exp(syn._log_choice_weights(world, chunk))
    fast = fast[:, : config.n_items] / fast.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(fast, exact / exact.sum(axis=1, keepdims=True), rtol=1e-3, atol=1e-7)


def test_successive_draws_follow_the_weights() -> None:
    rng = np.random.default_rng(0)
    probabilities = rng.random(64).astype(np.float32) ** 3
    probabilities[5] = 0.0
    weight = np.tile(probabilities, (20_000, 1))
    row, col, done = syn._successive_draws(rng, weight, np.ones(len(weight), dtype=np.int64))
    assert done.all() and (np.bincount(row) == 1).all()
    frequency = np.bincount(col, minlength=64) / len(weight)
    np.testing.assert_allclose(frequency, probabilities / probabilities.sum(), atol=0.01)
    assert frequency[5] == 0.0


def test_taste_makes_the_data_personalizable() -> None:
    """Item-kNN beats popularity on a random per-user split, and the affinity term is why."""

    def recall_at_10(temperature: float) -> tuple[float, float]:
        config = SyntheticConfig(n_users=400, n_items=600, n_events=24_000, seed=5, temperature=temperature)
        events = generate(config).events
        test = np.random.default_rng(0).random(len(events)) < 0.2
        train, truth = np.zeros((400, 600)), np.zeros((400, 600))
        train[events.user_id[~test] - 1, events.item_id[~test] - 1] = 1
        truth[events.user_id[test] - 1, events.item_id[test] - 1] = 1
        norms = np.sqrt(train.sum(axis=0)) + 1e-9
        similarity = train.T @ train / norms[:, None] / norms[None, :]
        np.fill_diagonal(similarity, 0.0)

        def recall(scores: np.ndarray) -> float:
            top = np.argsort(-np.where(train > 0, -np.inf, scores), axis=1)[:, :10]
            hits = np.take_along_axis(truth, top, axis=1).sum(axis=1)
            relevant = np.minimum(truth.sum(axis=1), 10)
            return float((hits[relevant > 0] / relevant[relevant > 0]).mean())

        return recall(np.tile(train.sum(axis=0), (400, 1))), recall(train @ similarity)

    popularity, knn = recall_at_10(SyntheticConfig().temperature)
    assert knn > 1.2 * popularity
    popularity, knn = recall_at_10(100.0)  # taste switched off: nothing beyond popularity to learn
    assert knn < popularity


def test_invalid_configs_are_rejected() -> None:
    with pytest.raises(ValueError, match="at least 5 per user"):
        SyntheticConfig(n_users=100, n_events=400)
    with pytest.raises(ValueError, match="catalogue"):
        SyntheticConfig(n_users=10, n_items=20, n_events=1000)


def test_write_to_landing_writes_one_events_file_per_day(small: Synthetic, tmp_path: Path) -> None:
    written = write_to_landing(small, tmp_path, name_prefix="syn")
    event_files = landed_files(tmp_path, "events")
    days = small.events.timestamp.dt.strftime("%Y-%m-%d").unique()
    assert [p.stem for p in event_files] == [f"syn-{day}" for day in sorted(days)]
    assert len(event_files) == SMALL.days  # the event rate is high enough that no day is empty
    assert set(written) == {*event_files, *landed_files(tmp_path, "users"), *landed_files(tmp_path, "items")}
    back = pd.concat([pd.read_parquet(p) for p in event_files], ignore_index=True)
    assert len(back) == len(small.events)
    assert back.dtypes.equals(small.events.dtypes)
    assert len(pd.read_parquet(tmp_path / "users" / "syn-users.parquet")) == SMALL.n_users
    items = pd.read_parquet(tmp_path / "items" / "syn-items.parquet")
    assert len(items) == SMALL.n_items
