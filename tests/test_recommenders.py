"""Popularity and BPR: the shared recommender contract plus known-answer tests."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from helpers_recommenders import RecommenderContract
from hypothesis import given, settings
from hypothesis import strategies as st

from recs_platform.evaluation.evaluate import evaluate
from recs_platform.models import RECOMMENDERS, BPRRecommender, FeedbackBPRRecommender, PopularityRecommender
from recs_platform.models.base import (
    BUILT_IN_MODULES,
    SAMPLED_TOP_K_ITEMS,
    CannotFit,
    IdMap,
    _row_top_k,
    sorted_unique,
)
from recs_platform.models.bpr import RowAdam, RowGradients
from recs_platform.training import fit_recommender, validator

# Small and fast: the whole contract runs in a few seconds.
FAST_BPR = {"factors": 8, "epochs": 10, "batch_size": 64, "learning_rate": 0.05}


class TestPopularity(RecommenderContract):
    def make_recommender(self, **params) -> PopularityRecommender:
        return PopularityRecommender(**params)

    def test_top_k_is_a_prefix_of_the_full_ranking(self, fitted, train) -> None:
        super().test_top_k_is_a_prefix_of_the_full_ranking(fitted, train)


class TestBPR(RecommenderContract):
    def make_recommender(self, **params) -> BPRRecommender:
        return BPRRecommender(**{**FAST_BPR, **params})


class TestFeedbackBPR(RecommenderContract):
    """The contract's data has no impressions, so the variant runs with no share of ignored negatives."""

    def make_recommender(self, **params) -> FeedbackBPRRecommender:
        return FeedbackBPRRecommender(**{**FAST_BPR, "ignored_negatives": 0.0, **params})


def test_feedback_bpr_without_anything_ignored_cannot_fit() -> None:
    """Without served-and-ignored impressions it would be plain BPR: it says so instead of training."""
    train, held_out = block_dataset()
    model = FeedbackBPRRecommender(**FAST_BPR)
    with pytest.raises(CannotFit, match="no served-and-ignored impressions yet"):
        model.fit(train)
    consumed = held_out.groupby("user_id").head(1).assign(served_at=pd.Timestamp("2024-01-01"), position=1)
    with pytest.raises(CannotFit):
        model.fit(train, impressions=consumed.assign(consumed=True))


def test_both_are_registered() -> None:
    assert RECOMMENDERS["popularity"] is PopularityRecommender
    assert RECOMMENDERS["bpr"] is BPRRecommender


# -- popularity known answers -------------------------------------------------------------------

# Item counts: 30 -> 3, 20 -> 2, 40 -> 2, 10 -> 1, 50 -> 1 (each (user, item) counted once).
POPULARITY_TRAIN = pd.DataFrame(
    {
        "user_id": [1, 2, 3, 1, 2, 3, 4, 4, 5, 5],
        "item_id": [30, 30, 30, 40, 40, 20, 20, 10, 50, 50],
    }
)


@settings(max_examples=80, deadline=None)
@given(st.sets(st.integers(-50, 50)), st.lists(st.integers(-60, 60), max_size=20))
def test_id_map_rows_are_positions_or_minus_one(held, asked) -> None:
    ids = IdMap(sorted(held))
    expected = [sorted(held).index(value) if value in held else -1 for value in asked]
    assert ids.rows(np.array(asked, dtype=np.int64)).tolist() == expected


def test_popularity_ranks_by_count_with_ties_by_smaller_item_id() -> None:
    model = PopularityRecommender().fit(POPULARITY_TRAIN)
    np.testing.assert_array_equal(model.counts, [1, 2, 3, 2, 1])  # items 10, 20, 30, 40, 50
    recs = model.recommend([1, 5], k=5)
    # User 1 saw 30 and 40; the rest ranks 20 (2), then 10 and 50 tied at 1 -> 10 first.
    user1 = recs[recs.user_id == 1]
    assert user1.item_id.tolist() == [20, 10, 50]
    assert user1.score.tolist() == [2.0, 1.0, 1.0]
    assert user1["rank"].tolist() == [1, 2, 3]
    # User 5 saw 50 (twice, counted once): 30 (3), then 20 and 40 tied at 2 -> 20 first, then 10.
    user5 = recs[recs.user_id == 5]
    assert user5.item_id.tolist() == [30, 20, 40, 10]
    assert user5.score.tolist() == [3.0, 2.0, 2.0, 1.0]


def test_tie_break_by_item_id_holds_at_the_top_k_cut() -> None:
    # Item 1 is seen 3 times, items 2..9 once each; user 3 saw items 1 and 4.
    # Unseen for user 3, by count then id: 2, 3, 5, 6, 7, 8, 9 (all tied at 1).
    train = pd.DataFrame({"user_id": [1, 2, 3, *range(1, 9)], "item_id": [1, 1, 1, *range(2, 10)]})
    model = PopularityRecommender().fit(train)
    assert model.recommend([3], k=100).item_id.tolist() == [2, 3, 5, 6, 7, 8, 9]
    # Any top k must be a prefix of that: k = 3 should give [2, 3, 5] (actual: [2, 3, 6]).
    for k in range(1, 8):
        assert model.recommend([3], k=k).item_id.tolist() == [2, 3, 5, 6, 7, 8, 9][:k], k


def test_popularity_tie_break_is_independent_of_input_order() -> None:
    reversed_train = POPULARITY_TRAIN.iloc[::-1].reset_index(drop=True)
    a = PopularityRecommender().fit(POPULARITY_TRAIN).recommend([1, 5], k=5)
    b = PopularityRecommender().fit(reversed_train).recommend([1, 5], k=5)
    pd.testing.assert_frame_equal(a, b)


def test_most_popular() -> None:
    model = PopularityRecommender().fit(POPULARITY_TRAIN)
    ids, counts = model.most_popular(3)
    assert ids.tolist() == [30, 20, 40]
    assert counts.tolist() == [3.0, 2.0, 2.0]
    # Excluded items are skipped; unknown ids in the exclusion list are ignored.
    ids, counts = model.most_popular(3, exclude_items=np.array([30, 20, 999]))
    assert ids.tolist() == [40, 10, 50]
    assert counts.tolist() == [2.0, 1.0, 1.0]
    # k beyond the catalog returns every non-excluded item, never an excluded one.
    ids, _ = model.most_popular(100, exclude_items=np.array([10]))
    assert ids.tolist() == [30, 20, 40, 50]
    ids, _ = model.most_popular(5, exclude_items=np.array([], dtype=np.int64))
    assert ids.tolist() == [30, 20, 40, 10, 50]


def test_popularity_counts_catalog_items_as_zero() -> None:
    model = PopularityRecommender().fit(POPULARITY_TRAIN, catalog_items=[5, 60])
    ids, counts = model.most_popular(10)
    assert ids.tolist() == [30, 20, 40, 10, 50, 5, 60]
    assert counts.tolist()[-2:] == [0.0, 0.0]


# -- BPR known answers --------------------------------------------------------------------------


def block_dataset(seed: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Users 0..19 consume items 0..9 and users 20..39 items 100..109; each holds out 3 items."""
    rng = np.random.default_rng(seed)
    train, held_out = [], []
    for user in range(40):
        cluster = np.arange(10) if user < 20 else np.arange(100, 110)
        items = rng.permutation(cluster)
        train += [(user, int(item)) for item in items[:7]]
        held_out += [(user, int(item)) for item in items[7:]]
    columns = ["user_id", "item_id"]
    return pd.DataFrame(train, columns=columns), pd.DataFrame(held_out, columns=columns)


def own_cluster(user_ids: pd.Series, item_ids: pd.Series) -> np.ndarray:
    return (user_ids.to_numpy() < 20) == (item_ids.to_numpy() < 100)


def test_bpr_learns_block_structure() -> None:
    train, held_out = block_dataset()
    # (With 8 factors, many epochs and a high learning rate BPR starts to memorise each user's
    # sampled negatives -- own-cluster held-out items among them -- so keep training short.)
    model = BPRRecommender(factors=8, epochs=20, batch_size=64, learning_rate=0.02, seed=1)
    model.fit(train)
    recs = model.recommend(np.arange(40), k=3)
    # Every user has exactly 3 unseen own-cluster items: the held-out ones.
    assert own_cluster(recs.user_id, recs.item_id).mean() >= 0.9
    result = evaluate(model, held_out, k=3)
    assert result.summary["recall@3"] >= 0.9
    assert model.metadata["epochs_trained"] == 20
    assert "best_valid_ndcg@10" not in model.metadata
    # A popularity model cannot separate the clusters: every user gets the same global list.
    popularity = PopularityRecommender().fit(train)
    assert evaluate(popularity, held_out, k=3).summary["recall@3"] < result.summary["recall@3"]


def test_bpr_with_sparse_updates_learns_block_structure() -> None:
    train, held_out = block_dataset()
    model = BPRRecommender(factors=8, epochs=20, batch_size=64, learning_rate=0.02, seed=1, sparse_updates=True)
    model.fit(train)
    assert evaluate(model, held_out, k=3).summary["recall@3"] >= 0.9


def negatives_checking_every_draw(matrix: sp.csr_matrix, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """BPR's negative sampling as it was: every draw looked up again in each round."""
    negatives = rng.integers(0, matrix.shape[1], size=len(users))
    for _ in range(10):
        clash = np.asarray(matrix[users, negatives]).ravel() > 0
        if not clash.any():
            break
        negatives[clash] = rng.integers(0, matrix.shape[1], size=int(clash.sum()))
    return negatives


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 12),
    st.integers(1, 30),
    st.floats(0.0, 0.95),
    st.integers(0, 2**32 - 1),
)
def test_bpr_negatives_rechecking_only_redraws_are_the_same_draws(n_users, n_items, density, seed) -> None:
    rng = np.random.default_rng(seed)
    matrix = sp.csr_matrix((rng.random((n_users, n_items)) < density).astype(np.float32))
    users = rng.integers(0, n_users, size=50)
    expected = negatives_checking_every_draw(matrix, users, np.random.default_rng(seed))
    drawn = BPRRecommender._sample_negatives(matrix, users, np.random.default_rng(seed))
    np.testing.assert_array_equal(drawn, expected)


def test_bpr_sparse_updates_leave_rows_outside_the_batch_unchanged() -> None:
    train, _ = block_dataset()
    model = BPRRecommender(factors=8, epochs=1, batch_size=64, seed=1, sparse_updates=True).fit(train)
    before = model._state()
    matrix = model.seen.tocsr()
    users, positives = matrix.nonzero()
    batch = users < 20  # one step over the first cluster's users only
    model.params = model.params.model_copy(update={"batch_size": int(batch.sum())})
    model._train_epoch(
        matrix,
        sp.csr_matrix(matrix.shape),
        users[batch],
        positives[batch],
        model._optimizer(),
        model._row_gradients(),
        np.random.default_rng(0),
    )
    after = model._state()
    np.testing.assert_array_equal(after["user_factors"][20:], before["user_factors"][20:])
    assert not np.allclose(after["user_factors"][:20], before["user_factors"][:20])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(0, 40), steps=st.integers(1, 6))
def test_row_adam_steps_exactly_as_sparse_adam(seed: int, batch: int, steps: int) -> None:
    """The same weights and moments, bit for bit, after steps whose sparse gradients repeat rows
    (summed, as by ``coalesce``), leave rows out, or are empty (``batch`` 0)."""
    generator = torch.Generator().manual_seed(seed)
    shapes = [(12, 4), (7, 1)]
    start = [torch.randn(shape, generator=generator) for shape in shapes]
    ours = [torch.nn.Parameter(weights.clone()) for weights in start]
    theirs = [torch.nn.Parameter(weights.clone()) for weights in start]
    optimizers = RowAdam(ours, lr=0.05), torch.optim.SparseAdam(theirs, lr=0.05)
    for _ in range(steps):
        for index, (n_rows, width) in enumerate(shapes):
            rows = torch.randint(0, n_rows, (1, batch), generator=generator)
            values = torch.randn((batch, width), generator=generator)
            for params in (ours, theirs):
                params[index].grad = torch.sparse_coo_tensor(rows, values, (n_rows, width), check_invariants=False)
        for optimizer in optimizers:
            optimizer.step()
    for mine, reference in zip(ours, theirs, strict=True):
        assert torch.equal(mine, reference)
        for moment in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(optimizers[0].state[mine][moment], optimizers[1].state[reference][moment])


@settings(max_examples=25, deadline=None)
@given(rows=st.lists(st.integers(0, 9), min_size=1, max_size=30), sparse=st.booleans())
def test_row_gradients_equal_the_embedding_gradient(rows: list[int], sparse: bool) -> None:
    """Repeated rows included: the table's gradient is nn.Embedding's, and the dense one is zero
    again once cleared."""
    import torch

    torch.manual_seed(0)
    table = torch.nn.Embedding(10, 3)
    index = torch.tensor(rows)
    upstream = torch.randn(len(rows), 3)
    (table(index) * upstream).sum().backward()
    expected = table.weight.grad.clone()
    table.weight.grad = None
    gradients = RowGradients(table, sparse)
    (gradients.lookup(index) * upstream).sum().backward()
    gradients.hand_over()
    handed = table.weight.grad.to_dense() if sparse else table.weight.grad.clone()
    torch.testing.assert_close(handed, expected)
    gradients.clear()
    if not sparse:
        assert not table.weight.grad.any()


def test_bpr_early_stopping_records_best_validation_score() -> None:
    train, held_out = block_dataset()
    log: list[str] = []
    model = BPRRecommender(factors=8, epochs=60, batch_size=64, learning_rate=0.05, eval_every=2, patience=2, seed=1)
    model.fit(train, validate=validator(model, held_out), log=log.append)
    best = model.metadata["best_valid_ndcg@10"]
    assert 0.0 < best <= 1.0
    # The block data is learned within a few evaluations, after which validation stops improving.
    assert model.metadata["epochs_trained"] < 60
    assert any("early stop" in line for line in log)
    assert any("valid ndcg@10" in line for line in log)
    # The kept weights are the best epoch's: re-scoring the validation data reproduces every metric
    # of the summary the schedule kept, which training reports instead of scoring again.
    rescored = evaluate(model, held_out, k=10).summary
    assert model.validation == pytest.approx(rescored, abs=1e-6)
    assert model.validation["ndcg@10"] == pytest.approx(best, abs=1e-6)


def test_bpr_empty_validation_frame_disables_early_stopping() -> None:
    train, held_out = block_dataset()
    model, _ = fit_recommender("bpr", FAST_BPR, train, {"items": train[["item_id"]], "users": None}, held_out.head(0))
    assert "best_valid_ndcg@10" not in model.metadata
    assert model.metadata["epochs_trained"] == FAST_BPR["epochs"]


def test_bpr_seed_changes_the_model() -> None:
    train, _ = block_dataset()
    a = BPRRecommender(**FAST_BPR, seed=1).fit(train)
    b = BPRRecommender(**FAST_BPR, seed=2).fit(train)
    assert not np.allclose(a._state()["user_factors"], b._state()["user_factors"])


def test_feedback_bpr_learns_to_push_down_what_users_were_shown_and_ignored() -> None:
    """Each user was served one of their cluster's held-out items and did not consume it. Plain
    BPR cannot know; the feedback variant samples those as negatives and ranks them lower."""
    train, held_out = block_dataset()
    ignored = held_out.groupby("user_id").head(1)
    impressions = ignored.assign(served_at=pd.Timestamp("2024-01-01"), position=1, consumed=False)
    params = {"factors": 8, "epochs": 20, "batch_size": 64, "learning_rate": 0.02, "seed": 1}
    ranks = {}
    for model in (BPRRecommender(**params), FeedbackBPRRecommender(**params, ignored_negatives=0.8)):
        model.fit(train, impressions=impressions)
        recs = model.recommend(np.arange(40), k=13)  # every unseen item of the catalog's 20
        joined = recs.merge(ignored, on=["user_id", "item_id"])
        assert len(joined) == 40
        ranks[model.name] = joined["rank"].mean()
    assert ranks["bpr_feedback"] > ranks["bpr"] + 3
    assert ranks["bpr"] < 4  # plain BPR ranks the ignored item among the user's own cluster


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from([-np.inf, 0.0, 0.5, 1.0, 2.0]) | st.floats(-5, 5), min_size=1, max_size=40),
    st.integers(1, 40),
)
def test_row_top_k_is_the_sorted_prefix_with_ties_by_smaller_index(values, k) -> None:
    row = np.array(values, dtype=np.float32)  # few distinct values: many ties at the cut
    k = min(k, len(row))
    expected = np.lexsort((np.arange(len(row)), -row))[:k]
    assert _row_top_k(row, k).tolist() == expected.tolist()


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    length=st.integers(SAMPLED_TOP_K_ITEMS, 3 * SAMPLED_TOP_K_ITEMS),
    distinct=st.integers(1, 50),
    nonzero_share=st.floats(0.0, 1.0),
    masked_share=st.floats(0.0, 1.0),
    k=st.integers(1, 64),
)
def test_row_top_k_of_a_long_row_is_the_sorted_prefix(seed, length, distinct, nonzero_share, masked_share, k) -> None:
    """Long rows take the sampled-threshold path: mostly zeros, few distinct values and masked
    items are its hard cases (ties at the threshold, fewer than k scores above it)."""
    rng = np.random.default_rng(seed)
    row = np.where(rng.random(length) < nonzero_share, rng.integers(1, distinct + 1, length) / distinct, 0.0)
    row[rng.random(length) < masked_share] = -np.inf
    row = row.astype(np.float32)
    expected = np.lexsort((np.arange(length), -row))[:k]
    assert _row_top_k(row, k).tolist() == expected.tolist()


def test_row_top_k_of_a_long_row_with_nan_scores_is_never_short() -> None:
    row = np.zeros(SAMPLED_TOP_K_ITEMS, dtype=np.float32)
    row[::2] = np.nan  # every sampled score
    row[1:40:2] = np.arange(20, 0, -1)
    top = _row_top_k(row, 10)
    assert len(top) == 10 and set(top) <= set(range(0, SAMPLED_TOP_K_ITEMS, 2))  # NaN ranks first, as before


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 29), max_size=60))
def test_sorted_unique_is_numpy_unique(values) -> None:
    array = np.array(values, dtype=np.int64)
    np.testing.assert_array_equal(sorted_unique(array), np.unique(array))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 15)), min_size=1, max_size=50),
    st.lists(st.integers(-2, 20), max_size=25),
)
def test_unseen_known_is_known_and_not_trained_on(pairs, asked) -> None:
    train = pd.DataFrame(pairs, columns=["user_id", "item_id"])
    model = PopularityRecommender().fit(train)
    user = int(train.user_id.iloc[0])
    trained = set(train.item_id[train.user_id == user])
    expected = [item in set(train.item_id) and item not in trained for item in asked]
    unseen = model.unseen_known(model.user_map.row(user), np.array(asked, dtype=np.int64))
    assert unseen.tolist() == expected


def test_every_built_in_recommender_is_found_in_its_module() -> None:
    """The registry imports a built-in recommender's module on first use; each one registers there."""
    for name, module in BUILT_IN_MODULES.items():
        cls = RECOMMENDERS[name]
        assert cls.name == name and cls.__module__ == f"recs_platform.models.{module}"
    assert list(RECOMMENDERS) == sorted(BUILT_IN_MODULES)


def test_loading_a_dlae_bundle_imports_no_deep_learning_or_ranking_library(tmp_path) -> None:
    """The deployment's verifier is a fresh interpreter: importing PyTorch, LightGBM, faiss and
    scikit-learn for a model that needs none of them took most of its six seconds."""
    train, _ = block_dataset()
    saved = RECOMMENDERS["dlae"]().fit(train).save(tmp_path / "dlae")
    script = (
        "import sys; import recs_platform.serving.verify; from recs_platform.models import load_recommender;"
        f" load_recommender(__import__('pathlib').Path({str(saved)!r}));"
        " print(sorted(m for m in ('torch', 'lightgbm', 'faiss', 'sklearn') if m in sys.modules))"
    )
    imported = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "[]"


def whole_row_ranking(model, user_ids: np.ndarray, k: int, exclude: pd.DataFrame) -> pd.DataFrame:
    """The reference: every item's score from ``_score``, training and ``exclude`` items masked,
    sorted by score then item index, -inf dropped."""
    masked = model.seen + model.interaction_matrix(exclude)
    frames = []
    for user in user_ids:
        row = model.user_map.row(user)
        scores = np.asarray(model._score(np.array([row])), dtype=np.float64)[0]
        scores[masked[row].indices] = -np.inf
        top = np.lexsort((np.arange(len(scores)), -scores))[:k]
        top = top[np.isfinite(scores[top])]
        items, ranks = model.item_map.ids[top], np.arange(1, len(top) + 1)
        frames.append(pd.DataFrame({"user_id": user, "item_id": items, "rank": ranks, "score": scores[top]}))
    return pd.concat(frames, ignore_index=True)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_items=st.integers(12, 60),
    k=st.integers(1, 60),
    excluded_share=st.floats(0.0, 0.9),
    model_name=st.sampled_from(["popularity", "segment_popularity", "pruned_ease"]),
)
def test_ranking_fewer_columns_gives_the_whole_row_ranking(seed, n_items, k, excluded_share, model_name) -> None:
    """Popularity ranks a prefix of its one order, segment popularity its segments' prefixes, a
    pruned EASE its kept items: with few distinct counts (ties at every cut) and users whose
    masked items outnumber k, each list is the one from ranking every item's score."""
    rng = np.random.default_rng(seed)
    n_users = 12
    pairs = pd.DataFrame({"user_id": rng.integers(0, n_users, 150), "item_id": rng.integers(0, n_items, 150) // 3 * 3})
    pairs = pd.concat([pairs, pd.DataFrame({"user_id": np.arange(n_users), "item_id": 0})], ignore_index=True)
    exclude = pd.DataFrame({"user_id": rng.integers(0, n_users, 200), "item_id": rng.integers(0, n_items, 200)})
    exclude = exclude[rng.random(len(exclude)) < excluded_share]
    users = pd.DataFrame({"user_id": np.arange(n_users), "age_bucket": rng.choice(["a", "b", "c"], n_users)})
    model = {
        "popularity": lambda: RECOMMENDERS["popularity"](),
        "segment_popularity": lambda: RECOMMENDERS["segment_popularity"](),
        "pruned_ease": lambda: RECOMMENDERS["ease"](l2=10.0, memory_gib=28 * 12 * 8 / 2**30),  # keeps 9 items
    }[model_name]().fit(pairs, users=users, catalog_items=range(n_items))
    assert model_name != "pruned_ease" or len(model.kept_items) == 9
    user_ids = np.arange(n_users)
    ranked = model.recommend(user_ids, k=k, exclude=exclude)
    pd.testing.assert_frame_equal(ranked, whole_row_ranking(model, user_ids, k, exclude), check_dtype=False)
