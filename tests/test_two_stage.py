"""The two-stage recommender: the shared contract, the leakage-free training protocol, identical
features offline and at serving, and the ANN index's recall."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pytest
from helpers_recommenders import RecommenderContract

from recs_platform.evaluation.report import ModelScores
from recs_platform.models import PopularityRecommender, TwoStageRecommender, load_recommender, two_stage
from recs_platform.models.base import CannotFit
from recs_platform.models.two_stage import ann_index, split_for_ranker
from recs_platform.online.store import OnlineStore, UserState
from recs_platform.registry.bundle import ServingBundle, write_bundle
from recs_platform.serving.answer import Request, answer, answer_record
from recs_platform.serving.inspect import explanations
from recs_platform.serving.verify import check_bundle, smoke_requests

# Small enough for the contract's 12 x 15 fixture: every item is a candidate, few trees.
SMALL = {"candidates": 15, "trees": 5, "min_child_samples": 2, "min_label_history": 3, "threads": 1}
FEATURED = {**SMALL, "candidates": 12, "trees": 10, "item_features": ["genres"]}


class TestTwoStage(RecommenderContract):
    def make_recommender(self, **params) -> TwoStageRecommender:
        return TwoStageRecommender(**{**SMALL, **params})


# -- a small catalogue with features and times ---------------------------------------------------
N_USERS, N_ITEMS = 30, 40


def catalogue() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Interactions over 60 days, users with demographics, items with genres and release years."""
    rng = np.random.default_rng(3)
    weights = 1.0 / np.arange(1, N_ITEMS + 1)
    rows = []
    for user in range(N_USERS):
        items = rng.choice(N_ITEMS, size=rng.integers(8, 16), replace=False, p=weights / weights.sum())
        rows += [(user, int(item), int(rng.integers(0, 60 * 86_400))) for item in items]
    train = pd.DataFrame(rows, columns=["user_id", "item_id", "seconds"])
    train["timestamp"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(train.pop("seconds"), unit="s")
    users = pd.DataFrame(
        {"user_id": np.arange(N_USERS), "age_bucket": rng.choice(["18-24", "25-34"], N_USERS), "gender": "F"}
    )
    genres = ["Action", "Comedy", "Drama", "Action|Comedy", "Drama|Romance"]
    items = pd.DataFrame(
        {
            "item_id": np.arange(N_ITEMS),
            "title": [f"item {i}" for i in range(N_ITEMS)],
            "genres": rng.choice(genres, N_ITEMS),
            "release_year": rng.integers(1970, 2000, N_ITEMS).astype(float),
        }
    )
    return train, users, items


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return catalogue()


@pytest.fixture(scope="module")
def model(data) -> TwoStageRecommender:
    train, users, items = data
    return TwoStageRecommender(**FEATURED).fit(train, users=users, items=items)


def online_store(train: pd.DataFrame, users: pd.DataFrame) -> OnlineStore:
    """The serving state of ``train``'s users, built as the online store exports it."""
    first = train.groupby(["user_id", "item_id"]).timestamp.min().reset_index().sort_values(["user_id", "timestamp"])
    state = first.groupby("user_id").agg(item_sequence=("item_id", list), timestamp_sequence=("timestamp", list))
    return OnlineStore(state.reset_index().merge(users, on="user_id", how="left"), "v1")


# -- no leakage ------------------------------------------------------------------------------------
def test_the_ranker_learns_labels_from_the_later_part_with_features_from_the_earlier_part(data) -> None:
    train, users, items = data
    model = TwoStageRecommender(**FEATURED, label_split="temporal").fit(train, users=users, items=items)
    indexed = model._indexed(train).assign(seconds=train.timestamp.astype("int64") // 10**9)
    earlier, later = split_for_ranker(indexed, model.params.label_fraction, model.params.min_label_history)
    # Each user's later rows are their newest; the labels are exactly later rows among candidates.
    newest_earlier = earlier.groupby("user_index").seconds.max()
    assert (later.seconds.to_numpy() >= newest_earlier.loc[later.user_index].to_numpy()).all()
    rows = model.ranker_rows
    later_pairs = set(zip(later.user_index, later.item_index, strict=True))
    pairs = set(zip(rows.user_index, rows.item_index, strict=True))
    labelled = set(zip(rows.user_index[rows.label == 1], rows.item_index[rows.label == 1], strict=True))
    assert labelled == pairs & later_pairs and labelled
    # Nothing of the earlier history is a candidate (retrieval masks what it was fit on).
    assert not pairs & set(zip(earlier.user_index, earlier.item_index, strict=True))

    # Replace every later item by one the user never had: candidates and features stay identical
    # (retrieval and the feature snapshot never saw the later part); only the labels change.
    is_later = pd.Series(list(zip(indexed.user_index, indexed.item_index, strict=True))).isin(later_pairs).to_numpy()
    moved = train.copy()
    rng = np.random.default_rng(0)
    for row in np.flatnonzero(is_later):
        user = moved.user_id.iloc[row]
        unused = np.setdiff1d(np.arange(N_ITEMS), moved.item_id[moved.user_id == user])
        moved.iloc[row, moved.columns.get_loc("item_id")] = rng.choice(unused)
    assert is_later.sum() == len(later)
    other = TwoStageRecommender(**FEATURED, label_split="temporal").fit(
        moved, catalog_items=items.item_id, users=users, items=items
    )
    # Users none of whose later items were retrieved carry no labels and are dropped, so compare
    # the users both kept.
    both = np.intersect1d(rows.user_index, other.ranker_rows.user_index)
    features = [c for c in rows.columns if c != "label"]
    mine = rows[rows.user_index.isin(both)].reset_index(drop=True)
    theirs = other.ranker_rows[other.ranker_rows.user_index.isin(both)].reset_index(drop=True)
    assert len(both) >= 10
    pd.testing.assert_frame_equal(theirs[features], mine[features], check_exact=True)
    assert not np.array_equal(theirs.label.to_numpy(), mine.label.to_numpy())


def test_a_random_label_split_holds_out_rows_without_reordering_time() -> None:
    rows = pd.DataFrame({"user_index": [0] * 10, "item_index": np.arange(10), "seconds": np.arange(10.0)})
    earlier, later = split_for_ranker(rows, 0.3, 3, shuffle=True, seed=1)
    assert len(later) == 3 and len(earlier) == 7
    assert set(earlier.item_index) | set(later.item_index) == set(range(10))
    newest = split_for_ranker(rows, 0.3, 3)[1]
    assert newest.item_index.tolist() == [7, 8, 9]
    short = split_for_ranker(rows.head(2), 0.3, 3)
    assert len(short[1]) == 0  # fewer rows than min_history: no labels


# -- offline and serving compute the same features ---------------------------------------------------
def test_offline_and_serving_features_are_identical(model: TwoStageRecommender, data) -> None:
    train, users, _ = data
    store = online_store(train, users)
    rng = np.random.default_rng(5)
    times = [pd.Timestamp("2024-03-05 08:30:00"), pd.Timestamp("2024-03-09 21:15:00")]
    checked = 0
    for user in rng.choice(N_USERS, 8, replace=False):
        items = rng.choice(N_ITEMS, 5, replace=False)
        state = store.get(int(user))
        for moment in times:
            now = float(moment.timestamp())
            offline = model.features(model.offline_inputs(int(model.user_map.index([user])[0]), now), items)
            inputs = model.serving_inputs(int(user), state.history, state.history_times, state.features, now)
            served = model.features(inputs, items)
            pd.testing.assert_frame_equal(served, offline, check_exact=True)
            checked += len(items)
    assert checked == 80
    assert offline.notna().any().all() or offline.shape[0] == 5  # features were really computed
    assert (offline["hour"] == 21).all() and offline["affinity_mean"].notna().all()


def test_a_served_answer_logs_the_feature_rows_it_was_ranked_by(model: TwoStageRecommender, data) -> None:
    train, users, items = data
    store = online_store(train, users)
    bundle = ServingBundle(
        model=model,
        fallback=PopularityRecommender().fit(train),
        segment=None,
        titles={},
        metadata={},
        version="two-stage",
        catalog=items.set_index("item_id"),
    )
    user, moment = 4, datetime(2024, 3, 5, 8, 30, tzinfo=UTC)
    result = answer(bundle, Request(user, 5, now=moment), store.get(user))
    assert result.source == "model" and len(result.item_ids) == 5
    offline = model.features(model.offline_inputs(user, float(moment.timestamp())), result.item_ids)
    logged = pd.DataFrame(result.ranker_features).set_index("item_id").astype(float)
    pd.testing.assert_frame_equal(logged, offline, check_exact=True, check_names=False)
    record = answer_record("r1", "champion", moment, Request(user, 5, now=moment), result, "v", 1.0, "v1")
    assert record["ranker_features"] == result.ranker_features
    # A fresh item in the history is ranked from it at the request time.
    unseen = int(np.setdiff1d(np.arange(N_ITEMS), train.item_id[train.user_id == user])[0])
    fresh = answer(bundle, Request(user, 5, recent_items=[unseen], now=moment), store.get(user))
    assert fresh.source == "model+fresh_history" and unseen not in fresh.item_ids
    # A user the model does not know, without a known history item, gets the usual fallback.
    assert answer(bundle, Request(10_000, 5, now=moment), None).source == "popularity"
    empty = UserState(10_000, np.zeros(0, dtype=np.int64), np.zeros(0, dtype="datetime64[us]"), {})
    assert answer(bundle, Request(10_000, 5, recent_items=[1, 2], now=moment), empty).source == "model+fresh_history"


def test_missing_catalogue_columns_are_tolerated(data) -> None:
    train, _, _ = data
    model = TwoStageRecommender(**FEATURED).fit(train, items=pd.DataFrame({"item_id": np.arange(N_ITEMS)}))
    ranked = model.recommend([0, 1], k=3)
    assert len(ranked) == 6
    assert model.features(model.offline_inputs(0), [1, 2])[["affinity_mean", "user_age_bucket"]].isna().all().all()


def test_more_candidate_rows_than_the_budget_is_a_reason_not_a_fit(data) -> None:
    train, _, _ = data
    n_users = train.user_id.nunique()
    model = TwoStageRecommender(**{**FEATURED, "candidates": 10, "max_candidate_rows": n_users * 2 * 10 - 1})
    with pytest.raises(CannotFit, match=rf"{n_users:,} users x 2 sources x 10 candidates"):
        model.fit(train)


def test_feature_importance_and_contributions(model: TwoStageRecommender) -> None:
    importance = model.metadata["feature_importance"]
    assert list(importance) == sorted(importance, key=lambda name: -importance[name])
    user = model.offline_inputs(0)
    contributions = model.contributions(user, [1, 2, 3])
    scores = model.ranker.predict(model.features(user, [1, 2, 3]).to_numpy())
    np.testing.assert_allclose(contributions.sum(axis=1).to_numpy(), scores, rtol=1e-9, atol=1e-9)


# -- the ANN source ------------------------------------------------------------------------------
def test_the_ann_index_finds_the_exact_top_10_at_recall_above_095() -> None:
    rng = np.random.default_rng(0)
    items = rng.normal(size=(2000, 32)).astype(np.float32)
    queries = rng.normal(size=(100, 32)).astype(np.float32)
    index = ann_index(items, neighbors=32)
    index.hnsw.efSearch = 64
    _, found = index.search(queries, 10)
    exact = np.argsort(-(queries @ items.T), axis=1)[:, :10]
    recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact, strict=True)])
    assert recall >= 0.95, recall
    assert isinstance(index, faiss.IndexHNSWFlat)


def test_a_two_stage_model_with_an_ann_source_saves_and_loads(data, tmp_path: Path) -> None:
    train, users, items = data
    params = {**FEATURED, "ann_two_tower": {"epochs": 2, "embedding_dim": 8, "hidden": 16, "factors": 8}}
    model = TwoStageRecommender(**params).fit(train, users=users, items=items)
    assert model.retrieval.names == ["dlae", "item_knn", "ann"]
    loaded = load_recommender(model.save(tmp_path / "model"))
    assert (tmp_path / "model" / "ann.faiss").exists() and (tmp_path / "model" / "ranker.txt").exists()
    users_ = np.arange(N_USERS)
    pd.testing.assert_frame_equal(loaded.recommend(users_, k=5), model.recommend(users_, k=5))
    assert np.isfinite(model.ranker_rows["ann_rank"]).any()


def test_the_evaluation_report_shows_feature_importance(model: TwoStageRecommender) -> None:
    scores = ModelScores("two_stage", True, {}, {}, 0, "", "", feature_importance=model.metadata["feature_importance"])
    table = scores.feature_importance_markdown(top=3)
    first = next(iter(model.metadata["feature_importance"]))
    assert first in table.splitlines()[2] and len(table.splitlines()) == 5


def test_a_two_stage_bundle_passes_the_verifier(model: TwoStageRecommender, data, tmp_path: Path) -> None:
    train, _, items = data
    directory = write_bundle(tmp_path / "bundle", model, PopularityRecommender().fit(train), items, {})
    assert check_bundle(directory, "two-stage") is None
    loaded = ServingBundle.load(directory, "two-stage")
    assert {smoke.expected_source for smoke in smoke_requests(loaded)} == {"model", "popularity", "model+fresh_history"}


def test_explanations_name_the_sources_and_the_largest_contributions(model: TwoStageRecommender, data) -> None:
    train, users, items = data
    bundle = ServingBundle(model, PopularityRecommender().fit(train), None, {}, {}, "v", items.set_index("item_id"))
    user, moment = 4, datetime(2024, 3, 5, 8, 30, tzinfo=UTC)
    result = answer(bundle, Request(user, 3, now=moment), online_store(train, users).get(user))
    inputs = model.offline_inputs(user, float(moment.timestamp()))
    contributions = model.contributions(inputs, result.item_ids).drop(columns="bias")
    features = model.features(inputs, result.item_ids)
    for item, explanation in zip(result.item_ids, model.explain(result.ranker_features), strict=True):
        name, value = explanation.contributions[0]
        assert value == pytest.approx(contributions.loc[item, name])
        assert abs(value) == pytest.approx(contributions.loc[item].abs().max())
        ranks = features.loc[item, [f"{source}_rank" for source in model.retrieval.names]]
        assert explanation.sources == [name.removesuffix("_rank") for name in ranks.index[ranks.notna()]]
    sentences = explanations(bundle, result)
    assert len(sentences) == 3 and all(s.startswith("retrieved by ") for s in sentences)


def test_a_batch_scored_on_several_threads_ranks_as_on_one(model: TwoStageRecommender, monkeypatch) -> None:
    """Offline batches past PARALLEL_PREDICT_ROWS use the ranker's threads; every score is the same."""
    users = [model.offline_inputs(index) for index in range(len(model.user_map))]
    threads: list[int] = []
    predict = model.ranker.predict

    def counted(rows: np.ndarray, num_threads: int) -> np.ndarray:
        threads.append(num_threads)
        return predict(rows, num_threads=num_threads)

    monkeypatch.setattr(model.ranker, "predict", counted)
    monkeypatch.setattr(model, "params", model.params.model_copy(update={"threads": 2}))
    monkeypatch.setattr(two_stage, "PARALLEL_PREDICT_ROWS", 10**12)
    alone = model._rank(users)
    monkeypatch.setattr(two_stage, "PARALLEL_PREDICT_ROWS", 1)
    together = model._rank(users)
    assert threads == [1, 2]
    for (items, _, scores), (items_too, _, scores_too) in zip(alone, together, strict=True):
        np.testing.assert_array_equal(items, items_too)
        np.testing.assert_array_equal(scores, scores_too)
