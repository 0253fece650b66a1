"""Report plots as small PNGs, drawn on Agg canvases without pyplot's global state."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 72  # with the small figure sizes below this keeps every PNG well under 80 KB


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def encode(png: bytes) -> str:
    """Base64 text of a PNG, for data URIs."""
    return base64.b64encode(png).decode("ascii")


def markdown_image(name: str, png: bytes) -> str:
    """A markdown image with the PNG inline, as Dagster metadata shows it."""
    return f"![{name}](data:image/png;base64,{encode(png)})"


def lines_by_group(table: pd.DataFrame, x: str, y: str, group: str) -> bytes:
    """One line (with markers) of ``y`` over ``x`` per value of ``group``."""
    figure = _figure(7, 3)
    axes = figure.subplots()
    for name, rows in table.groupby(group, sort=True):
        axes.plot(rows[x].astype(str), rows[y], marker="o", label=str(name))
    axes.set_xlabel(x)
    axes.set_ylabel(y)
    axes.tick_params(axis="x", rotation=45, labelsize="small")
    if table[group].nunique() > 1:
        axes.legend(fontsize="small")
    return _png(figure)


def metric_by_model(summary: pd.DataFrame, metrics: Sequence[str]) -> bytes:
    """Grouped bars: one group per metric, one bar per model."""
    figure = _figure(7, 3)
    axes = figure.subplots()
    values = summary.set_index("model")[list(metrics)]
    width = 0.8 / max(len(values), 1)
    positions = np.arange(len(metrics))
    for offset, (model, row) in enumerate(values.iterrows()):
        axes.bar(positions + offset * width, row.to_numpy(), width, label=model)
    axes.set_xticks(positions + width * (len(values) - 1) / 2, metrics)
    axes.set_ylabel("mean over test users")
    axes.legend(fontsize="small")
    return _png(figure)


def metric_by_slice(slices: pd.DataFrame, metric: str, models: Sequence[str]) -> bytes:
    """One panel per segment column: the metric's mean per segment value, one bar per model."""
    chosen = slices[slices.metric == metric]
    columns = sorted(chosen.segment_column.unique())
    figure = _figure(3 * max(len(columns), 1), 3)
    panels = np.atleast_1d(figure.subplots(1, max(len(columns), 1), sharey=True))
    for axes, column in zip(panels, columns, strict=False):
        table = chosen[chosen.segment_column == column].pivot(index="segment_value", columns="model", values="mean")
        table[list(models)].plot.bar(ax=axes, legend=False, width=0.8, rot=0)
        axes.set_title(column, fontsize="medium")
        axes.set_xlabel("")
    figure.axes[0].set_ylabel(metric)
    figure.axes[0].legend(fontsize="small")
    return _png(figure)


def recommended_popularity(runs: dict[str, pd.DataFrame], item_popularity: pd.Series) -> bytes:
    """Histogram of recommended items' training popularity, the catalog's as reference.

    Models take the colour cycle in ``runs`` order, as in the other plots.
    """
    figure = _figure(6, 3)
    axes = figure.subplots()
    bins = np.linspace(0, np.log10(item_popularity.max() + 1), 30)
    axes.hist(np.log10(item_popularity + 1), bins=bins, density=True, histtype="step", color="grey", label="catalog")
    for index, (name, run) in enumerate(runs.items()):
        popularity = np.log10(item_popularity.reindex(run.item_id).fillna(0) + 1)
        axes.hist(popularity, bins=bins, density=True, histtype="step", linewidth=1.5, color=f"C{index}", label=name)
    axes.set_xlabel("log10(1 + training users of the item)")
    axes.set_ylabel("density")
    axes.legend(fontsize="small")
    return _png(figure)


def score_distributions(runs: dict[str, pd.DataFrame]) -> bytes:
    """One panel per model (score scales differ): histogram of top-k scores."""
    figure = _figure(3 * max(len(runs), 1), 2.6)
    for axes, (name, run) in zip(np.atleast_1d(figure.subplots(1, max(len(runs), 1))), runs.items(), strict=False):
        axes.hist(run.score.to_numpy(dtype=np.float64), bins=30)
        axes.set_title(name, fontsize="medium")
        axes.set_xlabel("score")
    return _png(figure)
