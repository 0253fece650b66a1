"""Drift against the production model's training data: newest data and served traffic."""

import json

import numpy as np
import pandas as pd
import pytest

from recs_platform.models import PopularityRecommender
from recs_platform.monitoring.production import drift_against_production, production_training_data
from recs_platform.registry import ModelRegistry, write_bundle
from recs_platform.validation.datasets import freeze

N_USERS, N_ITEMS = 200, 50


def _tables(seed: int, young_share: float) -> dict[str, pd.DataFrame]:
    """A small dataset whose interactions come from young users with probability ``young_share``."""
    rng = np.random.default_rng(seed)
    users = pd.DataFrame(
        {
            "user_id": np.arange(N_USERS),
            "age_bucket": np.where(np.arange(N_USERS) < N_USERS // 2, "18-24", "45-54"),
            "activity_level": "medium",
            "gender": "F",
            "occupation": "other",
        }
    )
    items = pd.DataFrame(
        {
            "item_id": np.arange(N_ITEMS),
            "title": "t",
            "popularity_rank": np.arange(1, N_ITEMS + 1),
            "release_year": 1995,
        }
    )
    young = rng.random(4000) < young_share
    user = np.where(young, rng.integers(0, N_USERS // 2, 4000), rng.integers(N_USERS // 2, N_USERS, 4000))
    pairs = pd.DataFrame(
        {
            "user_id": user,
            "item_id": rng.integers(0, N_ITEMS, 4000),
            "timestamp": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 6 * 86400, 4000), unit="s"),
        }
    ).drop_duplicates(["user_id", "item_id"])
    split = rng.random(len(pairs))
    return {
        "train": pairs[split < 0.8],
        "valid": pairs[(split >= 0.8) & (split < 0.9)],
        "test": pairs[split >= 0.9],
        "users": users,
        "items": items,
    }


def promote_bundle(home, registry: ModelRegistry, reference, metadata: dict) -> None:
    """Register a popularity bundle of ``reference`` with ``metadata`` and make it production."""
    model = PopularityRecommender().fit(reference.load()["train"])
    bundle = write_bundle(home / "bundle", model, model, reference.load()["items"], {})
    registry.promote(registry.register(bundle, {"data_version": reference.version, **metadata}, {}), "test")


@pytest.fixture
def platform(tmp_path):
    """A registry whose production bundle was trained on a balanced dataset."""
    reference = freeze(_tables(seed=1, young_share=0.5), tmp_path / "datasets", {})
    registry = ModelRegistry(tmp_path / "store", tmp_path / "pointer.json")
    promote_bundle(tmp_path, registry, reference, {})
    return tmp_path, registry, reference


def test_production_training_data_is_what_the_served_model_was_trained_on(platform):
    home, registry, reference = platform
    production = production_training_data(registry, home / "datasets")
    assert production.dataset.version == reference.version
    assert production.trained_on == "train"  # the bundle's metadata does not say: train alone
    promote_bundle(home, registry, reference, {"trained_on": "train+valid"})
    assert production_training_data(registry, home / "datasets").trained_on == "train+valid"


def test_drift_reference_is_every_row_the_served_model_learned_from(platform):
    home, registry, reference = platform
    tables = reference.load()
    before = drift_against_production(reference, registry, home / "datasets", home / "logs", 0.2, newest_days=30)
    assert len(before[0].reference) == len(tables["train"])
    promote_bundle(home, registry, reference, {"trained_on": "train+valid"})
    after = drift_against_production(reference, registry, home / "datasets", home / "logs", 0.2, newest_days=30)
    assert len(after[0].reference) == len(tables["train"]) + len(tables["valid"])


def test_newest_data_drift_fires_on_a_shift_and_stays_quiet_on_a_resample(platform):
    home, registry, _ = platform
    same = freeze(_tables(seed=2, young_share=0.5), home / "datasets", {})
    shifted = freeze(_tables(seed=3, young_share=0.95), home / "datasets", {})
    quiet = drift_against_production(same, registry, home / "datasets", home / "logs", 0.2, newest_days=30)
    loud = drift_against_production(shifted, registry, home / "datasets", home / "logs", 0.2, newest_days=30)
    assert [c.name for c in quiet] == ["newest_data"] and quiet[0].report.passed
    assert loud[0].report.drifted_features == ["age_bucket"]


def test_serving_logs_are_compared_once_they_exist(platform):
    home, registry, reference = platform
    logs = home / "logs"
    logs.mkdir()
    lines = [
        {
            "served_at": "2024-01-08T10:00:00+00:00",
            "user_id": u,
            "k": 2,
            "model_version": "m",
            "source": "model",
            "item_ids": [1, 2],
            "scores": [2.0, 1.0],
            "latency_ms": 3.0,
            "request_id": str(u),
        }
        for u in range(N_USERS // 2)  # only young users are served: skewed against training
    ]
    (logs / "2024-01-08.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    comparisons = drift_against_production(reference, registry, home / "datasets", logs, 0.2, newest_days=30)
    serving = {c.name: c for c in comparisons}["serving"]
    assert "age_bucket" in serving.report.drifted_features
