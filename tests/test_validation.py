"""Dataset validation (pandera + cross-table checks) and content-versioned freezing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from recs_platform.data.contract import load_contract
from recs_platform.validation.datasets import MANIFEST, TABLES, DatasetVersion, freeze
from recs_platform.validation.schemas import ValidationFailure, validate_dataset

MOVIELENS = load_contract("movielens")

TEMPORAL = {"split_protocol": "temporal", "valid_cutoff": "2024-02-01", "test_cutoff": "2024-03-01"}
RANDOM = {"split_protocol": "random"}


def interactions(rows: list[tuple[int, int, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame.timestamp, format="ISO8601")
    return frame.astype({"user_id": "int64", "item_id": "int64"})


def dataset() -> dict[str, pd.DataFrame]:
    """Three users, three items; train < 2024-02-01 <= valid < 2024-03-01 <= test."""
    users = pd.DataFrame(
        {
            "user_id": [1, 2, 3],
            "n_interactions": [3, 2, 2],
            "days_since_last_interaction": [1.0, 5.0, None],
            "age": [25.0, None, 41.0],
            "age_bucket": ["25-34", None, "35-44"],
            "gender": ["F", "M", None],
            "occupation": ["writer", "student", "other"],
            "zip_code": ["01234", None, "99999"],
            "activity_level": ["high", "medium", "low"],
        }
    )
    items = pd.DataFrame(
        {
            "item_id": [10, 20, 30],
            "title": ["A", "B", None],
            "genres": ["Drama", "Comedy|Drama", None],
            "genres_list": [["Drama"], ["Comedy", "Drama"], []],
            "release_date": pd.to_datetime(["1995-01-01", "2001-06-01", None]),
            "release_year": [1995.0, 2001.0, None],
            "item_age_days": [100.0, 50.0, None],
            "n_interactions": [3, 2, 2],
            "popularity_rank": [1, 2, 3],
        }
    )
    return {
        "users": users,
        "items": items,
        "train": interactions([(1, 10, "2024-01-01"), (2, 10, "2024-01-05"), (3, 20, "2024-01-31 23:59")]),
        "valid": interactions([(1, 20, "2024-02-01"), (2, 30, "2024-02-15")]),
        "test": interactions([(1, 30, "2024-03-01"), (3, 10, "2024-03-02")]),
    }


def failures(tables: dict[str, pd.DataFrame], cutoffs: dict) -> pd.DataFrame:
    with pytest.raises(ValidationFailure) as caught:
        validate_dataset(tables, cutoffs, MOVIELENS)
    cases = caught.value.failure_cases
    assert f"{len(cases)} failure cases" in str(caught.value)
    return cases


def checks_of(cases: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(cases.table, cases.check, strict=True))


# -- validate_dataset ----------------------------------------------------------------------------


@pytest.mark.parametrize("cutoffs", [TEMPORAL, RANDOM], ids=["temporal", "random"])
def test_consistent_dataset_passes(cutoffs) -> None:
    validated = validate_dataset(dataset(), cutoffs, MOVIELENS)
    assert set(validated) == {"train", "valid", "test", "users", "items", "impressions"}
    assert len(validated["train"]) == 3
    # Note: the schema declares datetime64[us] with coerce=True, but pandera 0.35 returns
    # datetime64[ns] (even for [us] or [s] input), so only the values are checked here.
    assert pd.api.types.is_datetime64_dtype(validated["test"].timestamp)
    pd.testing.assert_series_equal(validated["test"].timestamp, dataset()["test"].timestamp, check_dtype=False)


def test_an_empty_train_split_says_no_events_arrived() -> None:
    tables = dataset()
    tables["train"] = tables["train"].head(0)
    with pytest.raises(ValidationFailure, match=r"the train split is empty.*landing zone empty") as caught:
        validate_dataset(tables, RANDOM, MOVIELENS)
    assert checks_of(caught.value.failure_cases) == {("train", "not empty")}


def test_extra_columns_are_filtered() -> None:
    tables = dataset()
    tables["train"] = tables["train"].assign(rating=5)
    assert list(validate_dataset(tables, TEMPORAL, MOVIELENS)["train"].columns) == ["user_id", "item_id", "timestamp"]


def test_user_outside_catalog() -> None:
    tables = dataset()
    tables["train"] = pd.concat([tables["train"], interactions([(99, 10, "2024-01-02")])], ignore_index=True)
    cases = failures(tables, TEMPORAL)
    assert checks_of(cases) == {("train", "user_id not in catalog")}
    assert cases.column.tolist() == ["user_id"]
    assert cases.failure_case.tolist() == [99]
    assert cases["index"].tolist() == [3]


def test_item_outside_catalog() -> None:
    tables = dataset()
    tables["test"] = pd.concat([tables["test"], interactions([(2, 77, "2024-03-05")])], ignore_index=True)
    assert checks_of(failures(tables, TEMPORAL)) == {("test", "item_id not in catalog")}


def test_duplicate_pair_within_a_split() -> None:
    tables = dataset()
    tables["valid"] = pd.concat([tables["valid"], interactions([(1, 20, "2024-02-10")])], ignore_index=True)
    cases = failures(tables, TEMPORAL)
    assert ("valid", "multiple_fields_uniqueness") in checks_of(cases)
    duplicates = cases[cases.check == "multiple_fields_uniqueness"]
    assert set(duplicates["index"]) == {0, 2}
    assert set(duplicates.table) == {"valid"}


def test_duplicate_within_a_split_is_not_reported_as_a_cross_split_overlap() -> None:
    tables = dataset()
    tables["valid"] = pd.concat([tables["valid"], interactions([(1, 20, "2024-02-10")])], ignore_index=True)
    assert ("valid", "pair in exactly one split") not in checks_of(failures(tables, TEMPORAL))


def test_same_pair_in_two_splits() -> None:
    tables = dataset()
    tables["test"] = pd.concat([tables["test"], interactions([(1, 10, "2024-03-03")])], ignore_index=True)
    cases = failures(tables, TEMPORAL)
    assert checks_of(cases) == {("train", "pair in exactly one split"), ("test", "pair in exactly one split")}
    assert set(cases.failure_case) == {"1,10"}
    assert set(cases.column) == {"user_id,item_id"}


def test_same_pair_in_two_splits_under_random_protocol() -> None:
    tables = dataset()
    tables["valid"] = pd.concat([tables["valid"], interactions([(2, 10, "2024-02-03")])], ignore_index=True)
    assert checks_of(failures(tables, RANDOM)) == {
        ("train", "pair in exactly one split"),
        ("valid", "pair in exactly one split"),
    }


def test_temporal_test_interaction_before_test_cutoff() -> None:
    tables = dataset()
    tables["test"] = pd.concat([tables["test"], interactions([(2, 20, "2024-02-28 23:59")])], ignore_index=True)
    cases = failures(tables, TEMPORAL)
    assert len(cases) == 1
    case = cases.iloc[0]
    assert case.table == "test" and case.column == "timestamp"
    assert case.check.startswith("test interaction earlier than its cutoff 2024-03-01")
    assert pd.Timestamp(case.failure_case) == pd.Timestamp("2024-02-28 23:59")
    # The random protocol has no cutoffs, so the same tables pass.
    validate_dataset(tables, RANDOM, MOVIELENS)


def test_temporal_train_and_valid_at_or_after_the_next_cutoff() -> None:
    tables = dataset()
    tables["train"] = pd.concat([tables["train"], interactions([(2, 20, "2024-02-01")])], ignore_index=True)
    tables["valid"] = pd.concat([tables["valid"], interactions([(3, 30, "2024-03-01")])], ignore_index=True)
    cases = failures(tables, TEMPORAL)
    assert {(t, c.split(" 20")[0]) for t, c in checks_of(cases)} == {
        ("train", "train interaction at or after the next cutoff"),
        ("valid", "valid interaction at or after the next cutoff"),
    }


def test_feature_table_failures_name_their_table() -> None:
    tables = dataset()
    tables["users"].loc[0, "activity_level"] = "extreme"
    tables["items"].loc[1, "popularity_rank"] = 1  # duplicated rank
    cases = failures(tables, TEMPORAL)
    assert set(cases.table) == {"users", "items"}
    assert set(cases[cases.table == "users"].column) == {"activity_level"}
    assert set(cases[cases.table == "items"].column) == {"popularity_rank"}


def test_all_failures_are_collected_at_once() -> None:
    tables = dataset()
    tables["train"] = pd.concat([tables["train"], interactions([(99, 10, "2024-01-02")])], ignore_index=True)
    tables["test"] = pd.concat([tables["test"], interactions([(1, 20, "2024-01-02")])], ignore_index=True)
    tables_checks = checks_of(failures(tables, TEMPORAL))
    assert ("train", "user_id not in catalog") in tables_checks
    assert ("test", "pair in exactly one split") in tables_checks
    assert any(t == "test" and c.startswith("test interaction earlier") for t, c in tables_checks)


# -- freeze ----------------------------------------------------------------------------------------


def test_freeze_writes_versioned_parquet_and_manifest(tmp_path: Path) -> None:
    impressions = {"user_id": [1], "item_id": [10], "served_at": [pd.Timestamp("2024-01-01")], "position": [1]}
    tables = {**dataset(), "impressions": pd.DataFrame({**impressions, "consumed": [True]})}
    version = freeze(tables, tmp_path, {"split_protocol": "temporal", "source": "test"})
    assert isinstance(version, DatasetVersion)
    target = Path(version.path)
    assert target == tmp_path / version.version
    assert sorted(p.name for p in target.iterdir()) == sorted([MANIFEST, *(f"{t}.parquet" for t in TABLES)])
    assert not list(tmp_path.glob(".*partial"))
    manifest = version.manifest()
    assert manifest == json.loads((target / MANIFEST).read_text())
    assert manifest["version"] == version.version
    assert manifest["rows"] == {name: len(tables[name]) for name in TABLES}
    assert manifest["split_protocol"] == "temporal" and manifest["source"] == "test"
    loaded = version.load()
    for name in TABLES:
        pd.testing.assert_frame_equal(loaded[name], tables[name], check_dtype=False)


def test_a_dataset_without_served_impressions_gets_an_empty_table(tmp_path: Path) -> None:
    version = freeze(dataset(), tmp_path, {"source": "test"})
    impressions = version.load()["impressions"]
    assert impressions.empty and list(impressions.columns) == [
        "user_id",
        "item_id",
        "served_at",
        "position",
        "consumed",
    ]


def test_freeze_same_content_same_version_no_rewrite(tmp_path: Path) -> None:
    first = freeze(dataset(), tmp_path, {"run": 1})
    stamps = {p.name: p.stat().st_mtime_ns for p in Path(first.path).iterdir()}
    old = 1_000_000_000
    for p in Path(first.path).iterdir():
        os.utime(p, ns=(old, old))
    # The same rows in a different order are the same dataset.
    tables = dataset()
    tables["train"] = tables["train"].iloc[::-1].reset_index(drop=True)
    second = freeze(tables, tmp_path, {"run": 2})
    assert second == first
    assert {p.name: p.stat().st_mtime_ns for p in Path(first.path).iterdir()} == dict.fromkeys(stamps, old)
    assert second.manifest()["run"] == 1  # the original manifest is kept
    assert [p.name for p in tmp_path.iterdir()] == [first.version]


def test_freeze_different_content_different_version(tmp_path: Path) -> None:
    first = freeze(dataset(), tmp_path, {})
    tables = dataset()
    tables["test"] = tables["test"].iloc[:1]
    second = freeze(tables, tmp_path, {})
    assert second.version != first.version
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.version, second.version])
    assert second.manifest()["rows"]["test"] == 1 and first.manifest()["rows"]["test"] == 2


def test_freeze_replaces_a_stale_partial_directory(tmp_path: Path) -> None:
    tables = dataset()
    # A crashed earlier attempt left a partial directory with junk in it.
    probe = freeze(tables, tmp_path / "probe", {})
    partial = tmp_path / f".{probe.version}.partial"
    partial.mkdir()
    (partial / "junk.txt").write_text("left over")
    version = freeze(tables, tmp_path, {})
    assert version.version == probe.version
    assert not partial.exists()
    assert not (Path(version.path) / "junk.txt").exists()
