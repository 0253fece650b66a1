"""Dataset statistics: hand-computed counts, moments, top values and histograms; JSON and markdown forms."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recs_platform.monitoring.statistics import (
    STAT_COLUMNS,
    column_statistics,
    dataset_statistics,
    statistics_markdown,
    statistics_to_json,
    write_statistics,
)


def tiny() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "score": [0.0, 10.0, 10.0, 20.0, np.nan],
            "genres": ["Drama", "Comedy|Drama", "Drama", None, "Comedy|Drama"],
            "seen_at": pd.to_datetime(["2024-01-01", "2024-01-03", None, "2024-01-02", "2024-01-05"]),
            "item_ids": [[1, 2], [2], [], [2, 3, 4], None],
            "fallback": [True, False, False, False, True],
        }
    )


def stats_by_column() -> dict[str, dict]:
    return column_statistics(tiny()).set_index("column").to_dict("index")


def test_numeric_column_counts_moments_and_histogram() -> None:
    score = stats_by_column()["score"]
    assert (score["kind"], score["dtype"]) == ("numeric", "float64")
    assert (score["count"], score["missing"], score["missing_rate"], score["distinct"]) == (4, 1, 0.2, 3)
    assert (score["min"], score["max"], score["mean"], score["p50"]) == (0.0, 20.0, 10.0, 10.0)
    assert score["std"] == pytest.approx(np.sqrt(200 / 3))  # sample std of 0, 10, 10, 20
    assert score["top_values"] == [(10.0, 2), (0.0, 1), (20.0, 1)]
    assert score["histogram"]["edges"] == pytest.approx(np.arange(0, 21, 2))
    assert score["histogram"]["counts"] == [1, 0, 0, 0, 0, 2, 0, 0, 0, 1]


def test_categorical_column_top_values_and_no_moments() -> None:
    genres = stats_by_column()["genres"]
    assert genres["kind"] == "categorical"
    assert (genres["count"], genres["missing"], genres["distinct"]) == (4, 1, 2)
    assert genres["top_values"] == [("Comedy|Drama", 2), ("Drama", 2)]  # ties in text order
    assert genres["histogram"] is None and pd.isna(genres["mean"])
    assert stats_by_column()["fallback"]["top_values"] == [(False, 3), (True, 2)]


def test_datetime_and_list_columns() -> None:
    stats = stats_by_column()
    seen = stats["seen_at"]
    assert (seen["kind"], seen["count"], seen["missing"]) == ("datetime", 4, 1)
    assert (seen["min"], seen["max"]) == (pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-05"))
    assert seen["p50"] == pd.Timestamp("2024-01-02 12:00")
    items = stats["item_ids"]
    assert (items["kind"], items["count"], items["missing"], items["distinct"]) == ("list", 4, 1, 4)
    assert (items["min"], items["max"], items["mean"]) == (0.0, 3.0, 1.5)  # list lengths 2, 1, 0, 3
    assert items["top_values"][0] == (2, 3)


def test_json_form_is_plain_python_and_round_trips(tmp_path) -> None:
    stats = dataset_statistics({"events": tiny(), "empty": tiny().iloc[:0]})
    plain = statistics_to_json(stats)
    assert json.loads(json.dumps(plain, allow_nan=False)) == plain
    rows = {row["column"]: row for row in plain["events"]}
    assert set(rows["score"]) == set(STAT_COLUMNS)
    assert rows["score"]["histogram"]["counts"] == [1, 0, 0, 0, 0, 2, 0, 0, 0, 1]
    assert rows["seen_at"]["min"] == "2024-01-01T00:00:00"
    assert rows["genres"]["mean"] is None
    assert rows["genres"]["top_values"][0] == ["Comedy|Drama", 2]
    assert plain["empty"][0]["count"] == 0
    path = write_statistics(stats, tmp_path / "statistics.json")
    assert json.loads(path.read_text()) == plain


def test_markdown_has_one_row_per_column_and_escapes_pipes() -> None:
    markdown = statistics_markdown({"events": column_statistics(tiny())})
    assert markdown.startswith("**events** (5 rows)")
    table_rows = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table_rows) == 1 + len(tiny().columns)
    assert "Comedy\\|Drama (2)" in markdown
    assert "| score | numeric | 20.0% | 3 | 0 | 20 | 10 |" in markdown
