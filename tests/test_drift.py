"""Feature drift: PSI known answers, binning edge cases, detection on shifted data, serving features and plots."""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pandas as pd
import pytest

from recs_platform.monitoring import plots
from recs_platform.monitoring.drift import (
    MISSING,
    UNSEEN,
    binned_distributions,
    feature_drift,
    interaction_features,
    js_distance,
    population_stability_index,
    read_serving_log,
    serving_features,
)

N_USERS, N_ITEMS, N_EVENTS = 2000, 3000, 20_000
AGE_BUCKETS = ["<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"]
TWO_BIN_PSI = 0.3 * math.log(0.8 / 0.5) + 0.3 * math.log(0.5 / 0.2)  # shares 50/50 → 80/20


def catalog() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    users = pd.DataFrame(
        {
            "user_id": np.arange(N_USERS),
            "age_bucket": rng.choice(AGE_BUCKETS, N_USERS),
            "gender": rng.choice(["F", "M"], N_USERS),
            "occupation": rng.choice([f"job{i}" for i in range(21)], N_USERS),
            "activity_level": rng.choice(["low", "medium", "high"], N_USERS),
        }
    )
    items = pd.DataFrame(
        {
            "item_id": np.arange(N_ITEMS),
            "release_year": rng.integers(1950, 2025, N_ITEMS).astype(float),
            "popularity_rank": rng.permutation(N_ITEMS) + 1,
        }
    )
    return users, items


def sample(seed: int, users: pd.DataFrame, items: pd.DataFrame, popularity_power: float = 1.0, old_users: float = 1.0):
    """Interactions with Zipf-like item choice; ``old_users`` > 1 over-samples users aged 50 and up."""
    rng = np.random.default_rng(seed)
    user_weight = np.where(users.age_bucket.isin(["50-55", "56+"]), old_users, 1.0)
    item_weight = items.popularity_rank.to_numpy(float) ** -popularity_power
    start = pd.Timestamp("2024-01-01").value // 1000  # microseconds
    return pd.DataFrame(
        {
            "user_id": rng.choice(users.user_id, N_EVENTS, p=user_weight / user_weight.sum()),
            "item_id": rng.choice(items.item_id, N_EVENTS, p=item_weight / item_weight.sum()),
            "timestamp": pd.to_datetime(start + rng.integers(0, 60 * 86_400 * 10**6, N_EVENTS), unit="us"),
        }
    )


@pytest.fixture(scope="module")
def world() -> dict[str, pd.DataFrame]:
    users, items = catalog()
    return {"users": users, "items": items, "reference": interaction_features(sample(1, users, items), users, items)}


def test_psi_known_answers() -> None:
    assert population_stability_index([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    assert population_stability_index([0.5, 0.5], [0.8, 0.2]) == pytest.approx(TWO_BIN_PSI)  # ≈ 0.4159
    assert js_distance([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert js_distance([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)
    # An empty reference bin counts as epsilon, so PSI stays finite but large.
    assert 0.5 < population_stability_index([1.0, 0.0], [0.5, 0.5]) < math.inf


@pytest.mark.parametrize("values", [["a", "b"], [0.0, 1.0]], ids=["categorical", "numeric"])
def test_two_bin_example_through_feature_drift(values) -> None:
    reference = pd.DataFrame({"x": [values[0]] * 50 + [values[1]] * 50})
    current = pd.DataFrame({"x": [values[0]] * 80 + [values[1]] * 20})
    report = feature_drift(reference, current, thresholds=0.4)
    row = report.features.iloc[0]
    assert row.psi == pytest.approx(TWO_BIN_PSI)
    assert report.drifted_features == ["x"] and not report.passed
    assert feature_drift(reference, reference).features.psi.iloc[0] == 0.0


def test_numeric_bins_follow_reference_deciles() -> None:
    reference = pd.Series(np.arange(1000.0))
    shares = binned_distributions(reference, reference)
    assert shares.kind == "numeric"
    assert shares.reference == pytest.approx(np.full(10, 0.1))
    assert shares.labels[0] == "< 99.9" and shares.labels[-1] == "[899.1, 999]"
    beyond = binned_distributions(reference, pd.Series([2000.0, np.nan]))
    assert beyond.labels[-2:] == ["> 999", MISSING]
    assert beyond.current[-2:] == pytest.approx([0.5, 0.5])


def test_constant_reference_column_still_detects_a_shift() -> None:
    reference = pd.DataFrame({"x": [5.0] * 100})
    assert feature_drift(reference, reference).passed
    shifted = feature_drift(reference, pd.DataFrame({"x": [5.0] * 50 + [6.0] * 50}))
    assert shifted.drifted_features == ["x"]
    assert binned_distributions(reference.x, pd.Series([4.0, 5.0, 6.0])).labels == ["< 5", "[5, 5]", "> 5"]


def test_unseen_categories_share_one_bucket() -> None:
    reference = pd.Series(["a", "b", "b", None])
    shares = binned_distributions(reference, pd.Series(["a", "c", "d", "b"]))
    assert shares.labels == ["b", "a", UNSEEN, MISSING]
    assert shares.reference == pytest.approx([0.5, 0.25, 0.0, 0.25])
    assert shares.current == pytest.approx([0.25, 0.25, 0.5, 0.0])
    assert np.isfinite(population_stability_index(shares.reference, shares.current))


def test_timestamps_and_lists_are_not_drift_features() -> None:
    with pytest.raises(ValueError, match="datetime"):
        binned_distributions(pd.Series(pd.to_datetime(["2024-01-01"])), pd.Series(pd.to_datetime(["2024-01-02"])))
    with pytest.raises(ValueError, match="empty"):
        binned_distributions(pd.Series([1.0]), pd.Series([], dtype=float))


def test_resample_of_the_same_distribution_is_quiet(world) -> None:
    current = interaction_features(sample(2, world["users"], world["items"]), world["users"], world["items"])
    report = feature_drift(world["reference"], current)
    assert list(report.features.feature) == [
        "popularity_bucket", "release_year", "activity_level", "age_bucket", "gender", "occupation",
        "hour_of_day", "day_of_week",
    ]  # fmt: skip
    assert report.passed
    assert (report.features.psi < 0.1).all(), report.to_markdown()
    assert (report.features.js < 0.1).all()


def test_popularity_shift_is_detected_and_only_there(world) -> None:
    flatter = sample(3, world["users"], world["items"], popularity_power=0.5)
    report = feature_drift(world["reference"], interaction_features(flatter, world["users"], world["items"]))
    assert report.drifted_features == ["popularity_bucket"], report.to_markdown()


def test_age_shift_is_detected_with_per_feature_thresholds(world) -> None:
    older = sample(4, world["users"], world["items"], old_users=4.0)
    current = interaction_features(older, world["users"], world["items"])
    assert feature_drift(world["reference"], current).drifted_features == ["age_bucket"]
    relaxed = feature_drift(world["reference"], current, ["age_bucket", "gender"], thresholds={"age_bucket": 5.0})
    assert relaxed.passed and list(relaxed.features.threshold) == [5.0, 0.2]
    records = relaxed.to_records()
    assert json.loads(json.dumps(records)) == records and records[0]["drifted"] is False


def serving_log() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": ["r1", "r2", "r3"],
            "served_at": ["2024-01-01T13:05:00+00:00", "2024-01-06T23:59:00+00:00", "2024-01-07T00:00:01.250+00:00"],
            "user_id": [1, 99_999, 2],
            "k": [2, 1, 3],
            "model_version": ["v1"] * 3,
            "source": ["model+fresh_history", "popularity", "model"],
            "item_ids": [[0, 1], [0], []],
            "scores": [[0.9, 0.5], [1.0], []],
            "latency_ms": [3.1, 1.2, 2.0],
        }
    )


def test_serving_features_describe_requesting_users_and_served_items(world) -> None:
    users, items = world["users"], world["items"]
    features = serving_features(serving_log(), users, items)
    assert list(features.columns) == [*world["reference"].columns, "fallback"]
    assert len(features) == 4  # two items, one item, one empty answer
    ranks = items.set_index("item_id").popularity_rank
    assert features.popularity_bucket.iloc[:3].tolist() == [math.floor(math.log2(ranks[i])) for i in (0, 1, 0)]
    assert np.isnan(features.popularity_bucket.iloc[3])
    assert features.age_bucket.iloc[0] == users.age_bucket[1] and features.age_bucket.iloc[3] == users.age_bucket[2]
    assert pd.isna(features.gender.iloc[2])  # user outside the catalog
    assert features.hour_of_day.tolist() == [13, 13, 23, 0]
    assert features.day_of_week.tolist() == [0, 0, 5, 6]  # Monday, Saturday, Sunday
    assert features.fallback.tolist() == [False, False, True, False]
    skew = feature_drift(world["reference"], features)
    assert "fallback" not in set(skew.features.feature) and len(skew.features) == 8


def test_read_serving_log_skips_a_line_still_being_written(tmp_path) -> None:
    records = serving_log().to_dict("records")
    (tmp_path / "2024-01-01.jsonl").write_text(json.dumps(records[0]) + "\n")
    (tmp_path / "2024-01-06.jsonl").write_text(json.dumps(records[1]) + "\n" + json.dumps(records[2])[:20])
    log = read_serving_log(tmp_path)
    assert log.request_id.tolist() == ["r1", "r2"]
    assert log.item_ids.tolist() == [[0, 1], [0]]


def test_plot_is_a_small_inline_png(world) -> None:
    pytest.importorskip("matplotlib")
    current = world["reference"].assign(occupation="newjob")
    markdown = plots.drift_plot_markdown(world["reference"], current, "occupation")
    assert markdown.startswith("![occupation](data:image/png;base64,")
    png = base64.b64decode(markdown.split(",", 1)[1].rstrip(")"))
    assert png.startswith(b"\x89PNG") and len(png) < 60_000


def test_plot_falls_back_to_a_text_table(world, monkeypatch) -> None:
    monkeypatch.setattr(plots, "_matplotlib_available", lambda: False)
    current = world["reference"].assign(occupation="newjob")
    table = plots.drift_plot_markdown(world["reference"], current, "occupation")
    lines = table.splitlines()
    assert lines[0] == "| occupation | reference | current |"
    assert len(lines) == 2 + plots.MAX_BARS  # 21 jobs and the unseen bucket folded into 15 bars
    assert any(line.startswith(f"| {UNSEEN} |") and "100.0% |" in line for line in lines)
    assert lines[-1].startswith("| (other) |")
