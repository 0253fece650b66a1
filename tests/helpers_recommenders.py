"""Contract tests every recommender must pass (in the style of benfred/implicit's RecommenderBaseTestMixin).

A test module subclasses ``RecommenderContract`` as ``class TestX(RecommenderContract)`` and
implements ``make_recommender(**params)``. The data is small and synthetic so every check has a
known answer: which items each user has seen, which ids exist, how large the catalog is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recs_platform.models.base import (
    ARRAYS_FILE,
    CONFIG_FILE,
    RECOMMENDATION_COLUMNS,
    InvalidParams,
    NotFittedError,
    Recommender,
    load_recommender,
)

N_USERS = 12
N_ITEMS = 15


def synthetic_interactions(seed: int = 11, id_offset: int = 0) -> pd.DataFrame:
    """Every user has 3..6 distinct items; item popularity is skewed so rankings are not flat."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, N_ITEMS + 1)
    rows = []
    for user in range(N_USERS):
        items = rng.choice(N_ITEMS, size=rng.integers(3, 7), replace=False, p=weights / weights.sum())
        rows += [(user, int(item)) for item in items]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"]) + id_offset
    frame["timestamp"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(len(frame)), unit="h")
    return frame


def seen_by_user(train: pd.DataFrame) -> dict[int, set[int]]:
    return {int(user): set(group.item_id.tolist()) for user, group in train.groupby("user_id")}


class RecommenderContract:
    """Tests any ``Recommender`` subclass must pass; subclasses implement ``make_recommender``."""

    def make_recommender(self, **params) -> Recommender:
        raise NotImplementedError

    # -- helpers ---------------------------------------------------------------------------
    @pytest.fixture
    def train(self) -> pd.DataFrame:
        return synthetic_interactions()

    @pytest.fixture
    def fitted(self, train: pd.DataFrame) -> Recommender:
        return self.make_recommender().fit(train)

    @staticmethod
    def all_users(train: pd.DataFrame) -> np.ndarray:
        return np.sort(train.user_id.unique())

    # -- construction and fitting ------------------------------------------------------------
    def test_fit_on_empty_data_raises(self) -> None:
        with pytest.raises(ValueError):
            self.make_recommender().fit(pd.DataFrame({"user_id": [], "item_id": []}, dtype="int64"))

    def test_fit_without_required_columns_raises(self, train: pd.DataFrame) -> None:
        with pytest.raises(ValueError):
            self.make_recommender().fit(train.drop(columns="item_id"))

    def test_unknown_param_raises(self) -> None:
        with pytest.raises(InvalidParams, match="no_such_parameter: unknown parameter"):
            self.make_recommender(no_such_parameter=1)

    def test_recommend_before_fit_raises(self) -> None:
        model = self.make_recommender()
        with pytest.raises(NotFittedError):
            model.recommend([0], k=3)
        with pytest.raises(NotFittedError):
            model.known_users([0])
        with pytest.raises(NotFittedError):
            model.save(Path("never-written"))

    # -- ranking shape -------------------------------------------------------------------------
    def test_recommend_frame_shape(self, fitted: Recommender, train: pd.DataFrame) -> None:
        k = 4
        users = self.all_users(train)
        recs = fitted.recommend(users, k=k)
        assert list(recs.columns) == RECOMMENDATION_COLUMNS
        assert sorted(recs.user_id.unique()) == users.tolist()
        for user, group in recs.groupby("user_id", sort=False):
            # The catalog has >= 10 items and users see <= 6, so k = 4 is always filled.
            assert group["rank"].tolist() == list(range(1, k + 1)), user
            assert (np.diff(group.score.to_numpy()) <= 0).all(), user
            assert group.item_id.is_unique, user
            assert np.isfinite(group.score).all()

    def test_recommend_keeps_requested_user_order(self, fitted: Recommender, train: pd.DataFrame) -> None:
        users = self.all_users(train)[::-1][:5]
        recs = fitted.recommend(users, k=2)
        assert recs.user_id.drop_duplicates().tolist() == users.tolist()

    def test_recommend_no_users_gives_empty_frame(self, fitted: Recommender) -> None:
        recs = fitted.recommend([], k=3)
        assert recs.empty
        assert list(recs.columns) == RECOMMENDATION_COLUMNS

    def test_non_positive_k_raises(self, fitted: Recommender) -> None:
        with pytest.raises(ValueError):
            fitted.recommend([0], k=0)

    def test_top_k_is_a_prefix_of_the_full_ranking(self, fitted: Recommender, train: pd.DataFrame) -> None:
        # Ties are broken by smaller item id everywhere, including at the k-th position.
        users = self.all_users(train)
        full = fitted.recommend(users, k=len(fitted.item_map))
        for k in range(1, 9):
            top = fitted.recommend(users, k=k)
            expected = full[full["rank"] <= k].reset_index(drop=True)
            pd.testing.assert_frame_equal(top, expected, obj=f"top-{k}")

    def test_small_batches_give_the_same_ranking(self, fitted: Recommender, train: pd.DataFrame) -> None:
        users = self.all_users(train)
        pd.testing.assert_frame_equal(fitted.recommend(users, k=5), fitted.recommend(users, k=5, batch_size=5))

    # -- exclusion ---------------------------------------------------------------------------
    def test_seen_items_are_never_recommended(self, fitted: Recommender, train: pd.DataFrame) -> None:
        recs = fitted.recommend(self.all_users(train), k=N_ITEMS)
        seen = seen_by_user(train)
        for user, group in recs.groupby("user_id"):
            assert not set(group.item_id) & seen[user], user

    def test_exclude_seen_false_ranks_the_whole_catalog(self, fitted: Recommender, train: pd.DataFrame) -> None:
        n_items = train.item_id.nunique()
        recs = fitted.recommend(self.all_users(train), k=10 * N_ITEMS, exclude_seen=False)
        assert (recs.groupby("user_id").size() == n_items).all()
        assert len(fitted.item_map) == n_items

    def test_exclude_frame_masks_extra_pairs(self, fitted: Recommender, train: pd.DataFrame) -> None:
        users = self.all_users(train)
        n_items = len(fitted.item_map)
        # Full rankings (k = catalog size) so ties at a top-k cut cannot matter here.
        before = fitted.recommend(users, k=n_items)
        # Mask each user's current top item, plus pairs with unknown users/items (ignored).
        top = before[before["rank"] == 1][["user_id", "item_id"]]
        unknown = pd.DataFrame({"user_id": [10_000, users[0]], "item_id": [0, 10_000]})
        after = fitted.recommend(users, k=n_items, exclude=pd.concat([top, unknown], ignore_index=True))
        assert not set(zip(after.user_id, after.item_id, strict=True)) & set(zip(top.user_id, top.item_id, strict=True))
        seen = seen_by_user(train)
        for user, group in after.groupby("user_id"):
            assert not set(group.item_id) & seen[user]
            # Everything else keeps its order and moves up one rank.
            old = before[before.user_id == user].item_id.tolist()
            assert group.item_id.tolist() == old[1:]
            assert group["rank"].tolist() == list(range(1, len(old)))

    def test_k_larger_than_catalog_returns_unseen_items_only(self, fitted: Recommender, train: pd.DataFrame) -> None:
        recs = fitted.recommend(self.all_users(train), k=10 * N_ITEMS)
        seen = seen_by_user(train)
        catalog = set(train.item_id)
        for user, group in recs.groupby("user_id"):
            assert set(group.item_id) == catalog - seen[user], user
            assert group["rank"].tolist() == list(range(1, len(group) + 1))

    def test_catalog_items_without_interactions_can_be_recommended(self, train: pd.DataFrame) -> None:
        extra = [1_000, 1_001]
        model = self.make_recommender().fit(train, catalog_items=extra)
        recs = model.recommend(self.all_users(train), k=10 * N_ITEMS)
        assert set(extra) <= set(recs.item_id)

    # -- users -----------------------------------------------------------------------------------
    def test_unknown_users(self, fitted: Recommender, train: pd.DataFrame) -> None:
        known = int(train.user_id.iloc[0])
        with pytest.raises(KeyError):
            fitted.recommend([known, 10_000], k=3)
        np.testing.assert_array_equal(fitted.known_users([known, 10_000, -1]), [True, False, False])

    # -- any history, as at serving time -----------------------------------------------------------
    def test_a_training_history_scores_as_its_training_row(self, fitted: Recommender, train: pd.DataFrame) -> None:
        """The fresh-history path and the training path are one formula: a user's training history,
        scored as a history, gives exactly the list the model gives that user."""
        if not fitted.scores_any_history:
            with pytest.raises(NotImplementedError):
                fitted.recommend_for_history([int(train.item_id.iloc[0])], k=3)
            return
        for user in self.all_users(train)[:6]:
            history = train[train.user_id == user].sort_values(["timestamp", "item_id"]).item_id.to_numpy()
            items, scores = fitted.recommend_for_history(history, k=5)
            expected = fitted.recommend([user], k=5)
            assert items.tolist() == expected.item_id.tolist(), user
            np.testing.assert_allclose(scores, expected.score.to_numpy(), rtol=1e-5, atol=1e-6)

    def test_history_scoring_masks_history_and_exclusions_and_ignores_unknown_items(
        self, fitted: Recommender, train: pd.DataFrame
    ) -> None:
        if not fitted.scores_any_history:
            return
        history = np.array([int(train.item_id.iloc[0]), 10_000])  # 10_000 is no item the model knows
        excluded = int(fitted.item_map.ids[-1])
        items, scores = fitted.recommend_for_history(history, k=N_ITEMS, exclude=[excluded])
        assert not {int(history[0]), excluded} & set(items.tolist())
        assert len(items) == len(fitted.item_map) - 2 and np.isfinite(scores).all()
        assert (np.diff(scores) <= 0).all()

    # -- persistence ----------------------------------------------------------------------------
    def test_save_load_roundtrip(self, fitted: Recommender, train: pd.DataFrame, tmp_path: Path) -> None:
        path = fitted.save(tmp_path / "model")
        loaded = load_recommender(path)
        assert type(loaded) is type(fitted)
        assert loaded.params == fitted.params
        users = self.all_users(train)
        pd.testing.assert_frame_equal(loaded.recommend(users, k=6), fitted.recommend(users, k=6))
        exclude = train.groupby("user_id").head(0)  # empty exclude frame is fine too
        pd.testing.assert_frame_equal(
            loaded.recommend(users, k=6, exclude=exclude), fitted.recommend(users, k=6, exclude=exclude)
        )

    def test_saved_files_are_pickle_free(self, fitted: Recommender, train: pd.DataFrame, tmp_path: Path) -> None:
        path = fitted.save(tmp_path / "model")
        names = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
        assert {CONFIG_FILE, ARRAYS_FILE} <= names
        assert not [name for name in names if name.endswith((".pkl", ".pickle", ".pt", ".joblib"))]
        config = json.loads((path / CONFIG_FILE).read_text())
        assert config["recommender"] == fitted.name
        assert config["params"] == fitted.params.model_dump(mode="json")
        assert isinstance(config["metadata"], dict)
        with np.load(path / ARRAYS_FILE, allow_pickle=False) as arrays:
            contents = {name: arrays[name] for name in arrays.files}  # object arrays would raise here
        assert not [name for name, array in contents.items() if array.dtype == object]
        np.testing.assert_array_equal(contents["user_ids"], np.sort(train.user_id.unique()))
        np.testing.assert_array_equal(contents["item_ids"], np.sort(train.item_id.unique()))
        assert contents["user_ids"].dtype == np.int64 and contents["item_ids"].dtype == np.int64

    def test_loaded_model_keeps_seen_items_masked(
        self, fitted: Recommender, train: pd.DataFrame, tmp_path: Path
    ) -> None:
        loaded = load_recommender(fitted.save(tmp_path / "model"))
        recs = loaded.recommend(self.all_users(train), k=N_ITEMS)
        seen = seen_by_user(train)
        for user, group in recs.groupby("user_id"):
            assert not set(group.item_id) & seen[user]

    # -- ids and determinism ----------------------------------------------------------------------
    def test_large_non_contiguous_int64_ids(self, tmp_path: Path) -> None:
        small = synthetic_interactions()
        offset = 10**12
        large = small.assign(user_id=small.user_id * 7 + offset, item_id=small.item_id * 13 + 3 * offset)
        model = self.make_recommender().fit(large)
        users = np.sort(large.user_id.unique())
        recs = model.recommend(users, k=N_ITEMS)
        assert recs.user_id.dtype == np.int64 and recs.item_id.dtype == np.int64
        assert set(recs.item_id) <= set(large.item_id)
        seen = seen_by_user(large)
        for user, group in recs.groupby("user_id"):
            assert set(group.item_id) == set(large.item_id) - seen[user]
        loaded = load_recommender(model.save(tmp_path / "model"))
        pd.testing.assert_frame_equal(loaded.recommend(users, k=5), model.recommend(users, k=5))
        # The same data with small ids ranks identically up to the id mapping
        # (the mapping is monotone, so tie-breaking by id is preserved too).
        small_recs = self.make_recommender().fit(small).recommend(np.sort(small.user_id.unique()), k=5)
        np.testing.assert_array_equal(small_recs.item_id * 13 + 3 * offset, model.recommend(users, k=5).item_id)

    def test_string_ids(self, tmp_path: Path) -> None:
        """String ids (SKUs, URIs) rank exactly as integer ids with the same order would."""
        small = synthetic_interactions()
        as_text = small.assign(
            user_id="user:" + small.user_id.map("{:04d}".format),
            item_id="spotify:track:" + small.item_id.map("{:04d}".format),
        )
        model = self.make_recommender().fit(as_text)
        users = np.sort(as_text.user_id.unique())
        recs = model.recommend(users, k=5)
        assert recs.item_id.map(type).eq(str).all() and set(recs.item_id) <= set(as_text.item_id)
        loaded = load_recommender(model.save(tmp_path / "model"))
        pd.testing.assert_frame_equal(loaded.recommend(users, k=5), recs)
        by_number = self.make_recommender().fit(small).recommend(np.sort(small.user_id.unique()), k=5)
        assert recs.item_id.tolist() == ("spotify:track:" + by_number.item_id.map("{:04d}".format)).tolist()

    def test_deterministic_fits(self, train: pd.DataFrame) -> None:
        users = self.all_users(train)
        first = self.make_recommender().fit(train).recommend(users, k=5)
        second = self.make_recommender().fit(train).recommend(users, k=5)
        pd.testing.assert_frame_equal(first, second)

    def test_fit_ignores_input_row_order_and_duplicates(self, train: pd.DataFrame) -> None:
        users = self.all_users(train)
        shuffled = pd.concat([train, train.head(5)]).sample(frac=1.0, random_state=0)
        a = self.make_recommender().fit(train).recommend(users, k=N_ITEMS)
        b = self.make_recommender().fit(shuffled).recommend(users, k=N_ITEMS)
        # The same items are excluded either way; heuristics must rank identically.
        assert set(zip(a.user_id, a.item_id, strict=True)) == set(zip(b.user_id, b.item_id, strict=True))
