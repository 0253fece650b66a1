"""Custom metrics in plain Python: one function, named in configuration, in every report.

The contract is one function ``(run, ground_truth, catalog) -> float | pd.Series``:

* ``run``: ``user_id, item_id, rank, score``, cut to the list length being judged;
* ``ground_truth``: ``user_id, item_id`` of the held-out interactions;
* ``catalog``: the items table (``item_id``, ``genres``, ``popularity_rank``, ...).

Return a Series indexed by ``user_id`` for a per-user metric (it is averaged, sliced by user
segment and tested for significance) or a float for a global one. A metric is found by

* the name it was registered under with ``@register_metric("name")``;
* a ``"package.module:function"`` string, as written in configuration;
* an entry point in the ``recs_platform.metrics`` group of an installed package::

      [project.entry-points."recs_platform.metrics"]
      long_tail_share = "recs_platform.evaluation.custom:long_tail_share"

:func:`long_tail_share` below is a complete example.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points

import pandas as pd

MetricFn = Callable[[pd.DataFrame, pd.DataFrame, pd.DataFrame], float | pd.Series]
ENTRY_POINT_GROUP = "recs_platform.metrics"
_REGISTRY: dict[str, MetricFn] = {}


@dataclass
class CustomMetricValues:
    """Global values (per-user metrics averaged in) and the per-user table of one run."""

    summary: dict[str, float]
    per_user: pd.DataFrame  # user_id plus one column per per-user metric


def register_metric(name: str) -> Callable[[MetricFn], MetricFn]:
    """Decorator that makes ``fn`` loadable by ``name``."""

    def decorator(fn: MetricFn) -> MetricFn:
        _REGISTRY[name] = fn
        return fn

    return decorator


def _from_entry_point(name: str) -> MetricFn | None:
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    return matches[0].load() if matches else None


def _from_path(path: str) -> MetricFn:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def load_metric(name: str) -> MetricFn:
    """Resolve one metric: registry, then ``module:function``, then entry points."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        return _from_path(name)
    found = _from_entry_point(name)
    if found is None:
        raise KeyError(f"unknown metric {name!r}: not registered, not module:function, no entry point")
    return found


def metric_label(name: str) -> str:
    """The name a metric has in reports: the function name for ``module:function``."""
    return name.rpartition(":")[2]


def load_metrics(names: Sequence[str]) -> dict[str, MetricFn]:
    """Metrics by report name (see :func:`metric_label`)."""
    return {metric_label(name): load_metric(name) for name in names}


def apply_custom_metrics(
    run: pd.DataFrame, ground_truth: pd.DataFrame, catalog: pd.DataFrame, names: Sequence[str]
) -> CustomMetricValues:
    """Compute each named metric; per-user ones are aligned to the ground-truth users.

    A ground-truth user missing from a per-user result gets NaN, so it drops out of the
    metric's mean instead of counting as zero.
    """
    users = pd.Index(sorted(ground_truth.user_id.unique()), name="user_id")
    summary: dict[str, float] = {}
    per_user = pd.DataFrame(index=users)
    for name, fn in load_metrics(names).items():
        value = fn(run, ground_truth, catalog)
        if isinstance(value, pd.Series):
            per_user[name] = value.reindex(users).astype(float)
            summary[name] = float(per_user[name].mean())
        else:
            summary[name] = float(value)
    return CustomMetricValues(summary, per_user.reset_index())


def long_tail_share(run: pd.DataFrame, ground_truth: pd.DataFrame, catalog: pd.DataFrame) -> pd.Series:
    """Example per-user metric: share of each list outside the catalog's 20% most popular items.

    Use it as ``"recs_platform.evaluation.custom:long_tail_share"``.
    """
    head = catalog.loc[catalog.popularity_rank <= 0.2 * len(catalog), "item_id"]
    return (~run.item_id.isin(head)).groupby(run.user_id).mean()
