"""TFDV-style descriptive statistics of a dataset: one row per column, saved as JSON and shown as markdown."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TOP_K = 5
HISTOGRAM_BINS = 10
STAT_COLUMNS = [
    "column", "dtype", "kind", "count", "missing", "missing_rate", "distinct",
    "min", "max", "mean", "std", "p50", "top_values", "histogram",
]  # fmt: skip


def column_kind(series: pd.Series) -> str:
    """``numeric``, ``datetime``, ``list`` (cells holding sequences, as in serving logs) or ``categorical``."""
    if pd.api.types.is_bool_dtype(series):
        return "categorical"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    present = series.dropna()
    if not present.empty and isinstance(present.iloc[0], list | tuple | np.ndarray):
        return "list"
    return "categorical"


def column_statistics(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per column of ``frame`` with the columns in ``STAT_COLUMNS``.

    Numeric columns get moments, median and a 10-bin equal-width histogram; datetimes get range,
    mean and median; list columns are summarized by their lengths, with top values over elements.
    """
    return pd.DataFrame([_column_row(name, frame[name]) for name in frame.columns], columns=STAT_COLUMNS)


def dataset_statistics(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """``column_statistics`` for every table of a dataset (e.g. ``DatasetVersion.load()``)."""
    return {name: column_statistics(frame) for name, frame in tables.items()}


def _column_row(name: str, series: pd.Series) -> dict[str, Any]:
    kind = column_kind(series)
    present = series.dropna()
    elements = present.explode().dropna() if kind == "list" else present
    row: dict[str, Any] = {
        "column": name,
        "dtype": str(series.dtype),
        "kind": kind,
        "count": len(present),
        "missing": len(series) - len(present),
        "missing_rate": (len(series) - len(present)) / len(series) if len(series) else 0.0,
        "distinct": elements.nunique(),
        "top_values": _top_values(elements),
        "histogram": None,
    }
    if kind == "numeric":
        row.update(_numeric_summary(present.astype("float64")))
        row["histogram"] = _histogram(present.astype("float64"))
    elif kind == "list":
        row.update(_numeric_summary(present.map(len).astype("float64")))
    elif kind == "datetime" and not present.empty:
        row.update(min=present.min(), max=present.max(), mean=present.mean(), std=None, p50=present.median())
    return row


def _numeric_summary(values: pd.Series) -> dict[str, Any]:
    if values.empty:
        return {}
    # std of a single value is NaN in pandas; 0 says the same thing and survives JSON.
    std = float(values.std()) if len(values) > 1 else 0.0
    return {
        "min": float(values.min()),
        "max": float(values.max()),
        "mean": float(values.mean()),
        "std": std,
        "p50": float(values.median()),
    }


def _top_values(values: pd.Series) -> list[tuple[Any, int]]:
    counts = values.value_counts()
    # Ties broken by the value's text so the same data always lists the same values.
    order = np.lexsort((counts.index.astype(str), -counts.to_numpy()))
    return [(_plain(value), int(count)) for value, count in counts.iloc[order[:TOP_K]].items()]


def _histogram(values: pd.Series) -> dict[str, list[float]] | None:
    finite = values[np.isfinite(values)]
    if finite.empty:
        return None
    counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def statistics_to_json(stats: dict[str, pd.DataFrame]) -> dict[str, list[dict[str, Any]]]:
    """Plain Python (lists, str, int, float, None) form of ``dataset_statistics``, for ``json.dumps``."""
    return {
        table: [{key: _plain(value) for key, value in row.items()} for row in frame.to_dict("records")]
        for table, frame in stats.items()
    }


def write_statistics(stats: dict[str, pd.DataFrame], path: Path) -> Path:
    """Write ``statistics_to_json(stats)`` to ``path`` (e.g. next to a frozen dataset's Parquet files)."""
    path.write_text(json.dumps(statistics_to_json(stats), indent=2))
    return path


def _plain(value: Any) -> Any:
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(item) for item in value]
    if isinstance(value, pd.Timestamp | pd.Timedelta):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def statistics_markdown(stats: pd.DataFrame | dict[str, pd.DataFrame]) -> str:
    """A compact markdown table per table (kind, missing %, distinct, range, mean, top values) for UI metadata."""
    if isinstance(stats, pd.DataFrame):
        return _table_markdown(stats)
    return "\n\n".join(
        f"**{table}** ({_rows(frame)} rows)\n\n{_table_markdown(frame)}" for table, frame in stats.items()
    )


def _rows(stats: pd.DataFrame) -> int:
    return int(stats["count"].iloc[0] + stats["missing"].iloc[0]) if len(stats) else 0


def _table_markdown(stats: pd.DataFrame) -> str:
    header = "| column | kind | missing | distinct | min | max | mean | top values |\n|---|---|---|---|---|---|---|---|"
    lines = [
        "| "
        + " | ".join(
            _cell(value)
            for value in (
                row.column,
                row.kind,
                f"{row.missing_rate:.1%}",
                row.distinct,
                _number(row.min),
                _number(row.max),
                _number(row.mean),
                ", ".join(f"{value} ({count})" for value, count in row.top_values[:3]),
            )
        )
        + " |"
        for row in stats.itertuples()
    ]
    return "\n".join([header, *lines])


def _number(value: Any) -> str:
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M")
    if value is None or pd.isna(value):
        return ""
    return f"{value:.4g}"


def _cell(value: object) -> str:
    # Genres are pipe-separated, and a bare pipe would split the markdown cell.
    return str(value).replace("|", "\\|")
