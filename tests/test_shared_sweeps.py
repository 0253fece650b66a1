"""Sweeps that share work (one Gram matrix and decomposition for the closed-form models), models that
do not fit their memory budget (skipped with the reason, or pruned to the most-supported items),
ranking in bounded batches, and evaluations that share rankings."""

from dataclasses import replace
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recs_platform.artifacts import DatasetVersion, ModelArtifact
from recs_platform.evaluation.report import build_report, reusable_runs
from recs_platform.evaluation.suite import full_evaluation
from recs_platform.models import base
from recs_platform.models.base import CannotFit, FitCache, Recommender, load_recommender
from recs_platform.models.closed_form import RidgeSolver, dense_bytes
from recs_platform.models.neighbors import DLAERecommender, EASERecommender, max_items_within
from recs_platform.sweeps import SweepConfig, best, expand_grid, fit_batches, sweep_table, train_and_validate
from recs_platform.training import train
from recs_platform.validation.datasets import freeze

# users, items: fewer users than items takes the users x users (dual) path, more takes the item x item one;
# with at most a quarter as many users as items the weights are kept factored.
SHAPES = {"factored": (8, 200), "dual": (25, 60), "primal": (80, 30)}


def random_interactions(n_users: int, n_items: int, seed: int = 3) -> pd.DataFrame:
    """Each user holds 4 to 12 distinct items, popularity skewed toward small item ids."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1)
    rows = [
        (user, int(item))
        for user in range(n_users)
        for item in rng.choice(n_items, size=rng.integers(4, 13), replace=False, p=weights / weights.sum())
    ]
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dropout_weight", [0.0, 1.0])
def test_shared_decomposition_gives_the_direct_inverse_for_every_l2(shape, dropout_weight):
    frame = random_interactions(*SHAPES[shape])
    matrix = sp.csr_matrix((np.ones(len(frame)), (frame.user_id, frame.item_id)), shape=SHAPES[shape])
    gram = (matrix.T @ matrix).toarray()
    shared = RidgeSolver(matrix, share=True)
    for l2 in (0.5, 5.0, 50.0):
        expected = np.linalg.inv(gram + np.diag(dropout_weight * np.diag(gram) + l2))
        np.testing.assert_allclose(shared.precision(dropout_weight, l2), expected, rtol=0, atol=1e-9)
        np.testing.assert_allclose(RidgeSolver(matrix, share=False).precision(dropout_weight, l2), expected, atol=1e-9)


def grid_configs() -> dict[str, list[SweepConfig]]:
    return {
        "ease": expand_grid("ease", {}, {"l2": [1.0, 10.0, 100.0]}),
        "dlae": expand_grid(
            "dlae", {}, {"dropout": [0.0, 0.25, 0.5], "l2": [1.0, 20.0], "zero_diagonal": [False, True]}
        ),
    }


@pytest.mark.parametrize("shape", SHAPES)
def test_a_sweep_sharing_one_cache_fits_the_same_models_as_independent_fits(shape):
    frame = random_interactions(*SHAPES[shape])
    recommenders = {"ease": EASERecommender, "dlae": DLAERecommender}
    for name, configs in grid_configs().items():
        cache = FitCache()
        for config in configs:
            shared = recommenders[name](**config.params).fit(frame, cache=cache)
            alone = recommenders[name](**config.params).fit(frame)
            np.testing.assert_allclose(shared.item_weights, alone.item_weights, rtol=0, atol=1e-6, err_msg=str(config))
        assert len(cache._entries) == 1  # one solver (Gram or decomposition) served the whole grid


FACTORED_CONFIGS = [
    (EASERecommender, {"l2": 5.0}),
    (DLAERecommender, {"dropout": 0.5, "l2": 5.0}),
    (DLAERecommender, {"dropout": 0.25, "l2": 5.0, "zero_diagonal": True}),
]


@pytest.mark.parametrize(("recommender", "params"), FACTORED_CONFIGS)
def test_factored_weights_score_what_the_dense_weights_would(recommender, params, tmp_path):
    frame = random_interactions(*SHAPES["factored"])
    model = recommender(**params).fit(frame)
    n_items = len(model.item_map)
    assert model.weights is None and model.factored.factor.shape == (8, n_items) and n_items >= 32
    dense = model.item_weights
    if params.get("zero_diagonal", recommender is EASERecommender):
        assert np.abs(np.diag(dense)).max() < 1e-5  # no item predicts itself
    rows = model.seen
    np.testing.assert_allclose(model._score_rows(rows), rows @ dense, atol=1e-5)
    for user in range(8):  # one row alone (a serving request) is that row of the batch
        np.testing.assert_allclose(model._score(np.array([user])), model._score_rows(rows[user]), atol=1e-5)
    saved = model.save(tmp_path / "model")
    with np.load(saved / base.ARRAYS_FILE) as arrays:
        assert "state_factor" in arrays.files and "state_weights" not in arrays.files
    loaded = load_recommender(saved)
    pd.testing.assert_frame_equal(loaded.recommend(range(8), k=5), model.recommend(range(8), k=5))


def test_the_factored_form_is_the_one_within_the_budget_for_wide_catalogues():
    assert dense_bytes(10_000, 610) == 20 * 10_000 * 610  # 122 MB against 1.3 GB dense
    assert max_items_within(2**30, 610) == 2**30 // (20 * 610)  # no pruning below 88k items
    assert max_items_within(28 * 100**2, 1_000) == 100  # far more users than items: dense, as before


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> DatasetVersion:
    """30 users over 50 items (fewer users than items), one validation and one test item per user."""
    frame = random_interactions(30, 50, seed=11)
    position = frame.groupby("user_id").cumcount()
    tables = {
        "test": frame[position == 0],
        "valid": frame[position == 1],
        "train": frame[position >= 2],
    }
    tables = {name: table.assign(timestamp=pd.Timestamp("2024-01-01")) for name, table in tables.items()}
    tables["users"] = pd.DataFrame({"user_id": np.arange(30)})
    tables["items"] = pd.DataFrame({"item_id": np.arange(50)})
    return freeze(tables, tmp_path_factory.mktemp("datasets"), {"source": "test"})


def test_the_sweep_step_gives_the_models_and_scores_of_independent_training(dataset, tmp_path):
    configs = grid_configs()["dlae"][:6]
    results = train_and_validate(configs, dataset, tmp_path / "shared")
    for config, result in zip(configs, results, strict=True):
        alone = train("dlae", config.params, dataset, tmp_path / "alone")
        shared_model, alone_model = load_recommender(Path(result.artifact.path)), load_recommender(Path(alone.path))
        np.testing.assert_allclose(shared_model.item_weights, alone_model.item_weights, rtol=0, atol=1e-6)
        assert result.valid == pytest.approx(alone.valid, abs=1e-9)


@pytest.mark.parametrize(
    ("recommender", "grid"),
    [
        ("cooccurrence", {"n_last": [1, 5], "normalize": [False, True]}),
        ("item_knn", {"neighbors": [2, 10], "shrinkage": [0.0, 10.0]}),
    ],
)
def test_neighbourhood_sweeps_share_their_item_matrix_and_fit_what_independent_fits_do(
    recommender, grid, dataset, tmp_path
):
    """One co-occurrence or similarity matrix per setting it depends on, shared by the configurations
    that differ in how much of it they use; every fit equals an independent one bit for bit."""
    configs = expand_grid(recommender, {}, grid)
    assert fit_batches(recommender, configs) == [configs]  # one sweep step
    build = {"cooccurrence": "_cooccurrence", "item_knn": "_similarity"}[recommender]
    model_class = base.RECOMMENDERS[recommender]
    with patch.object(model_class, build, autospec=True, side_effect=getattr(model_class, build)) as built:
        results = train_and_validate(configs, dataset, tmp_path / "shared")
    assert built.call_count == 2  # once per value of the setting the matrix depends on
    for config, result in zip(configs, results, strict=True):
        alone = train(recommender, config.params, dataset, tmp_path / "alone")
        shared_model, alone_model = load_recommender(Path(result.artifact.path)), load_recommender(Path(alone.path))
        for name, array in shared_model._state().items():
            np.testing.assert_array_equal(array, alone_model._state()[name], err_msg=f"{config.config_id} {name}")
        assert result.valid == alone.valid


def test_a_model_over_its_memory_budget_is_skipped_with_the_reason(dataset, tmp_path):
    too_big = {"l2": 10.0, "memory_gib": 1e-6, "prune_to_fit": False}
    configs = [SweepConfig("ease", "c0", too_big), SweepConfig("ease", "c1", {"l2": 10.0})]
    skipped, fitted = train_and_validate(configs, dataset, tmp_path)
    assert skipped.artifact is None and fitted.artifact is not None
    assert skipped.skipped.startswith("dense ease needs 0.0 GB for 50 items (budget 1e-06 GiB)")
    table = sweep_table([skipped, fitted]).set_index("config_id")
    assert table.loc["c0", "skipped"] == skipped.skipped and pd.isna(table.loc["c1", "skipped"])
    assert best([skipped, fitted]) is fitted and best([skipped]) is None
    with pytest.raises(CannotFit, match="needs"):
        EASERecommender(**too_big).fit(dataset.load()["train"])


def test_the_report_lists_a_skipped_model_with_its_reason(dataset, tmp_path):
    skipped = ModelArtifact.skipped_model("ease", dataset.version, "code", "dense ease needs 80.0 GB for 50,000 items")
    fitted = train("popularity", {}, dataset, tmp_path)
    report = build_report([skipped, fitted], dataset.load(), dataset.version, tmp_path / "eval")
    assert set(report.scores) == {"popularity"}
    assert report.skipped == {"ease": "dense ease needs 80.0 GB for 50,000 items"}
    assert "skipped: ease: dense ease needs 80.0 GB for 50,000 items" in report.markdown()


def test_a_model_over_its_budget_keeps_the_most_supported_items_that_fit(dataset, tmp_path):
    train_rows = dataset.load()["train"]
    budget = {"l2": 10.0, "memory_gib": 2e-6}  # 2,147 bytes: 28 n² (n <= 30 users) fits n = 8
    model = EASERecommender(**budget).fit(train_rows, catalog_items=range(50))
    support = train_rows.item_id.value_counts().reindex(range(50), fill_value=0)
    top = support.sort_index().sort_values(ascending=False, kind="stable").index[:8]
    np.testing.assert_array_equal(model.kept_items, np.sort(top))
    assert model.metadata["pruned_item_share"] == 0.84 and model.metadata["kept_items"] == 8
    on_kept = EASERecommender(l2=10.0).fit(train_rows[train_rows.item_id.isin(top)], catalog_items=top)
    np.testing.assert_allclose(model.item_weights, on_kept.item_weights, atol=1e-6)  # EASE restricted to the kept items
    recommended = model.recommend(range(30), k=20)
    assert set(recommended.item_id) <= set(top)  # pruned items are never recommended
    for user in range(30):  # one user alone (a serving request) scores as in the batch
        np.testing.assert_array_equal(model._score(np.array([user])), model._score_rows(model.seen[[user]]))
    loaded = load_recommender(model.save(tmp_path / "pruned"))
    pd.testing.assert_frame_equal(loaded.recommend(range(30), k=20), recommended)
    [result] = train_and_validate([SweepConfig("ease", "c0", budget)], dataset, tmp_path)
    assert sweep_table([result]).pruned_item_share.tolist() == [0.84]


def test_ranking_runs_in_batches_bounded_by_the_score_budget(dataset, monkeypatch):
    model = EASERecommender(l2=10.0).fit(dataset.load()["train"], catalog_items=range(50))
    whole = model.recommend(range(30), k=5)
    monkeypatch.setattr(base, "SCORE_BATCH_BYTES", 8 * 50 * 7)  # 7 users' float64 scores per batch
    batches = []
    score = model._score
    monkeypatch.setattr(model, "_score", lambda index: batches.append(len(index)) or score(index))
    pd.testing.assert_frame_equal(model.recommend(range(30), k=5), whole)
    assert batches == [7, 7, 7, 7, 2]
    assert base.score_batch_rows(50_000) == 1  # at the patched budget: never fewer than one user


def test_the_suite_scores_the_reports_runs_as_if_it_ranked_again(dataset, tmp_path):
    """The report's run files are 20 deep, so the suite's default cutoffs reuse them: same numbers,
    and nothing is ranked twice. A run of another artifact, or too shallow, is never reused."""
    artifacts = [train(name, {}, dataset, tmp_path) for name in ("popularity", "item_knn")]
    report = build_report(artifacts, dataset.load(), dataset.version, tmp_path / "eval")
    runs = reusable_runs(report, artifacts, depth=20)
    assert set(runs) == {"popularity", "item_knn"} and runs["item_knn"]["rank"].max() == 20
    assert reusable_runs(report, artifacts, depth=21) == {}
    moved = replace(artifacts[0], path=str(tmp_path / "elsewhere"))
    assert reusable_runs(report, [moved], depth=20) == {}

    models = {a.recommender: load_recommender(Path(a.path)) for a in artifacts}
    ranked = full_evaluation(models, dataset.load(), ks=(5, 10, 20), n_resamples=50)
    with patch.object(Recommender, "recommend", side_effect=AssertionError("ranked again")):
        reused = full_evaluation(models, dataset.load(), ks=(5, 10, 20), n_resamples=50, runs=runs)
    for name in models:
        assert reused.models[name].summary == pytest.approx(ranked.models[name].summary)
        pd.testing.assert_frame_equal(reused.models[name].per_user, ranked.models[name].per_user)
