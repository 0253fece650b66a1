"""Sweeps from configuration: grid expansion, YAML loading, selection on validation only."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recs_platform import training
from recs_platform.artifacts import TRAIN, TRAIN_AND_VALID, DatasetVersion, ModelArtifact
from recs_platform.evaluation.evaluate import evaluate
from recs_platform.models.base import load_recommender
from recs_platform.sweeps import (
    SweepConfig,
    SweepFileError,
    SweepResult,
    best,
    expand_grid,
    load_sweeps,
    refit,
    sweep_table,
    train_and_validate,
)
from recs_platform.training import train
from recs_platform.validation.datasets import freeze


def test_grid_expands_to_the_cartesian_product_on_top_of_fixed_params():
    configs = expand_grid("bpr", {"seed": 1}, {"factors": [8, 16], "learning_rate": [0.1, 0.01, 0.001]})
    assert len(configs) == 6
    assert {c.params["seed"] for c in configs} == {1}
    assert {(c.params["factors"], c.params["learning_rate"]) for c in configs} == {
        (f, lr) for f in (8, 16) for lr in (0.1, 0.01, 0.001)
    }
    assert len({c.config_id for c in configs}) == 6
    assert all(c.config_id.replace("_", "").isalnum() for c in configs)  # usable as Dagster mapping keys


def test_config_ids_are_stable_across_loads(tmp_path):
    path = tmp_path / "sweeps.yaml"
    path.write_text("popularity: {}\nbpr:\n  params: {epochs: 3}\n  grid:\n    factors: [8, 16]\n")
    first, second = load_sweeps(path), load_sweeps(path)
    assert [c.config_id for c in first["bpr"].configs] == [c.config_id for c in second["bpr"].configs]
    assert first["popularity"].configs == [SweepConfig("popularity", first["popularity"].configs[0].config_id, {})]
    assert first["bpr"].configs[1].params == {"epochs": 3, "factors": 16}


def test_unknown_keys_are_refused(tmp_path):
    path = tmp_path / "sweeps.yaml"
    path.write_text("bpr:\n  grids: {factors: [8]}\n")
    with pytest.raises(ValueError, match="unknown keys"):
        load_sweeps(path)


def _result(config_id: str, valid_ndcg: float) -> SweepResult:
    artifact = ModelArtifact("bpr", f"/x/{config_id}", "v", "c", {}, True, 1.0, valid={"ndcg@10": valid_ndcg})
    return SweepResult(SweepConfig("bpr", config_id, {"id": config_id}), artifact)


def test_best_is_chosen_on_validation_and_the_table_lists_every_configuration():
    results = [_result("c0", 0.20), _result("c1", 0.25), _result("c2", 0.22)]
    assert best(results).config.config_id == "c1"
    table = sweep_table(results)
    assert list(table.config_id) == ["c1", "c2", "c0"]
    assert isinstance(table, pd.DataFrame) and "valid_ndcg@10" in table


def test_shipped_sweep_folders_load_one_file_per_recommender():
    from assets.resources import CONFIG_DIR

    dev = load_sweeps(CONFIG_DIR / "recommenders")
    assert {"popularity", "ease", "dlae", "bpr"} <= set(dev)
    assert {path.stem for path in (CONFIG_DIR / "recommenders").glob("*.yaml")} == set(dev)
    assert all(sweep.refit for sweep in dev.values())
    assert {"popularity", "bpr"} <= set(load_sweeps(CONFIG_DIR / "recommenders.ci"))
    full = load_sweeps(CONFIG_DIR / "recommenders", CONFIG_DIR / "recommenders.neural")
    assert set(full) == set(dev) | {"two_tower", "sasrec"}


def test_folder_sweeps_read_refit_and_later_paths_replace_earlier(tmp_path):
    base, override = tmp_path / "base", tmp_path / "override"
    base.mkdir(), override.mkdir()
    (base / "ease.yaml").write_text("grid:\n  l2: [1.0, 2.0]\n")
    (base / "popularity.yaml").write_text("# only a comment\n")
    (override / "ease.yaml").write_text("refit: false\nparams: {l2: 3.0}\n")
    sweeps = load_sweeps(base, override)
    assert sweeps["popularity"].refit and len(sweeps["popularity"].configs) == 1
    assert not sweeps["ease"].refit
    assert [c.params for c in sweeps["ease"].configs] == [{"l2": 3.0}]
    assert len(load_sweeps(base)["ease"].configs) == 2


def test_a_large_dataset_takes_the_large_section(tmp_path):
    path = tmp_path / "sweeps.yaml"
    path.write_text(
        "ease:\n  grid: {l2: [1.0, 2.0]}\n  large:\n    params: {l2: 5.0, memory_gib: 1.0}\npopularity: {}\n"
    )
    sweeps = load_sweeps(path)
    small, large = {"train": 1000, "items": 500}, {"train": 1000, "items": 50_000}
    assert [c.params for c in sweeps["ease"].configs_for(small)] == [{"l2": 1.0}, {"l2": 2.0}]
    assert [c.params for c in sweeps["ease"].configs_for(large)] == [{"l2": 5.0, "memory_gib": 1.0}]
    assert sweeps["ease"].configs_for({"train": 600_000, "items": 500}) == sweeps["ease"].large_configs
    assert sweeps["popularity"].configs_for(large) == sweeps["popularity"].configs  # no large section
    path.write_text("ease:\n  large:\n    grid: {l2: [1.0]}\n    refit: false\n")
    with pytest.raises(SweepFileError, match="large section takes only params and grid"):
        load_sweeps(path)


def test_an_empty_sweep_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"no <recommender>\.yaml"):
        load_sweeps(tmp_path)


# -- refit on train+valid --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blocks(tmp_path_factory) -> DatasetVersion:
    """40 users in two taste blocks of 10 items; per user one validation and one test item."""
    rng = np.random.default_rng(5)
    rows = {"train": [], "valid": [], "test": []}
    for user in range(40):
        items = rng.permutation(np.arange(10) + (0 if user < 20 else 100))
        rows["test"].append((user, items[0]))
        rows["valid"].append((user, items[1]))
        rows["train"] += [(user, item) for item in items[2:]]
    tables = {
        split: pd.DataFrame(pairs, columns=["user_id", "item_id"]).assign(timestamp=pd.Timestamp("2024-01-01"))
        for split, pairs in rows.items()
    }
    tables["users"] = pd.DataFrame({"user_id": np.arange(40)})
    tables["items"] = pd.DataFrame({"item_id": np.r_[np.arange(10), np.arange(100, 110)]})
    return freeze(tables, tmp_path_factory.mktemp("datasets"), {"source": "test"})


def pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(frame.user_id, frame.item_id, strict=True))


def test_training_on_train_scores_validation(blocks, tmp_path):
    artifact = train("ease", {"l2": 1.0}, blocks, tmp_path)
    assert artifact.trained_on == TRAIN and artifact.metadata["trained_on"] == TRAIN
    assert artifact.valid["ndcg@10"] > 0.3  # the block structure is learnable
    seen = load_recommender(Path(artifact.path)).recommend(range(40), k=20, exclude_seen=False)
    assert pairs(blocks.load()["valid"]) <= pairs(seen)  # validation items were not masked as seen


def test_refit_trains_the_chosen_configuration_on_train_and_valid(blocks, tmp_path):
    [chosen] = train_and_validate([SweepConfig("ease", "c0", {"l2": 1.0})], blocks, tmp_path)
    final = refit(chosen, blocks, tmp_path)
    assert final.trained_on == TRAIN_AND_VALID and final.metadata["trained_on"] == TRAIN_AND_VALID
    assert final.valid == chosen.valid  # the validation metrics it was selected on
    assert Path(final.path) != Path(chosen.artifact.path) and Path(chosen.artifact.path).exists()
    model, tables = load_recommender(Path(final.path)), blocks.load()
    recs = model.recommend(range(40), k=20)  # seen items are masked: train and validation now
    assert not pairs(recs) & (pairs(tables["train"]) | pairs(tables["valid"]))
    assert pairs(tables["test"]) <= pairs(recs)


def test_refit_of_an_early_stopped_model_trains_for_its_best_epoch_count(blocks, tmp_path):
    params = {"factors": 4, "epochs": 12, "eval_every": 1, "patience": 2, "seed": 1, "learning_rate": 0.05}
    [chosen] = train_and_validate([SweepConfig("bpr", "c0", params)], blocks, tmp_path)
    best_epoch = chosen.artifact.metadata["best_epoch"]
    assert 1 <= best_epoch <= chosen.artifact.metadata["epochs_trained"]
    final = refit(chosen, blocks, tmp_path)
    assert final.params["epochs"] == best_epoch
    assert final.metadata["epochs_trained"] == best_epoch  # no validation, so no early stop
    assert "best_epoch" not in final.metadata


def test_validation_scores_a_seeded_sample_of_users_past_the_cap(blocks, tmp_path, monkeypatch):
    monkeypatch.setattr(training, "MAX_VALIDATION_USERS", 15)
    shared = training.SharedWork.load(blocks)
    assert len(shared.valid.users) == 15 and set(shared.valid.users) < set(range(40))
    assert shared.valid.users.tolist() == training.SharedWork.load(blocks).valid.users.tolist()  # seeded
    assert pairs(shared.valid.frame) <= pairs(blocks.load()["valid"])
    assert shared.validation_note == "validation on 15 users (a seeded sample of 40)"
    artifact = train("ease", {"l2": 1.0}, blocks, tmp_path, shared=shared)
    assert artifact.metadata["validation_users"] == 15
    model = load_recommender(Path(artifact.path))
    assert artifact.valid == evaluate(model, shared.valid, k=10).summary  # scored on the sample only
    assert artifact.valid != evaluate(model, blocks.load()["valid"], k=10).summary


def test_unknown_split_choice_is_refused(blocks, tmp_path):
    with pytest.raises(ValueError, match="trained_on"):
        train("popularity", {}, blocks, tmp_path, trained_on="test")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("grid: {factorz: [8]}", "bpr.yaml: recommender bpr: factorz: unknown parameter"),
        ("params: {factors: 8.5}", "bpr.yaml: recommender bpr: factors: Input should be a valid integer"),
        ("params: {learning_rate: '1e-3'}", "bpr.yaml: recommender bpr: learning_rate: Input should be a valid number"),
        ("params: {epochs: true}", "bpr.yaml: recommender bpr: epochs: Input should be a valid integer"),
        ("params: {factors: 0}", "bpr.yaml: recommender bpr: factors: Input should be greater than or equal to 1"),
    ],
)
def test_a_bad_sweep_file_fails_at_load_naming_file_recommender_and_field(tmp_path, content, message):
    (tmp_path / "bpr.yaml").write_text(content)
    with pytest.raises(SweepFileError) as raised:
        load_sweeps(tmp_path)
    assert message in str(raised.value)


def test_a_sweep_file_for_an_unknown_recommender_is_refused(tmp_path):
    (tmp_path / "bprr.yaml").write_text("{}")
    with pytest.raises(SweepFileError, match=r"bprr\.yaml: unknown recommender 'bprr'"):
        load_sweeps(tmp_path)


def test_a_bad_sweep_file_fails_definitions_load(tmp_path, monkeypatch):
    from assets.definitions import build_definitions

    (tmp_path / "ease.yaml").write_text("grid: {l2: [100, fast]}")
    monkeypatch.setenv("RECS_SWEEPS", str(tmp_path))
    with pytest.raises(SweepFileError, match=r"ease\.yaml: recommender ease: l2: Input should be a valid number"):
        build_definitions("ci", tmp_path)


def test_every_recommender_documents_each_parameter():
    from recs_platform.models import RECOMMENDERS

    for name, cls in RECOMMENDERS.items():
        for field, info in cls.Params.model_fields.items():
            assert info.description, f"{name}.{field} has no description"
