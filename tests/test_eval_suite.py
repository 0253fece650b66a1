"""The evaluation suite: MAP, beyond-accuracy, slices, custom metrics, significance, HTML report.

Every metric is checked on a frame small enough to compute by hand; the suite itself runs on
a tiny synthetic dataset with three models: popularity (the baseline), random scores, and a
model that always ranks one catalog item first.
"""

from __future__ import annotations

import math
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import Field

from recs_platform.evaluation import custom
from recs_platform.evaluation.beyond_accuracy import (
    catalog_coverage,
    gini,
    intra_list_diversity,
    novelty,
    popularity_bias,
    same_first_item,
)
from recs_platform.evaluation.custom import apply_custom_metrics, load_metric, register_metric
from recs_platform.evaluation.evaluate import evaluate, score_run
from recs_platform.evaluation.html_report import write_html_report
from recs_platform.evaluation.metrics import map_at_k
from recs_platform.evaluation.significance import paired_bootstrap, paired_t_test
from recs_platform.evaluation.slices import sliced_metrics, user_segments
from recs_platform.evaluation.suite import SuiteResult, full_evaluation
from recs_platform.models import PopularityRecommender
from recs_platform.models.base import Logger, Recommender, RecommenderParams, TrainingData, Validator

LONG_TAIL = "recs_platform.evaluation.custom:long_tail_share"
FAVOURITE = 99  # a catalog item nobody trained on, so no user has it masked


def run_frame(lists: dict[int, list[int]]) -> pd.DataFrame:
    rows = [(user, item, rank, 1.0 / rank) for user, items in lists.items() for rank, item in enumerate(items, 1)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rank", "score"])


# -- MAP ------------------------------------------------------------------------------------


def test_map_hand_computed() -> None:
    # [1,0,1], 2 relevant: (P@1 + P@3) / min(2, 3) = (1 + 2/3) / 2 = 5/6.
    # [0,1,0], 5 relevant, k = 3: P@2 / min(5, 3) = (1/2) / 3.
    # [0,1,0,1], 5 relevant, k = 4: (P@2 + P@4) / min(5, 4) = (1/2 + 2/4) / 4 = 1/4.
    # No hits: 0; no relevant items: 0 without dividing by zero.
    hits = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 0, 0]], dtype=bool)
    np.testing.assert_allclose(map_at_k(hits[:, :3], np.array([2, 5, 1])), [5 / 6, (1 / 2) / 3, 0.0])
    np.testing.assert_allclose(map_at_k(hits, np.array([2, 5, 1])), [5 / 6, 1 / 4, 0.0])
    with np.errstate(all="raise"):
        assert map_at_k(np.zeros((1, 2), dtype=bool), np.array([0]))[0] == 0.0


def test_map_against_ranx() -> None:
    # ranx's map@k (like trec_eval) divides by all n_relevant; ours (RecBole) by min(n_relevant, k).
    # So they agree for users with at most k relevant items and differ by n_relevant / k otherwise.
    from ranx import Qrels, Run
    from ranx import evaluate as ranx_evaluate

    rng = np.random.default_rng(0)
    k, lists, truth_rows = 10, {}, []
    for user in range(1, 41):
        truth_rows += [(user, int(i)) for i in rng.choice(50, size=rng.integers(1, 16), replace=False)]
        lists[user] = [int(i) for i in rng.choice(50, size=k + 3, replace=False)]
    run, truth = run_frame(lists), pd.DataFrame(truth_rows, columns=["user_id", "item_id"])
    ours = score_run(run, truth, k=k, metrics=("map",)).set_index("user_id")

    qrels = Qrels({str(u): {str(i): 1 for i in g.item_id} for u, g in truth.groupby("user_id")})
    ranx_run = Run({str(u): dict(zip(g.item_id.astype(str), g.score, strict=True)) for u, g in run.groupby("user_id")})
    ranx_evaluate(qrels, ranx_run, f"map@{k}")
    theirs = pd.Series({int(u): v for u, v in ranx_run.scores[f"map@{k}"].items()})
    rescaled = theirs * ours.n_relevant / ours.n_relevant.clip(upper=k)
    np.testing.assert_allclose(ours[f"map@{k}"], rescaled.reindex(ours.index), atol=1e-9)
    few = ours.n_relevant <= k
    np.testing.assert_allclose(ours.loc[few, f"map@{k}"], theirs.reindex(ours.index)[few], atol=1e-9)
    assert (~few).any() and few.any()


def test_several_cutoffs_match_single_cutoffs() -> None:
    run = run_frame({1: [10, 11, 12, 13], 2: [20, 21, 22, 23]})
    truth = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [11, 13, 99]})
    several = score_run(run, truth, k=0, ks=(3, 1))
    for cutoff in (1, 3):
        single = score_run(run, truth, k=cutoff)
        pd.testing.assert_frame_equal(several[single.columns], single)
    assert list(several.columns[2:5]) == ["ndcg@1", "ndcg@3", "recall@1"]


# -- beyond accuracy ------------------------------------------------------------------------


def test_catalog_coverage_counts_catalog_items_only() -> None:
    run = run_frame({1: [1, 2], 2: [2, 3, 77]})  # 77 is not in the catalog
    assert catalog_coverage(run, pd.DataFrame({"item_id": range(1, 7)})) == 0.5


def test_intra_list_diversity_hand_computed() -> None:
    genres = pd.Series({1: "Action|Comedy", 2: "Action", 3: "Drama", 4: "Action|Comedy"})
    # User 1: J(1,2) = 1/2, J(1,3) = 0, J(2,3) = 0 -> mean 1/6 -> ILD 5/6.
    # User 2: two items with equal genre sets -> ILD 0. User 3: one item -> no pair -> NaN.
    ild = intra_list_diversity(run_frame({1: [1, 2, 3], 2: [1, 4], 3: [3]}), genres)
    assert ild[1] == pytest.approx(5 / 6)
    assert ild[2] == pytest.approx(0.0)
    assert math.isnan(ild[3])


def test_novelty_hand_computed() -> None:
    # 8 training users; item 1 is used by all (−log2 1 = 0), item 2 by 2 (−log2 1/4 = 2),
    # item 3 by none, floored to 1 user (−log2 1/8 = 3).
    popularity = pd.Series({1: 8, 2: 2, 3: 0})
    result = novelty(run_frame({1: [1, 2], 2: [3]}), popularity, n_users=8)
    assert result.to_dict() == {1: pytest.approx(1.0), 2: pytest.approx(3.0)}


def test_popularity_bias_hand_computed() -> None:
    popularity = pd.Series({"A": 10, "B": 5, "C": 1, "D": 0})  # percentiles 1, .75, .5, .25
    run = run_frame({1: ["A", "B"], 2: ["A"]})
    bias = popularity_bias(run, popularity)
    assert bias["popularity_percentile"] == pytest.approx((1 + 0.75 + 1) / 3)
    assert bias["mean_popularity"] == pytest.approx(25 / 3)
    # Counts sorted [0, 0, 1, 2]: 2·(3·1 + 4·2) / (4·3) − 5/4 = 7/12.
    assert bias["gini"] == pytest.approx(7 / 12)
    assert gini(np.array([0, 0, 0, 4])) == pytest.approx(0.75)
    assert gini(np.array([3, 3, 3])) == pytest.approx(0.0)


def test_same_first_item_fires_only_on_a_shared_first_item() -> None:
    shared = same_first_item(run_frame({1: [7, 1], 2: [7, 2], 3: [7, 3], 4: [4, 7]}))
    assert (shared.flagged, shared.item_id, shared.share) == (True, 7, 0.75)
    varied = same_first_item(run_frame({1: [1, 7], 2: [2, 7], 3: [3, 7], 4: [7, 1]}))
    assert not varied.flagged and varied.share == 0.25
    assert not same_first_item(run_frame({})).flagged


# -- slices ---------------------------------------------------------------------------------


def test_user_segments_and_sliced_metrics() -> None:
    users = pd.DataFrame(
        {"user_id": [1, 2, 3], "age_bucket": ["18-24", "18-24", None], "gender": ["F", "M", "F"], "occupation": "x"}
    )
    train = pd.DataFrame({"user_id": [1, 1, 1, 2, 4, 4, 4], "item_id": [1, 2, 3, 1, 1, 2, 3]})
    segments = user_segments(users, train, cold_max=3).set_index("user_id")
    # Users 1 and 4 have 3 training interactions (warm), 2 has 1, 3 none (cold); 4 is not in users.
    assert segments.cold_warm.to_dict() == {1: "warm", 2: "cold", 3: "cold", 4: "warm"}
    assert segments.age_bucket.to_dict() == {1: "18-24", 2: "18-24", 3: "unknown", 4: "unknown"}
    assert list(segments.columns) == ["age_bucket", "gender", "cold_warm"]  # no activity_level in users

    per_user = pd.DataFrame({"user_id": [1, 2, 3, 4], "n_relevant": 1, "m": [1.0, 0.0, 0.5, np.nan]})
    sliced = sliced_metrics(per_user, segments.reset_index()).set_index(["segment_column", "segment_value"])
    assert sliced.loc[("cold_warm", "cold"), ["mean", "n_users"]].tolist() == [0.25, 2]
    assert sliced.loc[("cold_warm", "warm"), ["mean", "n_users"]].tolist() == [1.0, 1]  # NaN left out
    assert sliced.loc[("gender", "F"), "mean"] == 0.75
    assert set(sliced.metric) == {"m"}


# -- custom metrics -------------------------------------------------------------------------


@register_metric("list_count")
def list_count(run: pd.DataFrame, ground_truth: pd.DataFrame, catalog: pd.DataFrame) -> float:
    """A global custom metric: how many lists the run has."""
    return float(run.user_id.nunique())


def test_custom_metrics_resolve_by_registry_path_and_entry_point(monkeypatch) -> None:
    assert load_metric("list_count") is list_count
    assert load_metric(LONG_TAIL) is custom.long_tail_share
    entry_point = EntryPoint(name="tail", value=LONG_TAIL, group=custom.ENTRY_POINT_GROUP)
    monkeypatch.setattr(custom, "entry_points", lambda group: [entry_point] if group == entry_point.group else [])
    assert load_metric("tail") is custom.long_tail_share
    with pytest.raises(KeyError):
        load_metric("no_such_metric")


def test_apply_custom_metrics_per_user_and_global() -> None:
    catalog = pd.DataFrame({"item_id": range(1, 11), "popularity_rank": range(1, 11)})  # head = items 1, 2
    run = run_frame({1: [1, 5], 2: [2, 1], 3: [7, 8]})
    truth = pd.DataFrame({"user_id": [1, 2, 3, 4], "item_id": [3, 3, 3, 3]})
    values = apply_custom_metrics(run, truth, catalog, [LONG_TAIL, "list_count"])
    per_user = values.per_user.set_index("user_id").long_tail_share
    assert per_user[[1, 2, 3]].tolist() == [0.5, 0.0, 1.0]
    assert np.isnan(per_user[4])  # a ground-truth user without a list is missing, not zero
    assert values.summary == {"long_tail_share": pytest.approx(0.5), "list_count": 3.0}


# -- significance ---------------------------------------------------------------------------


def test_bootstrap_is_deterministic_and_finds_a_real_difference() -> None:
    rng = np.random.default_rng(1)
    baseline = pd.Series(rng.random(300), index=range(300))
    candidate = (baseline + 0.05 + rng.normal(0, 0.1, 300)).drop(index=[0, 1])  # users 0, 1 unpaired
    first = paired_bootstrap(candidate, baseline, n_resamples=500, seed=3)
    assert first == paired_bootstrap(candidate, baseline, n_resamples=500, seed=3)
    assert first != paired_bootstrap(candidate, baseline, n_resamples=500, seed=4)
    assert first["n_users"] == 298
    assert 0 < first["ci_low"] < first["mean_diff"] < first["ci_high"]
    assert first["p_value"] == pytest.approx(1 / 501)  # no resample as far from the mean as 0 is
    reverse = paired_bootstrap(baseline, candidate, n_resamples=500, seed=3)
    assert reverse["ci_high"] < 0
    t_test = paired_t_test(candidate, baseline)
    assert t_test["t_stat"] > 0 and t_test["p_value"] < 1e-6


def test_no_difference_is_not_significant() -> None:
    scores = pd.Series(np.linspace(0, 1, 50))
    assert paired_bootstrap(scores, scores, n_resamples=200)["p_value"] == 1.0
    assert paired_t_test(scores, scores)["p_value"] == 1.0
    assert paired_t_test(scores + 0.1, scores)["p_value"] == 0.0  # a constant shift, no spread


# -- the suite on a tiny dataset ----------------------------------------------------------------


class SeededScores(Recommender):
    """Random scores per user and item; with ``favourite`` set, that item always scores highest."""

    class Params(RecommenderParams):
        seed: int = Field(0, description="Seed of the random scores.")
        favourite: int = Field(-1, description="Item id that always scores highest; -1 for none.")

    name = "seeded_scores"

    def _fit(self, data: TrainingData, validate: Validator | None, log: Logger) -> None:
        self.scores = np.random.default_rng(self.params.seed).random(data.matrix.shape)
        if self.params.favourite >= 0:
            self.scores[:, self.item_map.index(np.array([self.params.favourite]))] = 10.0

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        return self.scores[user_index]

    def _state(self) -> dict[str, np.ndarray]:
        return {"scores": self.scores}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.scores = state["scores"]


def tiny_tables() -> dict[str, pd.DataFrame]:
    """40 users over 30 items (plus FAVOURITE, in no split); even users are warm (25 items)."""
    rng = np.random.default_rng(7)
    weights = 1.0 / np.arange(1, 31)
    rows = {"train": [], "valid": [], "test": []}
    for user in range(1, 41):
        n_train = 25 if user % 2 == 0 else 6
        items = rng.choice(np.arange(1, 31), size=n_train + 3, replace=False, p=weights / weights.sum())
        for split, chosen in (("train", items[:n_train]), ("valid", items[n_train:-2]), ("test", items[-2:])):
            rows[split] += [(user, int(item), pd.Timestamp("2024-01-01")) for item in chosen]
    tables = {name: pd.DataFrame(r, columns=["user_id", "item_id", "timestamp"]) for name, r in rows.items()}
    users = np.arange(1, 41)
    tables["users"] = pd.DataFrame(
        {
            "user_id": users,
            "age_bucket": np.where(users < 20, "18-24", "25-34"),
            "gender": np.where(users % 3, "M", "F"),
        }
    ).assign(activity_level=lambda u: np.where(u.user_id % 2, "low", "high"))
    item_ids = [*range(1, 31), FAVOURITE]
    counts = tables["train"].item_id.value_counts().reindex(item_ids, fill_value=0)
    tables["items"] = pd.DataFrame(
        {
            "item_id": item_ids,
            "genres": [("Action|Comedy", "Drama", "Comedy|Romance")[i % 3] for i in item_ids],
            "popularity_rank": counts.rank(ascending=False, method="first").astype(int).to_numpy(),
        }
    )
    return tables


@pytest.fixture(scope="module")
def suite() -> SuiteResult:
    tables = tiny_tables()
    catalog = tables["items"].item_id
    models = {
        "popularity": PopularityRecommender().fit(tables["train"], catalog_items=catalog),
        "random": SeededScores(seed=1).fit(tables["train"], catalog_items=catalog),
        "one_first": SeededScores(seed=2, favourite=FAVOURITE).fit(tables["train"], catalog_items=catalog),
    }
    return full_evaluation(models, tables, ks=(5, 10), custom_metrics=[LONG_TAIL, "list_count"], n_resamples=200)


def test_suite_scores_every_model_at_every_cutoff(suite: SuiteResult) -> None:
    summary = suite.summary_table().set_index("model")
    for name in ("ndcg", "recall", "hit", "mrr", "precision", "map"):
        assert {f"{name}@5", f"{name}@10"} <= set(summary.columns)
    for name in ("coverage", "ild", "novelty", "popularity_percentile", "gini", "long_tail_share", "list_count"):
        assert summary[f"{name}@10"].notna().all(), name
    assert (summary["list_count@10"] == 40).all()
    # The accuracy numbers are evaluate()'s: the suite adds metrics, it does not change them.
    tables = tiny_tables()
    model = PopularityRecommender().fit(tables["train"], catalog_items=tables["items"].item_id)
    alone = evaluate(model, tables["test"], k=10, exclude=tables["valid"]).summary
    assert summary.loc["popularity", list(alone)].to_dict() == pytest.approx(alone)


def test_suite_flags_only_the_model_with_one_first_item(suite: SuiteResult) -> None:
    flags = {name: m.first_item for name, m in suite.models.items()}
    assert flags["one_first"].flagged and flags["one_first"].item_id == FAVOURITE and flags["one_first"].share == 1.0
    assert not flags["random"].flagged and not flags["popularity"].flagged


def test_suite_slices_include_custom_per_user_metrics(suite: SuiteResult) -> None:
    assert suite.slice_metrics() == ["ndcg@10", "ild@10", "novelty@10", "long_tail_share@10"]
    slices = suite.slices.set_index(["model", "segment_column", "segment_value", "metric"])
    assert slices.loc[("random", "cold_warm", "warm", "long_tail_share@10"), "n_users"] == 20
    assert not (suite.slices.metric == "list_count@10").any()  # a global metric has no slices
    assert {"cold", "warm"} <= set(suite.slice_table().segment_value)


def test_suite_significance_against_the_best_baseline(suite: SuiteResult) -> None:
    assert suite.baseline == "popularity"
    table = suite.significance.set_index("model")
    assert set(table.index) == {"random", "one_first"}
    assert (table.baseline == "popularity").all() and (table.n_users == 40).all()
    assert (table.ci_low <= table.mean_diff).all() and (table.mean_diff <= table.ci_high).all()


def test_markdown_plots_and_html_report(suite: SuiteResult, tmp_path: Path) -> None:
    tables = suite.markdown_tables()
    assert set(tables) == {"accuracy", "beyond_accuracy", "significance", "slices"}
    assert "map@10" in tables["accuracy"] and "long_tail_share@10" in tables["slices"]
    plots = suite.plots
    assert set(plots) == {"metric_by_model", "metric_by_slice", "recommended_popularity", "score_distributions"}
    assert all(png.startswith(b"\x89PNG") and len(png) < 80_000 for png in plots.values())
    assert all(md.startswith("![") for md in suite.plot_markdown().values())
    assert suite.plots is plots  # drawn once for the metadata and the HTML report

    path = write_html_report(suite, tmp_path / "report" / "evaluation.html")
    text = path.read_text()
    assert all(name in text for name in suite.models)
    assert text.count("data:image/png;base64,") == 4
    assert "one_first puts item 99 first for 100% of users" in text
    assert "<link" not in text and "<script" not in text  # standalone
