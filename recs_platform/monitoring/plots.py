"""Reference-versus-current distribution plots as markdown, for Dagster metadata.

With matplotlib installed a plot is a small inline PNG (base64 data URI); without it, a markdown
table with text bars. Both show the bins that the PSI in ``drift`` is computed over.
"""

from __future__ import annotations

import base64
import importlib.util
import io

import numpy as np
import pandas as pd

from recs_platform.monitoring.drift import binned_distributions

MAX_BARS = 15  # more categories than this are folded into "(other)" to keep the plot readable
BAR_WIDTH = 20  # characters of the longest text bar


def drift_plot_markdown(reference: pd.DataFrame, current: pd.DataFrame, feature: str) -> str:
    """Markdown comparing the shares of ``feature`` per drift bin in ``reference`` and ``current``."""
    shares = binned_distributions(reference[feature], current[feature])
    labels, ref, cur = _fold(shares.labels, shares.reference, shares.current)
    if not _matplotlib_available():
        return _bar_table(feature, labels, ref, cur)
    return f"![{feature}](data:image/png;base64,{_png(feature, labels, ref, cur)})"


def _matplotlib_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _fold(labels: list[str], ref: np.ndarray, cur: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    if len(labels) <= MAX_BARS:
        return labels, ref, cur
    # Keep the bins that matter on either side, in their original order.
    kept = np.sort(np.argsort(-np.maximum(ref, cur), kind="stable")[: MAX_BARS - 1])
    rest = np.setdiff1d(np.arange(len(labels)), kept)
    return (
        [*(labels[i] for i in kept), "(other)"],
        np.append(ref[kept], ref[rest].sum()),
        np.append(cur[kept], cur[rest].sum()),
    )


def _png(feature: str, labels: list[str], ref: np.ndarray, cur: np.ndarray) -> str:
    # Figure without pyplot: no global backend state, safe inside a running Dagster process.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 2.6), dpi=80)
    axes = figure.subplots()
    x = np.arange(len(labels))
    axes.bar(x - 0.2, ref, 0.4, label="reference")
    axes.bar(x + 0.2, cur, 0.4, label="current")
    axes.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
    axes.tick_params(axis="y", labelsize=7)
    axes.set_ylabel("share", fontsize=8)
    axes.set_title(feature, fontsize=9)
    axes.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _bar_table(feature: str, labels: list[str], ref: np.ndarray, cur: np.ndarray) -> str:
    scale = BAR_WIDTH / max(ref.max(), cur.max())
    lines = [f"| {feature} | reference | current |", "|---|---|---|"]
    # Category labels such as genres may hold pipes, which would split the markdown cell.
    escaped = [label.replace("|", "\\|") for label in labels]
    lines += [
        f"| {label} | {'█' * round(r * scale)} {r:.1%} | {'█' * round(c * scale)} {c:.1%} |"
        for label, r, c in zip(escaped, ref, cur, strict=True)
    ]
    return "\n".join(lines)
