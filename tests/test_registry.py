"""Aliases over bundle tags, their append-only history, rollback to any earlier champion, and the
fair champion comparison (the champion's recipe refit on the candidate's rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recs_platform.models import EASERecommender, PopularityRecommender
from recs_platform.registry import CHAMPION, BundleRefused, ModelRegistry, write_bundle


def interactions() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({"user_id": rng.integers(1, 20, 200), "item_id": rng.integers(1, 30, 200)})


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "store", tmp_path / "registry")


def register(registry: ModelRegistry, tmp_path: Path, name: str) -> str:
    train = interactions()
    items = pd.DataFrame({"item_id": range(1, 30), "title": [f"t{i}" for i in range(1, 30)]})
    bundle = write_bundle(tmp_path / name, EASERecommender().fit(train), PopularityRecommender().fit(train), items, {})
    return registry.register(bundle, {"name": name}, {})


def test_aliases_point_at_tags_and_every_move_is_in_the_history(registry, tmp_path):
    first, second, third = (register(registry, tmp_path, name) for name in ("a", "b", "c"))
    registry.promote(first, "gates passed", {"ndcg@10": 0.3})
    registry.set_alias("challenger", second, "shadow first", by="deployment")
    registry.set_alias("challenger-knn", third, "another idea", by="alice")
    assert registry.production().tag == first and registry.production().metrics == {"ndcg@10": 0.3}
    assert set(registry.challengers()) == {"challenger", "challenger-knn"}
    registry.promote(second, "challenger won", by="bob")
    history = registry.history()
    assert [(h.alias, h.tag, h.previous, h.by) for h in history] == [
        (CHAMPION, first, None, "deployment"),
        ("challenger", second, None, "deployment"),
        ("challenger-knn", third, None, "alice"),
        (CHAMPION, second, first, "bob"),
    ]
    registry.remove_alias("challenger", "promoted", by="bob")
    assert registry.history()[-1].tag is None and "challenger" not in registry.aliases()
    assert len(registry.history_path.read_text().splitlines()) == 5  # append-only: one line per move


def test_rollback_goes_to_any_earlier_champion_but_no_other(registry, tmp_path):
    tags = [register(registry, tmp_path, name) for name in ("a", "b", "c")]
    for tag in tags:
        registry.promote(tag, "gates passed")
    assert registry.champion_tags() == [tags[2], tags[1], tags[0]]
    assert registry.rollback().tag == tags[1]  # the previous champion by default
    assert registry.rollback(to=tags[0], by="carol").tag == tags[0]
    assert registry.history()[-1].by == "carol" and "rollback from" in registry.history()[-1].reason
    never = register(registry, tmp_path, "d")
    with pytest.raises(LookupError, match="never champion"):
        registry.rollback(to=never)


def test_aliases_refuse_unknown_tags_names_and_shares(registry, tmp_path):
    tag = register(registry, tmp_path, "a")
    with pytest.raises(Exception, match="nope"):
        registry.set_alias(CHAMPION, "recs-recommender:nope", "typo", by="x")
    with pytest.raises(ValueError, match="neither"):
        registry.set_alias("production", tag, "old name", by="x")
    registry.set_alias("challenger", tag, "try", by="x")
    assert registry.set_shadow_share("challenger", 0.25, by="x").shadow_share == 0.25
    with pytest.raises(ValueError):
        registry.set_shadow_share("challenger", 1.5, by="x")
    with pytest.raises(KeyError):
        registry.set_shadow_share(CHAMPION, 0.5, by="x")
    assert registry.history()[-1].shadow_share == 0.25 and registry.aliases()["challenger"].tag == tag


class StubVerifier:
    """Refuses the tags in ``refused`` and remembers every tag it was asked about."""

    def __init__(self) -> None:
        self.refused: set[str] = set()
        self.asked: list[str] = []

    def __call__(self, path: Path, tag: str) -> str | None:
        assert (path / "bundle.json").exists()  # it is handed the stored bundle, not a copy
        self.asked.append(tag)
        return f"{tag} failed verification: stub" if tag in self.refused else None


def test_an_alias_moves_only_to_a_bundle_the_verifier_accepts(tmp_path):
    verifier = StubVerifier()
    registry = ModelRegistry(tmp_path / "store", tmp_path / "registry", verifier=verifier)
    good, bad = register(registry, tmp_path, "good"), register(registry, tmp_path, "bad")
    verifier.refused.add(bad)
    registry.promote(good, "gates passed")
    with pytest.raises(BundleRefused, match=f"^{bad} failed verification: stub$"):
        registry.promote(bad, "gates passed")
    with pytest.raises(BundleRefused):
        registry.set_alias("challenger", bad, "shadow first", by="alice")
    assert registry.production().tag == good and "challenger" not in registry.aliases()
    assert [entry.tag for entry in registry.history()] == [good]  # refusals are no moves
    assert [(r.alias, r.tag, r.reason, r.by) for r in registry.refusals()] == [
        (CHAMPION, bad, f"{bad} failed verification: stub", "deployment"),
        ("challenger", bad, f"{bad} failed verification: stub", "alice"),
    ]
    registry.set_alias("challenger", good, "shadow first", by="alice")
    verifier.asked.clear()
    registry.set_shadow_share("challenger", 0.5, by="alice")  # the same tag: nothing new to verify
    assert verifier.asked == []


def test_a_rollback_to_a_bundle_that_no_longer_verifies_is_refused(tmp_path):
    verifier = StubVerifier()
    registry = ModelRegistry(tmp_path / "store", tmp_path / "registry", verifier=verifier)
    first, second = register(registry, tmp_path, "a"), register(registry, tmp_path, "b")
    registry.promote(first, "gates passed")
    registry.promote(second, "gates passed")
    verifier.refused.add(first)  # corrupted since it served
    with pytest.raises(BundleRefused, match="failed verification"):
        registry.rollback()
    assert registry.production().tag == second and registry.refusals()[-1].tag == first


# -- the fair champion comparison ---------------------------------------------------------------


def synthetic_log(weeks: int, seed: int = 4) -> pd.DataFrame:
    """Users with stable tastes (two clusters) interacting over ``weeks`` weeks."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(60):
        cluster = np.arange(0, 25) if user % 2 else np.arange(25, 50)
        for item in rng.choice(cluster, 14, replace=False):
            rows.append(
                (user, int(item), pd.Timestamp("2024-01-01") + pd.Timedelta(hours=int(rng.integers(0, 24 * 7 * weeks))))
            )
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def split(log: pd.DataFrame, protocol: str, seed: int = 0) -> dict[str, pd.DataFrame]:
    """train/valid/test as the dbt project splits them: per user 80/10/10 at random, or by time."""
    if protocol == "temporal":
        valid_cut, test_cut = log.timestamp.quantile([0.8, 0.9])
        labels = np.where(log.timestamp < valid_cut, "train", np.where(log.timestamp < test_cut, "valid", "test"))
    else:
        order = log.sample(frac=1.0, random_state=seed).groupby("user_id").cumcount()
        size = log.groupby("user_id").user_id.transform("size")
        position = order.reindex(log.index) / size
        labels = np.where(position < 0.8, "train", np.where(position < 0.9, "valid", "test"))
    return {name: log[labels == name].reset_index(drop=True) for name in ("train", "valid", "test")}


def frozen(log: pd.DataFrame, protocol: str, root: Path):
    from recs_platform.validation.datasets import freeze

    tables = split(log, protocol)
    tables["users"] = pd.DataFrame({"user_id": np.arange(60)})
    tables["items"] = pd.DataFrame({"item_id": np.arange(50)})
    return freeze(tables, root, {"protocol": protocol})


@pytest.mark.parametrize("protocol", ["random_per_user", "temporal"])
def test_the_champion_is_compared_on_the_candidates_rows_not_with_its_own_masks(tmp_path, protocol):
    """Champion trained on week w, candidate on week w+1 with the same recipe: the fair comparison
    finds them equal, while re-scoring the champion's own weights masks test items it trained on."""
    from recs_platform.artifacts import TRAIN_AND_VALID
    from recs_platform.deployment import champion_metrics
    from recs_platform.evaluation.evaluate import evaluate
    from recs_platform.training import train

    registry = ModelRegistry(tmp_path / "store", tmp_path / "registry")
    log = synthetic_log(weeks=2)
    week_w = frozen(log[log.timestamp < pd.Timestamp("2024-01-08")], protocol, tmp_path / "w")
    week_next = frozen(log, protocol, tmp_path / "w1")
    recipe = {"l2": 5.0}
    champion = train("ease", recipe, week_w, tmp_path / "artifacts", trained_on=TRAIN_AND_VALID)
    candidate = train("ease", recipe, week_next, tmp_path / "artifacts", trained_on=TRAIN_AND_VALID)
    bundle = write_bundle(
        tmp_path / "bundle",
        _load(champion),
        PopularityRecommender().fit(week_w.load()["train"]),
        pd.DataFrame({"item_id": np.arange(50), "title": ""}),
        {},
    )
    registry.promote(registry.register(bundle, {"config": champion.metadata["config"]}, {}), "week w")

    tables = week_next.load()
    candidate_test = evaluate(_load(candidate), tables["test"], k=10, exclude=tables["valid"]).summary["ndcg@10"]
    fair = champion_metrics(registry, week_next, "ndcg@10", TRAIN_AND_VALID)
    assert fair.test["ndcg@10"] == pytest.approx(candidate_test)  # same recipe, same rows: a tie
    own_weights = evaluate(_load(champion), tables["test"], k=10, exclude=tables["valid"]).summary["ndcg@10"]
    if protocol == "random_per_user":
        # Week w's training rows reappear in week w+1's test split and are masked for the old champion.
        assert own_weights < candidate_test - 0.02


def _load(artifact):
    from recs_platform.models.base import load_recommender

    return load_recommender(Path(artifact.path))
