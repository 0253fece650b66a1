"""Two-tower and SASRec: the recommender contract, cold-start and next-item known answers, and
the leave-one-out protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers_recommenders import RecommenderContract

from recs_platform.evaluation.sequential import evaluate_next_item, leave_one_out_split
from recs_platform.models import RECOMMENDERS, PopularityRecommender, SASRecRecommender, TwoTowerRecommender
from recs_platform.models.base import RECOMMENDATION_COLUMNS, load_recommender
from recs_platform.training import compare_next_item


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny models: with a shared CPU, two intra-op threads make them several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Tiny networks and few epochs: the contract only needs a fitted, deterministic model.
FAST_TWO_TOWER = {"embedding_dim": 8, "hidden": 16, "factors": 8, "epochs": 3, "batch_size": 32}
FAST_SASREC = {"max_len": 8, "hidden": 16, "blocks": 1, "epochs": 3, "batch_size": 16}


class TestTwoTower(RecommenderContract):
    def make_recommender(self, **params) -> TwoTowerRecommender:
        return TwoTowerRecommender(**{**FAST_TWO_TOWER, **params})


class TestSASRec(RecommenderContract):
    def make_recommender(self, **params) -> SASRecRecommender:
        return SASRecRecommender(**{**FAST_SASREC, **params})


def test_both_are_registered() -> None:
    assert RECOMMENDERS["two_tower"] is TwoTowerRecommender
    assert RECOMMENDERS["sasrec"] is SASRecRecommender


# -- two-tower cold start ------------------------------------------------------------------------

COLD_ITEMS = [50, 150]  # never interacted with: a Drama item (like cluster X) and a Comedy one


def segment_dataset(seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Women watch cluster X (items 0..9, Drama), men cluster Y (100..109, Comedy); 6 items each."""
    rng = np.random.default_rng(seed)
    users = pd.DataFrame(
        {
            "user_id": np.arange(40),
            "gender": ["F" if u < 20 else "M" for u in range(40)],
            "age_bucket": rng.choice(["18-24", "25-34"], size=40),
            "occupation": rng.choice(["writer", "other"], size=40),
        }
    )
    rows = [
        (user, int(item))
        for user in range(40)
        for item in rng.choice(np.arange(10) + (0 if user < 20 else 100), size=6, replace=False)
    ]
    train = pd.DataFrame(rows, columns=["user_id", "item_id"])
    item_ids = [*range(10), *range(100, 110), *COLD_ITEMS]
    items = pd.DataFrame(
        {
            "item_id": item_ids,
            "genres_list": [["Drama"] if i < 100 else ["Comedy"] for i in item_ids],
            "release_year": [1995.0] * len(item_ids),
        }
    )
    return train, users, items


@pytest.fixture(scope="module")
def segments_model() -> TwoTowerRecommender:
    train, users, items = segment_dataset()
    params = {"embedding_dim": 8, "hidden": 32, "factors": 16, "epochs": 20, "batch_size": 64, "learning_rate": 0.01}
    return TwoTowerRecommender(**params, seed=1).fit(train, catalog_items=items.item_id, users=users, items=items)


def test_two_tower_recommends_by_segment_for_a_user_it_never_saw(segments_model: TwoTowerRecommender) -> None:
    model = segments_model
    new_users = pd.DataFrame(
        {
            "user_id": [900, 901],
            "gender": ["F", "M"],
            "age_bucket": ["25-34", "18-24"],
            "occupation": ["writer", "other"],
        }
    )
    assert not model.known_users([900, 901]).any()
    recs = model.recommend_for_features(new_users, k=5)
    assert list(recs.columns) == RECOMMENDATION_COLUMNS
    in_x = recs.item_id < 100
    assert in_x[recs.user_id == 900].mean() >= 0.8
    assert (~in_x[recs.user_id == 901]).mean() >= 0.8
    # Excluded ids (unknown ones ignored) never appear; k beyond the catalog is capped.
    top = recs[recs.user_id == 900].item_id.iloc[0]
    again = model.recommend_for_features(new_users.head(1), k=100, exclude_items=[top, 12_345])
    assert top not in set(again.item_id) and len(again) == len(model.item_map) - 1


def test_two_tower_scores_items_absent_from_training_by_their_features(segments_model: TwoTowerRecommender) -> None:
    recs = segments_model.recommend(np.arange(20), k=len(segments_model.item_map))
    rank = recs.pivot(index="user_id", columns="item_id", values="rank")
    # The cold Drama item ranks above the cold Comedy one for (nearly) every woman.
    assert (rank[50] < rank[150]).mean() >= 0.9


def test_two_tower_feature_vocabularies_survive_save_and_load(
    segments_model: TwoTowerRecommender, tmp_path: Path
) -> None:
    model = segments_model
    loaded = load_recommender(model.save(tmp_path / "model"))
    # An unseen category ("doctor") and a missing column fall back to the unknown slot.
    rows = pd.DataFrame({"user_id": [1, 2], "gender": ["F", "M"], "occupation": ["writer", "doctor"]})
    pd.testing.assert_frame_equal(loaded.recommend_for_features(rows, k=4), model.recommend_for_features(rows, k=4))
    with np.load(tmp_path / "model" / "arrays.npz", allow_pickle=False) as arrays:
        assert arrays["state_vocab.gender"].tolist() == ["F", "M"]


# -- SASRec next item ----------------------------------------------------------------------------


def successor_sequences(n_users: int = 60, n_items: int = 20, seed: int = 4) -> pd.DataFrame:
    """Each user watches a run of consecutive items: item i is always followed by item i + 1
    (modulo ``n_items``, so every transition occurs in training)."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        length = int(rng.integers(4, 9))
        start = int(rng.integers(0, n_items))
        rows += [(user, (start + step) % n_items, step) for step in range(length + 1)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "step"])
    frame["timestamp"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(frame.pop("step"), unit="D")
    return frame.sample(frac=1.0, random_state=0)  # time order must come from the timestamps


@pytest.fixture(scope="module")
def successor_split() -> dict[str, pd.DataFrame]:
    return leave_one_out_split(successor_sequences())


@pytest.fixture(scope="module")
def successor_model(successor_split: dict[str, pd.DataFrame]) -> SASRecRecommender:
    params = {"max_len": 10, "hidden": 32, "blocks": 1, "epochs": 30, "batch_size": 32, "learning_rate": 0.01}
    return SASRecRecommender(**params, seed=1).fit(successor_split["train"], catalog_items=range(20))


def next_items(model: SASRecRecommender, frame: pd.DataFrame) -> pd.Series:
    return model.recommend(frame.user_id, k=1).set_index("user_id").item_id


def test_sasrec_learns_the_successor_rule(
    successor_model: SASRecRecommender, successor_split: dict[str, pd.DataFrame]
) -> None:
    valid, test = (successor_split[name].set_index("user_id").item_id for name in ("valid", "test"))
    assert (next_items(successor_model, valid.reset_index()) == valid).mean() >= 0.8
    # Shown the validation step, the model moves on to the item after it without retraining,
    # and masks the new history like training items.
    moved = successor_model.with_history(successor_split["valid"])
    assert (next_items(moved, test.reset_index()) == test).mean() >= 0.8
    assert moved.seen.sum() == successor_model.seen.sum() + len(valid)
    assert (next_items(successor_model, valid.reset_index()) == valid).mean() >= 0.8  # the original is unchanged


def test_next_item_evaluation_favours_the_sequential_model(
    successor_model: SASRecRecommender, successor_split: dict[str, pd.DataFrame]
) -> None:
    popularity = PopularityRecommender().fit(successor_split["train"], catalog_items=range(20))
    result = evaluate_next_item(successor_model, successor_split)
    assert set(result.summary) == {"ndcg@10", "hit@10", "mrr@10"}
    assert result.n_users == successor_split["test"].user_id.nunique()
    assert result.summary["hit@10"] >= 0.9
    assert result.summary["ndcg@10"] > evaluate_next_item(popularity, successor_split).summary["ndcg@10"]


# -- leave-one-out split -------------------------------------------------------------------------


def test_leave_one_out_takes_the_last_two_items_per_user() -> None:
    at = pd.Timestamp("2024-01-01")
    interactions = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 1, 2, 2, 2, 3, 3, 1],
            "item_id": [10, 11, 12, 13, 20, 21, 22, 30, 31, 10],
            # User 2's last two items share a timestamp: the larger item id counts as later.
            "timestamp": [at + pd.Timedelta(days=d) for d in (3, 1, 4, 2, 1, 5, 5, 1, 2, 9)],
        }
    )
    split = leave_one_out_split(interactions)
    pairs = {name: sorted(zip(frame.user_id, frame.item_id, strict=True)) for name, frame in split.items()}
    # User 1's repeat of item 10 keeps its first time; user 3 has too few items to hold out.
    assert pairs["test"] == [(1, 12), (2, 22)]
    assert pairs["valid"] == [(1, 10), (2, 21)]
    assert pairs["train"] == [(1, 11), (1, 13), (2, 20), (3, 30), (3, 31)]
    assert list(split["train"].columns) == ["user_id", "item_id", "timestamp"]


def test_leave_one_out_ignores_row_order() -> None:
    interactions = successor_sequences()
    a = leave_one_out_split(interactions)
    b = leave_one_out_split(interactions.sample(frac=1.0, random_state=5))
    for name in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(a[name], b[name])
    assert len(a["test"]) == len(a["valid"]) == interactions.user_id.nunique()
    assert sum(map(len, a.values())) == len(interactions)


# -- next-item evaluation asset ------------------------------------------------------------------


def test_next_item_evaluation_asset_compares_sasrec_with_its_peers(tmp_path: Path) -> None:
    import dagster as dg

    from assets.evaluation import next_item_evaluation, over_models
    from assets.resources import GateSettings
    from recs_platform.artifacts import ModelArtifact
    from recs_platform.validation.datasets import freeze

    interactions = successor_sequences()
    # How the dataset was split does not matter: the asset re-splits all of it leave-one-out.
    thirds = np.arange(len(interactions)) % 3
    tables = {name: interactions[thirds == i] for i, name in enumerate(("train", "valid", "test"))}
    tables["users"] = pd.DataFrame({"user_id": np.sort(interactions.user_id.unique())})
    tables["items"] = pd.DataFrame({"item_id": np.arange(20)})
    dataset = freeze(tables, tmp_path, {"source": "test"})
    params = {"max_len": 10, "hidden": 32, "blocks": 1, "epochs": 30, "batch_size": 32, "learning_rate": 0.01}
    # The asset reads only which recommender was chosen with which parameters, and refits it.
    chosen = {
        f"{name}_model": ModelArtifact(name, "unused", dataset.version, "c", p, True, 0.0)
        for name, p in (("sasrec", {**params, "seed": 1}), ("popularity", {}))
    }
    asset = over_models(next_item_evaluation, [dg.AssetKey(key) for key in chosen])
    result = asset(dg.build_asset_context(), dataset=dataset, gate=GateSettings(), **chosen)
    metadata = result.metadata
    assert "| sasrec" in metadata["next_item_metrics"].value
    assert metadata["sasrec_next_item_ndcg@10"] > 0.6
    assert metadata["sasrec_next_item_ndcg@10"] > metadata["popularity_next_item_ndcg@10"]


def test_compare_next_item_matches_evaluating_each_model_by_hand(successor_split) -> None:
    interactions = successor_sequences()
    tables = {"train": interactions, "valid": interactions.iloc[:0], "test": interactions.iloc[:0]}
    tables |= {"users": pd.DataFrame({"user_id": []}), "items": pd.DataFrame({"item_id": np.arange(20)})}
    table = compare_next_item(tables, {"popularity": {}}).set_index("recommender")
    popularity = PopularityRecommender().fit(successor_split["train"], catalog_items=range(20))
    expected = evaluate_next_item(popularity, successor_split).summary
    assert table.loc["popularity", ["ndcg@10", "hit@10", "mrr@10"]].to_dict() == pytest.approx(expected)
