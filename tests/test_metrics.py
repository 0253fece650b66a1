"""Per-user ranking metrics: hand-computed examples, edge cases, and a cross-check with ranx."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recs_platform.evaluation.evaluate import evaluate, hit_matrix, score_run
from recs_platform.evaluation.metrics import (
    METRICS,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)
from recs_platform.models import PopularityRecommender


def one_user(hits: list[int], n_relevant: int) -> tuple[np.ndarray, np.ndarray]:
    return np.array([hits], dtype=bool), np.array([n_relevant])


def approx(value: float) -> object:
    return pytest.approx(value, abs=1e-12)


# -- hand-computed examples -----------------------------------------------------------------


def test_two_hits_out_of_two_relevant() -> None:
    # hits [1,0,1], 2 relevant:
    #   DCG  = 1/log2(2) + 1/log2(4)            = 1 + 0.5      = 1.5
    #   IDCG = 1/log2(2) + 1/log2(3)            = 1 + 0.630930 = 1.630930
    #   NDCG = 1.5 / 1.630930                                  ≈ 0.919721
    #   recall = 2/2 = 1, precision = 2/3, hit = 1, MRR = 1/1 = 1
    hits, n_rel = one_user([1, 0, 1], 2)
    assert ndcg_at_k(hits, n_rel)[0] == approx(1.5 / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(hits, n_rel)[0] == pytest.approx(0.919721, abs=1e-6)
    assert recall_at_k(hits, n_rel)[0] == approx(1.0)
    assert precision_at_k(hits, n_rel)[0] == approx(2 / 3)
    assert hit_rate_at_k(hits, n_rel)[0] == approx(1.0)
    assert mrr_at_k(hits, n_rel)[0] == approx(1.0)


def test_single_relevant_item_at_rank_two() -> None:
    # hits [0,1,0], 1 relevant:
    #   DCG = 1/log2(3) ≈ 0.630930, IDCG = 1/log2(2) = 1, NDCG ≈ 0.630930
    #   recall = 1/1, precision = 1/3, hit = 1, MRR = 1/2
    hits, n_rel = one_user([0, 1, 0], 1)
    assert ndcg_at_k(hits, n_rel)[0] == approx(1 / math.log2(3))
    assert recall_at_k(hits, n_rel)[0] == approx(1.0)
    assert precision_at_k(hits, n_rel)[0] == approx(1 / 3)
    assert hit_rate_at_k(hits, n_rel)[0] == approx(1.0)
    assert mrr_at_k(hits, n_rel)[0] == approx(0.5)


def test_single_relevant_item_at_last_rank() -> None:
    # hits [0,0,0,1], 1 relevant: DCG = 1/log2(5) ≈ 0.430677 = NDCG; MRR = 1/4; precision = 1/4
    hits, n_rel = one_user([0, 0, 0, 1], 1)
    assert ndcg_at_k(hits, n_rel)[0] == approx(1 / math.log2(5))
    assert mrr_at_k(hits, n_rel)[0] == approx(0.25)
    assert precision_at_k(hits, n_rel)[0] == approx(0.25)
    assert recall_at_k(hits, n_rel)[0] == approx(1.0)


def test_no_hits_gives_zero_everywhere() -> None:
    hits, n_rel = one_user([0, 0, 0], 2)
    for metric in METRICS.values():
        assert metric(hits, n_rel)[0] == approx(0.0)


def test_more_relevant_than_k() -> None:
    # hits [1,1,0], 5 relevant, k = 3: the ideal list has min(5, 3) = 3 hits.
    #   DCG  = 1 + 1/log2(3)               ≈ 1.630930
    #   IDCG = 1 + 1/log2(3) + 1/log2(4)   ≈ 2.130930
    #   NDCG ≈ 0.765360; recall = 2/5 (divides by all relevant, not by k); precision = 2/3
    hits, n_rel = one_user([1, 1, 0], 5)
    dcg = 1 + 1 / math.log2(3)
    assert ndcg_at_k(hits, n_rel)[0] == approx(dcg / (dcg + 0.5))
    assert ndcg_at_k(hits, n_rel)[0] == pytest.approx(0.765360, abs=1e-6)
    assert recall_at_k(hits, n_rel)[0] == approx(0.4)
    assert precision_at_k(hits, n_rel)[0] == approx(2 / 3)
    assert mrr_at_k(hits, n_rel)[0] == approx(1.0)


def test_all_hits_with_many_relevant_is_perfect_ndcg() -> None:
    # k = 3 hits out of 10 relevant: the list is ideal, so NDCG = 1 though recall = 0.3.
    hits, n_rel = one_user([1, 1, 1], 10)
    assert ndcg_at_k(hits, n_rel)[0] == approx(1.0)
    assert recall_at_k(hits, n_rel)[0] == approx(0.3)
    assert precision_at_k(hits, n_rel)[0] == approx(1.0)


def test_zero_relevant_items_does_not_divide_by_zero() -> None:
    hits, n_rel = one_user([0, 0], 0)
    with np.errstate(all="raise"):
        for metric in METRICS.values():
            assert metric(hits, n_rel)[0] == approx(0.0)


def test_metrics_are_per_user_rows() -> None:
    # Row 0: [1,0] with 1 relevant; row 1: [0,1] with 2 relevant; row 2: [0,0] with 1 relevant.
    hits = np.array([[1, 0], [0, 1], [0, 0]], dtype=bool)
    n_rel = np.array([1, 2, 1])
    np.testing.assert_allclose(
        ndcg_at_k(hits, n_rel), [1.0, (1 / math.log2(3)) / (1 + 1 / math.log2(3)), 0.0], atol=1e-12
    )
    np.testing.assert_allclose(recall_at_k(hits, n_rel), [1.0, 0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(precision_at_k(hits, n_rel), [0.5, 0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(hit_rate_at_k(hits, n_rel), [1.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(mrr_at_k(hits, n_rel), [1.0, 0.5, 0.0], atol=1e-12)


def test_hit_matrix_places_relevant_items_at_their_rank() -> None:
    run = pd.DataFrame(
        {"user_id": [1, 1, 1, 2, 2], "item_id": [10, 11, 12, 10, 13], "rank": [1, 2, 3, 1, 2], "score": 0.0}
    )
    truth = pd.DataFrame({"user_id": [1, 2, 2], "item_id": [12, 13, 99]})
    hits = hit_matrix(run, truth, np.array([1, 2]), k=3)
    np.testing.assert_array_equal(hits, [[False, False, True], [False, True, False]])
    # Ranks beyond k are ignored.
    np.testing.assert_array_equal(hit_matrix(run, truth, np.array([1, 2]), k=2), [[False, False], [False, True]])


def test_score_run_counts_users_without_recommendations_as_zero() -> None:
    run = pd.DataFrame({"user_id": [1], "item_id": [10], "rank": [1], "score": [1.0]})
    truth = pd.DataFrame({"user_id": [1, 2], "item_id": [10, 20]})
    per_user = score_run(run, truth, k=5)
    assert per_user.user_id.tolist() == [1, 2]
    assert per_user["n_relevant"].tolist() == [1, 1]
    assert per_user["ndcg@5"].tolist() == [1.0, 0.0]
    assert per_user["precision@5"].tolist() == [0.2, 0.0]


# -- cross-check with ranx --------------------------------------------------------------------


def random_run_and_truth(seed: int = 0, n_users: int = 50, n_items: int = 60, k: int = 10):
    rng = np.random.default_rng(seed)
    run_rows, truth_rows = [], []
    for user in range(1, n_users + 1):
        # 1..15 relevant items so some users have more relevant items than k.
        relevant = rng.choice(n_items, size=rng.integers(1, 16), replace=False)
        truth_rows += [(user, int(item)) for item in relevant]
        # A ranked list that is at least k long (sometimes longer, to test the cut at k),
        # with distinct, strictly decreasing scores so both libraries order it the same way.
        ranked = rng.choice(n_items, size=rng.integers(k, k + 6), replace=False)
        scores = np.sort(rng.random(len(ranked)))[::-1] + np.linspace(1e-3, 0, len(ranked))
        ranked_pairs = enumerate(zip(ranked, scores, strict=True), start=1)
        run_rows += [(user, int(item), rank, float(score)) for rank, (item, score) in ranked_pairs]
    run = pd.DataFrame(run_rows, columns=["user_id", "item_id", "rank", "score"])
    truth = pd.DataFrame(truth_rows, columns=["user_id", "item_id"])
    return run, truth


def test_score_run_matches_ranx() -> None:
    # Definitions compared (binary relevance):
    #   ndcg@k      ranx: Järvelin DCG (rel / log2(rank + 1)) over the ideal DCG of the top-k qrels,
    #               i.e. min(n_relevant, k) ideal hits -- the same as ours.
    #   recall@k    ranx divides hits by the number of relevant items (not by min(n_relevant, k),
    #               which some libraries use); ours does too, so they agree even for users
    #               with more relevant items than k.
    #   precision@k ranx divides by k even when the run is shorter; ours divides by k (the
    #               hits-matrix width) too.
    #   mrr@k / hit_rate@k: first relevant rank within k / any relevant within k, in both.
    from ranx import Qrels, Run
    from ranx import evaluate as ranx_evaluate

    k = 10
    run, truth = random_run_and_truth()
    per_user = score_run(run, truth, k=k)
    ours = {column: per_user[column].mean() for column in per_user.columns[2:]}

    qrels = Qrels({str(u): {str(i): 1 for i in g.item_id} for u, g in truth.groupby("user_id")})
    ranx_run = Run(
        {
            str(u): dict(zip(g.item_id.astype(str), g.score.astype(float), strict=True))
            for u, g in run.groupby("user_id")
        }
    )
    theirs = ranx_evaluate(qrels, ranx_run, [f"ndcg@{k}", f"recall@{k}", f"precision@{k}", f"mrr@{k}", f"hit_rate@{k}"])
    mapping = {"ndcg": "ndcg", "recall": "recall", "precision": "precision", "mrr": "mrr", "hit": "hit_rate"}
    assert set(ours) == {f"{name}@{k}" for name in mapping}
    for ours_name, ranx_name in mapping.items():
        assert ours[f"{ours_name}@{k}"] == pytest.approx(theirs[f"{ranx_name}@{k}"], abs=1e-9), ours_name
    # The data actually exercises the interesting cases.
    assert (per_user.n_relevant > k).any()
    assert 0 < ours[f"hit@{k}"] < 1


# -- evaluate() and its run files -------------------------------------------------------------


@pytest.fixture
def fitted_popularity() -> tuple[PopularityRecommender, pd.DataFrame]:
    rng = np.random.default_rng(3)
    train = pd.DataFrame({"user_id": rng.integers(1, 21, 300), "item_id": rng.integers(1, 31, 300)})
    return PopularityRecommender().fit(train), train


def test_evaluate_writes_run_files_that_reproduce_the_summary(fitted_popularity, tmp_path: Path) -> None:
    model, train = fitted_popularity
    rng = np.random.default_rng(4)
    truth = pd.DataFrame({"user_id": rng.integers(1, 21, 80), "item_id": rng.integers(1, 31, 80)})
    truth = truth.merge(train, how="left", indicator=True).query("_merge == 'left_only'").drop(columns="_merge")
    # One user the model has never seen is skipped, not scored as zero.
    truth = pd.concat([truth, pd.DataFrame({"user_id": [999], "item_id": [1]})], ignore_index=True)

    result = evaluate(model, truth, k=5)
    assert result.n_skipped_users == 1
    assert result.n_users == truth.user_id.nunique() - 1
    assert set(result.summary) == {"ndcg@5", "recall@5", "hit@5", "mrr@5", "precision@5"}

    paths = result.write_run_files(tmp_path / "runs")
    run = pd.read_parquet(paths["run"])
    qrels = pd.read_parquet(paths["qrels"])
    assert list(run.columns) == ["user_id", "item_id", "rank", "score"]
    assert list(qrels.columns) == ["user_id", "item_id"]
    assert (tmp_path / "runs" / "per_user.parquet").exists()
    assert 999 not in set(qrels.user_id)

    recomputed = score_run(run, qrels, k=5)
    summary = {column: float(recomputed[column].mean()) for column in recomputed.columns[2:]}
    assert summary == pytest.approx(result.summary, abs=1e-12)
    pd.testing.assert_frame_equal(recomputed, result.per_user)


def test_evaluate_masks_training_and_excluded_items(fitted_popularity) -> None:
    model, train = fitted_popularity
    truth = pd.DataFrame({"user_id": [1, 2], "item_id": [5, 6]})
    exclude = pd.DataFrame({"user_id": [1], "item_id": [7]})
    result = evaluate(model, truth, k=30, exclude=exclude)
    seen = set(zip(train.user_id, train.item_id, strict=True)) | {(1, 7)}
    assert not set(zip(result.run.user_id, result.run.item_id, strict=True)) & seen
