"""Sweeps from configuration: grid expansion, YAML loading, selection on validation only."""

import pandas as pd
import pytest

from recs_platform.sweeps import SweepConfig, SweepResult, best, expand_grid, load_sweeps, sweep_table
from recs_platform.training import ModelArtifact


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
    assert [c.config_id for c in first["bpr"]] == [c.config_id for c in second["bpr"]]
    assert first["popularity"] == [SweepConfig("popularity", first["popularity"][0].config_id, {})]
    assert first["bpr"][1].params == {"epochs": 3, "factors": 16}


def test_unknown_keys_are_refused(tmp_path):
    path = tmp_path / "sweeps.yaml"
    path.write_text("bpr:\n  grids: {factors: [8]}\n")
    with pytest.raises(ValueError, match="unknown keys"):
        load_sweeps(path)


def _result(config_id: str, valid_ndcg: float) -> SweepResult:
    artifact = ModelArtifact("bpr", f"/x/{config_id}", "v", "c", {}, True, 1.0)
    return SweepResult(SweepConfig("bpr", config_id, {"id": config_id}), artifact, {"ndcg@10": valid_ndcg})


def test_best_is_chosen_on_validation_and_the_table_lists_every_configuration():
    results = [_result("c0", 0.20), _result("c1", 0.25), _result("c2", 0.22)]
    assert best(results).config.config_id == "c1"
    table = sweep_table(results)
    assert list(table.config_id) == ["c1", "c2", "c0"]
    assert isinstance(table, pd.DataFrame) and "valid_ndcg@10" in table


def test_shipped_sweep_files_load():
    from assets.resources import CONFIG_DIR

    for path in CONFIG_DIR.glob("recommenders*.yaml"):
        sweeps = load_sweeps(path)
        assert "popularity" in sweeps and "bpr" in sweeps, path
