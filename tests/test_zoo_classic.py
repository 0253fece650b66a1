"""Classic recommenders (segment popularity, recent history, co-occurrence, item-kNN, EASE):
the shared contract plus small known-answer tests."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from helpers_recommenders import RecommenderContract
from hypothesis import given, settings

from recs_platform.models import (
    RECOMMENDERS,
    CooccurrenceRecommender,
    DLAERecommender,
    EASERecommender,
    ItemKNNRecommender,
    PopularityRecommender,
    RecentHistoryRecommender,
    Recommender,
    SegmentPopularityRecommender,
)
from recs_platform.models.neighbors import keep_top_per_row


class TestSegmentPopularity(RecommenderContract):
    def make_recommender(self, **params) -> SegmentPopularityRecommender:
        return SegmentPopularityRecommender(**params)

    @pytest.fixture
    def fitted(self, train: pd.DataFrame) -> SegmentPopularityRecommender:
        # Two segments plus users without features, so the contract covers every scoring path.
        users = pd.DataFrame({"user_id": np.arange(10), "age_bucket": ["a", "b"] * 5, "gender": "f"})
        return self.make_recommender().fit(train, users=users)


class TestRecentHistory(RecommenderContract):
    def make_recommender(self, **params) -> RecentHistoryRecommender:
        return RecentHistoryRecommender(**params)


class TestCooccurrence(RecommenderContract):
    def make_recommender(self, **params) -> CooccurrenceRecommender:
        return CooccurrenceRecommender(**params)


class TestItemKNN(RecommenderContract):
    def make_recommender(self, **params) -> ItemKNNRecommender:
        return ItemKNNRecommender(**params)


class TestEASE(RecommenderContract):
    def make_recommender(self, **params) -> EASERecommender:
        return EASERecommender(**{"l2": 10.0, **params})


class TestDLAE(RecommenderContract):
    def make_recommender(self, **params) -> DLAERecommender:
        return DLAERecommender(**{"l2": 10.0, **params})


def test_all_are_registered() -> None:
    classes = [
        SegmentPopularityRecommender,
        RecentHistoryRecommender,
        CooccurrenceRecommender,
        ItemKNNRecommender,
        EASERecommender,
        DLAERecommender,
    ]
    assert all(RECOMMENDERS[cls.name] is cls for cls in classes)
    assert [cls.is_learned for cls in classes] == [False, False, False, True, True, True]


def frame(pairs: list[tuple[int, int]], with_time: bool = True) -> pd.DataFrame:
    """Interactions in the given order; timestamps (one hour apart) follow that order."""
    result = pd.DataFrame(pairs, columns=["user_id", "item_id"])
    if with_time:
        result["timestamp"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(len(result)), unit="h")
    return result


def items_of(recs: pd.DataFrame, user: int) -> list[int]:
    return recs[recs.user_id == user].item_id.tolist()


# -- segment popularity ---------------------------------------------------------------------------

# Segment ("young", "f") = users 1-3, whose favourite is item 10 (users 1 and 2);
# ("old", "m") = users 4-7, who all watched 20, the global favourite (4 vs 2). User 8 has no age.
SEGMENT_TRAIN = frame([(1, 10), (2, 10), (3, 30), (4, 20), (5, 20), (6, 20), (7, 20), (7, 30), (8, 40)])
SEGMENT_USERS = pd.DataFrame(
    {
        "user_id": [1, 2, 3, 4, 5, 6, 7, 8],
        "age_bucket": ["young"] * 3 + ["old"] * 4 + [None],
        "gender": ["f"] * 3 + ["m"] * 4 + ["f"],
    }
)


def test_segment_popularity_ranks_the_segment_favourite_first() -> None:
    model = SegmentPopularityRecommender().fit(SEGMENT_TRAIN, users=SEGMENT_USERS)
    recs = model.recommend([3, 5, 8], k=3)
    assert items_of(recs, 3) == [10, 20, 40]  # the segment's favourite, then global popularity
    assert items_of(recs, 5) == [30, 10, 40]  # 30 is watched once in segment ("old", "m")
    assert items_of(recs, 8) == [20, 10, 30]  # unknown segment: global popularity (ties by id)
    # Without user features everyone gets global popularity.
    plain = SegmentPopularityRecommender().fit(SEGMENT_TRAIN)
    assert items_of(plain.recommend([3], k=2), 3) == [20, 10]


def test_recommend_for_segment_serves_cold_users() -> None:
    model = SegmentPopularityRecommender().fit(SEGMENT_TRAIN, users=SEGMENT_USERS)
    young = model.recommend_for_segment({"age_bucket": "young", "gender": "f"}, k=3)
    assert young.item_id.tolist() == [10, 30, 20]
    assert young["rank"].tolist() == [1, 2, 3]
    # Unseen combination, missing column, missing value: global popularity.
    for values in ({"age_bucket": "young", "gender": "m"}, {"gender": "f"}, {"age_bucket": None, "gender": "f"}):
        assert model.recommend_for_segment(values, k=2).item_id.tolist() == [20, 10], values


def test_segment_values_are_matched_by_string_form(tmp_path) -> None:
    ages = pd.Series([25, 25, 25, 50, 50, 50, 50, None], dtype=object)
    model = SegmentPopularityRecommender(segment_columns=["age_bucket"])
    model.fit(SEGMENT_TRAIN, users=SEGMENT_USERS.assign(age_bucket=ages))
    loaded = Recommender.load(model.save(tmp_path / "model"))
    assert loaded.recommend_for_segment({"age_bucket": 25}, k=1).item_id.tolist() == [10]
    assert loaded.recommend_for_segment({"age_bucket": "50"}, k=1).item_id.tolist() == [20]


# -- recent history -------------------------------------------------------------------------------

# User 1 watched 30, then 20 twice, then 10: 10 is the most recent, 20 the most frequent.
# Global popularity: 40 (3 users) > 50 (2) > 10, 20, 30 (1 each).
HISTORY_TRAIN = frame([(1, 30), (1, 20), (1, 20), (1, 10), (2, 40), (3, 40), (4, 40), (2, 50), (3, 50)])


def test_recent_history_repeats_the_user_history_first() -> None:
    recent = RecentHistoryRecommender().fit(HISTORY_TRAIN)
    assert RecentHistoryRecommender.repeat_consumption
    assert items_of(recent.recommend([1], k=5, exclude_seen=False), 1) == [10, 20, 30, 40, 50]
    frequent = RecentHistoryRecommender(mode="frequent").fit(HISTORY_TRAIN)
    assert items_of(frequent.recommend([1], k=5, exclude_seen=False), 1) == [20, 10, 30, 40, 50]


def test_recent_history_with_seen_items_masked_is_popularity() -> None:
    model = RecentHistoryRecommender().fit(HISTORY_TRAIN)
    popularity = PopularityRecommender().fit(HISTORY_TRAIN)
    users = [1, 2, 3, 4]
    pd.testing.assert_series_equal(
        model.recommend(users, k=5).item_id, popularity.recommend(users, k=5).item_id, check_names=False
    )


def test_recent_history_without_timestamps_uses_row_order() -> None:
    model = RecentHistoryRecommender().fit(HISTORY_TRAIN.drop(columns="timestamp"))
    assert items_of(model.recommend([1], k=3, exclude_seen=False), 1) == [10, 20, 30]


def test_recent_history_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="mode"):
        RecentHistoryRecommender(mode="random").fit(HISTORY_TRAIN)


# -- co-occurrence --------------------------------------------------------------------------------

# Baskets: {10, 20}, {10, 20, 30}, {20, 30}, {30, 40} and user 5's {40, then 10}. Co-occurrence:
# c(10,20) = 2, c(20,30) = 2, c(10,30) = c(30,40) = c(10,40) = 1; item counts 3, 3, 3, 2.
BASKETS = frame([(1, 10), (1, 20), (2, 10), (2, 20), (2, 30), (3, 20), (3, 30), (4, 30), (4, 40), (5, 40), (5, 10)])


def test_cooccurrence_counts_items_bought_together() -> None:
    model = CooccurrenceRecommender(normalize=False).fit(BASKETS)
    # Last two items of user 5 are 10 and 40: 20 -> 2 + 0, 30 -> 1 + 1.
    recs = model.recommend([5], k=3)
    assert items_of(recs, 5) == [20, 30]
    assert recs.score.tolist() == [2.0, 2.0]
    # Only the last item (10): 20 -> 2, 30 -> 1.
    recs = CooccurrenceRecommender(normalize=False, n_last=1).fit(BASKETS).recommend([5], k=3)
    assert recs.score.tolist() == [2.0, 1.0]
    # Reversing the timestamps makes 40 the last item: only 30 co-occurs with it.
    reversed_time = BASKETS.assign(timestamp=BASKETS.timestamp.to_numpy()[::-1])
    recs = CooccurrenceRecommender(normalize=False, n_last=1).fit(reversed_time).recommend([5], k=3)
    assert items_of(recs, 5)[0] == 30 and recs.score.iloc[0] == 1.0


def test_cooccurrence_normalizes_by_sqrt_popularity() -> None:
    model = CooccurrenceRecommender(n_last=1).fit(BASKETS)
    # User 5's last item is 10: c(10,20) / sqrt(n_10 n_20) = 2 / 3, c(10,30) / sqrt(n_10 n_30) = 1 / 3.
    recs = model.recommend([5], k=2)
    assert items_of(recs, 5) == [20, 30]
    np.testing.assert_allclose(recs.score, [2 / 3, 1 / 3], rtol=1e-6)
    # An item does not co-occur with itself, and no zero is stored.
    assert not model.cooccurrence.diagonal().any() and model.cooccurrence.data.all()


def test_cooccurrence_without_timestamps_still_ranks() -> None:
    recs = CooccurrenceRecommender(normalize=False).fit(BASKETS.drop(columns="timestamp")).recommend([5], k=2)
    assert items_of(recs, 5) == [20, 30]


# -- item-kNN -------------------------------------------------------------------------------------

# Items 1, 2, 3 with users {1, 2}, {1, 2, 3}, {1}: n = 3, 2, 1; c12 = 2, c13 = 1, c23 = 1.
KNN_TRAIN = frame([(1, 1), (1, 2), (2, 1), (2, 2), (2, 3), (3, 1)])


def knn_expected(shrinkage: float) -> np.ndarray:
    counts, co = np.array([3.0, 2.0, 1.0]), np.array([[0, 2, 1], [2, 0, 1], [1, 1, 0]], dtype=float)
    return co / (np.sqrt(np.outer(counts, counts)) + shrinkage)


@pytest.mark.parametrize("shrinkage", [0.0, 1.0])
def test_item_knn_similarity_is_shrunk_cosine(shrinkage: float) -> None:
    model = ItemKNNRecommender(shrinkage=shrinkage).fit(KNN_TRAIN)
    np.testing.assert_allclose(model.similarity.toarray(), knn_expected(shrinkage), rtol=1e-6)


def test_item_knn_keeps_the_top_neighbours_per_item() -> None:
    model = ItemKNNRecommender(neighbors=1, shrinkage=0.0).fit(KNN_TRAIN)
    expected = knn_expected(0.0)
    # Item 1's best neighbour is 2 (2/sqrt6 > 1/sqrt3); item 2's is 1; item 3's is 2 (1/sqrt2).
    kept = np.zeros_like(expected)
    for row, col in [(0, 1), (1, 0), (2, 1)]:
        kept[row, col] = expected[row, col]
    np.testing.assert_allclose(model.similarity.toarray(), kept, rtol=1e-6)
    # User 3 saw only item 1, so scores are row 1 of the pruned similarity: item 2 then 3 (0).
    recs = model.recommend([3], k=2)
    assert items_of(recs, 3) == [2, 3]
    np.testing.assert_allclose(recs.score, [expected[0, 1], 0.0], rtol=1e-6)


def top_per_row_reference(dense: np.ndarray, k: int) -> np.ndarray:
    """Each row's k largest nonzero entries, ties to the smaller column, by sorting in Python."""
    kept = np.zeros_like(dense)
    for row, values in enumerate(dense):
        for col in sorted(np.flatnonzero(values), key=lambda c: (-values[c], c))[:k]:
            kept[row, col] = values[col]
    return kept


@settings(max_examples=200, deadline=None)
@given(
    dense=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=12),
        elements=st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0]),
    ),
    k=st.integers(1, 6),
)
def test_keep_top_per_row_matches_a_sorting_reference(dense: np.ndarray, k: int) -> None:
    matrix = sp.csr_matrix(dense)
    for row in range(matrix.shape[0]):  # columns out of order within rows, as a sparse product leaves them
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        order = start + np.random.default_rng(row).permutation(end - start)
        matrix.indices[start:end], matrix.data[start:end] = matrix.indices[order], matrix.data[order]
    matrix.has_sorted_indices = False
    kept = keep_top_per_row(matrix, k)
    np.testing.assert_array_equal(kept.toarray(), top_per_row_reference(dense, k))
    assert kept.has_sorted_indices


# -- EASE -----------------------------------------------------------------------------------------


def test_ease_matches_the_closed_form() -> None:
    dense = small_dense()
    model = fitted_on(EASERecommender(l2=5.0), dense)
    precision = np.linalg.inv(dense.T @ dense + 5.0 * np.eye(12))
    expected = np.eye(12) - precision @ np.diag(1.0 / np.diag(precision))
    np.testing.assert_allclose(model.weights, expected, atol=1e-6)
    np.testing.assert_allclose(model._score(np.arange(30)), dense @ expected, atol=1e-5)


# -- block structure ------------------------------------------------------------------------------


def block_dataset(seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Users 0..19 consume items 0..9, users 20..39 items 100..109; each holds out one item."""
    rng = np.random.default_rng(seed)
    train, held_out = [], []
    for user in range(40):
        items = rng.permutation(np.arange(10) if user < 20 else np.arange(100, 110))
        train += [(user, int(item)) for item in items[1:]]
        held_out.append((user, int(items[0])))
    return frame(train), pd.DataFrame(held_out, columns=["user_id", "item_id"])


def hit_rate_at_3(model: Recommender, held_out: pd.DataFrame) -> float:
    recs = model.recommend(held_out.user_id, k=3)
    hits = recs.merge(held_out, on=["user_id", "item_id"])
    return len(hits) / len(held_out)


@pytest.mark.parametrize(
    "model", [EASERecommender(l2=10.0), DLAERecommender(l2=10.0), ItemKNNRecommender()], ids=lambda m: m.name
)
def test_neighbour_models_learn_block_structure(model: Recommender) -> None:
    train, held_out = block_dataset()
    score = hit_rate_at_3(model.fit(train), held_out)
    assert score >= 0.9
    assert score > hit_rate_at_3(PopularityRecommender().fit(train), held_out)


# -- DLAE -----------------------------------------------------------------------------------------


def small_dense(seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dense = (rng.random((30, 12)) < 0.3).astype(float)
    dense[np.arange(30), np.arange(30) % 12] = 1.0  # every user and every item occurs
    return dense


def fitted_on(model: Recommender, dense: np.ndarray) -> Recommender:
    users, items = np.nonzero(dense)
    return model.fit(pd.DataFrame({"user_id": users, "item_id": items}))


def test_dlae_matches_steck_closed_form() -> None:
    dense = small_dense()
    gram = dense.T @ dense
    penalty = 0.5 / 0.5 * np.diag(gram) + 3.0  # dropout 0.5, l2 3
    expected = np.linalg.solve(gram + np.diag(penalty), gram)  # B = (G + Λ)⁻¹ G
    model = fitted_on(DLAERecommender(dropout=0.5, l2=3.0, zero_diagonal=False), dense)
    np.testing.assert_allclose(model.weights, expected, atol=1e-5)


def test_dlae_without_dropout_and_with_zero_diagonal_is_ease() -> None:
    dense = small_dense()
    dlae = fitted_on(DLAERecommender(dropout=0.0, l2=5.0, zero_diagonal=True), dense)
    ease = fitted_on(EASERecommender(l2=5.0), dense)
    np.testing.assert_allclose(dlae.weights, ease.weights, atol=1e-6)


def test_dlae_dropout_regularises_popular_items_more() -> None:
    dense = small_dense()
    dense[:, 0] = 1.0  # item 0 is in every row
    plain = fitted_on(DLAERecommender(dropout=0.0, l2=0.01, zero_diagonal=False), dense)
    dropped = fitted_on(DLAERecommender(dropout=0.5, l2=0.01, zero_diagonal=False), dense)
    # Without dropout a tiny l2 lets every item nearly reconstruct itself; dropout shrinks the
    # self-weight, most for the most frequent item.
    assert plain.weights[0, 0] > 0.9
    assert dropped.weights[0, 0] < plain.weights[0, 0] - 0.2
    assert np.argmin(np.diag(dropped.weights)) == 0


def test_dlae_rejects_dropout_of_one() -> None:
    with pytest.raises(ValueError, match="dropout"):
        fitted_on(DLAERecommender(dropout=1.0), small_dense())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 11), min_size=1, max_size=30))
def test_one_history_is_scored_as_the_sparse_product_bit_for_bit(history) -> None:
    """A serving request's row (``_score_one``) and a batch's sparse product give the same floats."""
    model = fitted_on(DLAERecommender(dropout=0.3, l2=2.0), small_dense())
    items = np.array(history, dtype=np.int64)
    batch = model._score_rows(model.history_matrix([np.unique(items)]))
    np.testing.assert_array_equal(model._score_histories([items]), batch)
    assert model._score_histories([items]).dtype == np.float32
