"""A standalone HTML file per evaluation: inline CSS, embedded PNG plots, every table."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from recs_platform.evaluation.plots import encode
from recs_platform.evaluation.suite import SuiteResult

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.scroll { overflow-x: auto; } .flag { color: #b00020; font-weight: bold; } img { max-width: 100%; }
"""

PLOT_TITLES = {
    "metric_by_model": "Metrics by model",
    "metric_by_slice": "Primary metric by user segment",
    "recommended_popularity": "Popularity of recommended items",
    "score_distributions": "Score distributions",
}


def _table(frame: pd.DataFrame) -> str:
    return f'<div class="scroll">{frame.to_html(index=False, float_format="{:.4f}".format, border=0)}</div>'


def _first_item_warnings(suite: SuiteResult) -> str:
    flagged = [m for m in suite.models.values() if m.first_item.flagged]
    items = "".join(
        f'<li class="flag">{html.escape(m.name)} puts item {m.first_item.item_id} first for '
        f"{m.first_item.share:.0%} of users</li>"
        for m in flagged
    )
    return f"<ul>{items}</ul>" if items else "<p>No model puts the same item first for most users.</p>"


def _sections(suite: SuiteResult) -> list[str]:
    baseline = html.escape(suite.baseline or "none")
    plots = "".join(
        f'<h3>{PLOT_TITLES[name]}</h3><img alt="{name}" src="data:image/png;base64,{encode(png)}">'
        for name, png in suite.plots.items()
    )
    return [
        f"<h2>Accuracy (test split, cutoffs {', '.join(map(str, suite.ks))})</h2>{_table(suite.accuracy_table())}",
        f"<h2>Beyond accuracy (top {suite.k})</h2>{_table(suite.beyond_accuracy_table())}",
        f"<h2>Same first item</h2>{_first_item_warnings(suite)}",
        f"<h2>Significance against the best baseline ({baseline})</h2>{_table(suite.significance)}",
        f"<h2>By user segment</h2>{_table(suite.slice_table())}",
        f"<h2>Plots</h2>{plots}",
    ]


def write_html_report(suite: SuiteResult, path: Path, title: str = "Evaluation report") -> Path:
    """Write the report to ``path`` (parents created) and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    models = ", ".join(html.escape(name) for name in suite.models)
    body = "".join(_sections(suite))
    path.write_text(
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>Models: {models}. Primary metric: {html.escape(suite.primary_metric)}.</p>{body}</body></html>",
        encoding="utf-8",
    )
    return path
