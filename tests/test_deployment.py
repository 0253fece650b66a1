"""Nothing unverified is promoted: a bundle is loaded in a separate process and must answer a known
user, an unknown user and each fresh-history path before any alias moves to it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from test_registry import split, synthetic_log
from test_serving import KNOWN_USER, interactions, items, users

from assets.deployment import deployment
from assets.resources import GateSettings, PromotionSettings, RegistryResource
from recs_platform.artifacts import TRAIN_AND_VALID, ModelArtifact
from recs_platform.deployment import FALLBACK, Candidate, deploy
from recs_platform.evaluation.report import ModelScores
from recs_platform.models import EASERecommender, PopularityRecommender, SegmentPopularityRecommender
from recs_platform.registry import CHAMPION, ModelRegistry, ServingBundle, write_bundle
from recs_platform.serving.answer import Answer, Request
from recs_platform.serving.verify import (
    SmokeRequest,
    check_bundle,
    problem_with,
    smoke_requests,
    verify_in_subprocess,
)
from recs_platform.training import train
from recs_platform.validation.datasets import freeze

# -- the smoke requests, in process --------------------------------------------------------------


def ease_bundle(directory: Path, segment: bool = True) -> Path:
    train_rows = interactions()
    return write_bundle(
        directory,
        EASERecommender(l2=10.0).fit(train_rows),
        PopularityRecommender().fit(train_rows),
        items(),
        {},
        segment=SegmentPopularityRecommender().fit(train_rows, users=users()) if segment else None,
    )


def test_the_smoke_requests_cover_every_path_the_bundle_supports(tmp_path):
    bundle = ServingBundle.load(ease_bundle(tmp_path / "ease"), "ease")
    asked = {(smoke.name, smoke.expected_source) for smoke in smoke_requests(bundle)}
    assert asked == {
        ("known user", "model"),
        ("unknown user", "popularity"),
        ("known user with recent items", "model+fresh_history"),
        ("unknown user with recent items", "model+fresh_history"),
        ("new user with demographics", "segment"),
    }
    train_rows = interactions()
    directory = write_bundle(
        tmp_path / "pop", PopularityRecommender().fit(train_rows), PopularityRecommender().fit(train_rows), items(), {}
    )
    popularity = ServingBundle.load(directory, "pop")  # scores no history, has no segment model
    asked = {(smoke.name, smoke.expected_source) for smoke in smoke_requests(popularity)}
    assert asked == {("known user", "model"), ("unknown user", "popularity"), ("known user with recent items", "model")}
    assert check_bundle(directory, "pop") is None


def test_a_sound_bundle_passes_and_a_diverged_model_fails(tmp_path):
    directory = ease_bundle(tmp_path / "ease")
    assert check_bundle(directory, "ease:good") is None
    diverged = EASERecommender.load(directory / "model")  # training that diverged: NaN weights
    diverged.weights = np.full_like(diverged.weights, np.nan)
    diverged.save(directory / "model")
    # NaN scores are never ranked, so the known user gets an empty list.
    reason = check_bundle(directory, "ease:nan")
    assert reason == "ease:nan failed verification: the known user request returned 0 items for k=5"


@pytest.mark.parametrize(
    ("listed", "scores", "source", "problem"),
    [
        ([3, 4], [0.5, 0.4], "model", None),
        ([3, 4], [0.5, 0.4], "popularity", "came from 'popularity', not 'model'"),
        ([], [], "model", "returned 0 items for k=2"),
        ([3, 4, 5], [0.5, 0.4, 0.3], "model", "returned 3 items for k=2"),
        ([3, 3], [0.5, 0.5], "model", "repeated an item"),
        ([3, 999], [0.5, 0.4], "model", "recommended items missing from the bundle's catalog ([999])"),
        ([1, 4], [0.5, 0.4], "model", "recommended items from the user's own history"),
        ([3, 4], [0.5, float("nan")], "model", "returned NaN scores"),
    ],
)
def test_what_makes_an_answer_unsound(tmp_path, listed, scores, source, problem):
    bundle = ServingBundle.load(ease_bundle(tmp_path / "ease", segment=False), "ease")
    smoke = SmokeRequest("known user", Request(KNOWN_USER, 2), "model")
    assert problem_with(bundle, smoke, Answer(listed, scores, source, "online_store", history=[1, 2])) == problem


def test_an_unloadable_bundle_is_refused_by_the_separate_process(tmp_path):
    directory = ease_bundle(tmp_path / "ease", segment=False)
    (directory / "items.parquet").write_bytes(b"not parquet")
    reason = verify_in_subprocess(directory, "ease:corrupt")
    assert reason.startswith("ease:corrupt failed verification: it could not be loaded (")
    assert "\n" not in reason


# -- the deployment asset: a corrupt bundle never moves an alias ---------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    root = tmp_path_factory.mktemp("deploy")
    tables = split(synthetic_log(weeks=2), "random_per_user")
    tables["users"] = pd.DataFrame({"user_id": np.arange(60)})
    tables["items"] = pd.DataFrame({"item_id": np.arange(50), "title": [f"Item {i}" for i in range(50)]})
    dataset = freeze(tables, root / "data", {"protocol": "random_per_user"})
    artifacts = root / "artifacts"
    ease = train("ease", {"l2": 5.0}, dataset, artifacts, trained_on=TRAIN_AND_VALID)
    other = train("ease", {"l2": 50.0}, dataset, artifacts, trained_on=TRAIN_AND_VALID)  # not the champion's recipe
    return dataset, ease, other, train(FALLBACK, {}, dataset, artifacts, trained_on=TRAIN_AND_VALID)


def candidate(dataset, model: ModelArtifact, fallback: ModelArtifact) -> Candidate:
    """A candidate that passes every gate (a perfect test score), so only verification can refuse it."""

    def scores(artifact: ModelArtifact) -> ModelScores:
        perfect = {"ndcg@10": 1.0 if artifact.is_learned else 0.0}
        return ModelScores(artifact.recommender, artifact.is_learned, perfect, perfect, 10, "", artifact.path)

    return Candidate(dataset.version, scores(model), {FALLBACK: scores(fallback)})


def corrupting_write_bundle(*args, **kwargs) -> Path:
    """``write_bundle``, then the model's arrays are lost (a truncated copy, a bad disk)."""
    directory = write_bundle(*args, **kwargs)
    (directory / "model" / "arrays.npz").write_bytes(b"truncated")
    return directory


@pytest.mark.parametrize("alias", [CHAMPION, "challenger"])
def test_a_corrupt_bundle_is_refused_and_no_alias_moves(trained, tmp_path, monkeypatch, alias):
    dataset, model, other, fallback = trained
    store, registry_dir = tmp_path / "store", tmp_path / "registry"
    registry = ModelRegistry(store, registry_dir, verifier=verify_in_subprocess)
    first = deploy(candidate(dataset, model, fallback), dataset, registry, "ndcg@10", 0.0, 1.0, tmp_path / "a")
    assert first.status == "deployed" and registry.production().tag == first.record.tag
    aliases, history = registry.aliases(), registry.history()

    monkeypatch.setattr("recs_platform.deployment.write_bundle", corrupting_write_bundle)
    with dg.build_asset_context() as context, pytest.raises(dg.Failure) as failure:
        deployment(
            context=context,
            candidate_model=candidate(dataset, other, fallback),
            dataset=dataset,
            gate=GateSettings(min_metric=0.0, champion_tolerance=1.0),
            registry=RegistryResource(store_dir=str(store), registry_dir=str(registry_dir)),
            promotion=PromotionSettings(promote_as=alias),
        )
    refusal = registry.refusals()[-1]
    assert refusal.alias == alias and refusal.tag not in (record.tag for record in aliases.values())
    assert refusal.reason.startswith(f"{refusal.tag} failed verification: it could not be loaded (")
    assert failure.value.metadata["reason"].value == refusal.reason
    assert failure.value.description == f"deployment refused: {refusal.reason}; the {alias} alias did not move"
    assert registry.aliases() == aliases and registry.history() == history
