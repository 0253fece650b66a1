"""The full evaluation suite: accuracy at several k, beyond-accuracy, slices, custom metrics,
significance against the best baseline, and the plots and tables a report shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import pandas as pd

from recs_platform.data.contract import CatalogColumn, DatasetContract, default_contract
from recs_platform.evaluation import plots
from recs_platform.evaluation.beyond_accuracy import (
    SameFirstItemResult,
    catalog_coverage,
    intra_list_diversity,
    novelty,
    popularity_bias,
    same_first_item,
)
from recs_platform.evaluation.custom import apply_custom_metrics, metric_label
from recs_platform.evaluation.evaluate import ALL_METRICS, evaluate
from recs_platform.evaluation.metrics import DEFAULT_METRIC, parse_metric
from recs_platform.evaluation.significance import paired_bootstrap, paired_t_test
from recs_platform.evaluation.slices import sliced_metrics, user_segments
from recs_platform.models.base import Recommender

MAX_SLICE_VALUES = 8  # more values than this (occupations, countries) make slices too thin to read


@dataclass
class ModelEvaluation:
    """One model's test-split numbers: averages, per-user values, its run and first-item check."""

    name: str
    is_learned: bool
    summary: dict[str, float]
    per_user: pd.DataFrame  # user_id, n_relevant, then one column per per-user metric
    run: pd.DataFrame  # top max(ks) lists
    first_item: SameFirstItemResult


@dataclass(frozen=True)
class _Context:
    """What every model is judged against: the catalog and training popularity."""

    catalog: pd.DataFrame
    diversity: CatalogColumn | None  # the item attribute intra-list diversity is measured over
    item_popularity: pd.Series  # distinct training users per item, for every catalog item
    n_users: int
    custom_metrics: tuple[str, ...]
    first_item_threshold: float


@dataclass
class SuiteResult:
    """Everything one evaluation produced, with the tables and plots a report shows."""

    ks: tuple[int, ...]
    k: int  # list length judged by the beyond-accuracy and custom metrics
    primary_metric: str
    baseline: str | None
    models: dict[str, ModelEvaluation]
    slices: pd.DataFrame  # model, segment_column, segment_value, metric, mean, n_users
    significance: pd.DataFrame
    item_popularity: pd.Series
    custom_metrics: tuple[str, ...]

    def summary_table(self) -> pd.DataFrame:
        """One row per model, best first by the primary metric."""
        rows = [
            {"model": m.name, "kind": "learned" if m.is_learned else "baseline", **m.summary}
            for m in self.models.values()
        ]
        return pd.DataFrame(rows).sort_values(self.primary_metric, ascending=False).reset_index(drop=True)

    def accuracy_table(self) -> pd.DataFrame:
        columns = [f"{name}@{k}" for name in ALL_METRICS for k in self.ks]
        return self.summary_table()[["model", "kind", *columns]]

    def beyond_accuracy_table(self) -> pd.DataFrame:
        accuracy = set(self.accuracy_table().columns) - {"model", "kind"}
        table = self.summary_table()
        flags = {m.name: m.first_item for m in self.models.values()}
        table["first_item"] = table.model.map(lambda name: flags[name].item_id)
        table["first_item_flagged"] = table.model.map(lambda name: flags[name].flagged)
        return table[[c for c in table.columns if c not in accuracy]]

    def slice_metrics(self) -> list[str]:
        """The per-user metrics worth slicing in a report: primary, diversity, novelty, custom."""
        custom = [f"{metric_label(name)}@{self.k}" for name in self.custom_metrics]
        sliced = set(self.slices.metric)  # global custom metrics have no slices
        return [m for m in [self.primary_metric, f"ild@{self.k}", f"novelty@{self.k}", *custom] if m in sliced]

    def slice_table(self, metrics: Sequence[str] | None = None) -> pd.DataFrame:
        """Segments as rows, ``model metric`` as columns, with each segment's user count."""
        metrics = list(metrics or self.slice_metrics())
        chosen = self.slices[self.slices.metric.isin(metrics)]
        table = chosen.pivot_table(
            index=["segment_column", "segment_value"], columns=["metric", "model"], values="mean", sort=False
        )
        order = [(metric, model) for metric in metrics for model in self.models]
        table = table[[column for column in order if column in table.columns]]
        table.columns = [f"{model} {metric}" for metric, model in table.columns]
        users = self.slices[self.slices.metric == self.primary_metric].groupby(["segment_column", "segment_value"])
        table.insert(0, "users", users.n_users.max())
        return table.reset_index()

    def markdown_tables(self) -> dict[str, str]:
        """Markdown for Dagster metadata: accuracy, beyond-accuracy, significance, slices."""
        tables = {
            "accuracy": self.accuracy_table(),
            "beyond_accuracy": self.beyond_accuracy_table(),
            "significance": self.significance,
            "slices": self.slice_table(),
        }
        return {name: table.to_markdown(index=False, floatfmt=".4f") for name, table in tables.items()}

    @cached_property
    def plots(self) -> dict[str, bytes]:
        """PNG bytes of each report plot; drawn once (the asset's metadata and the HTML report
        both show them, and drawing is most of the suite's time after ranking)."""
        summary = self.summary_table()  # its order (best first) fixes each model's colour
        runs = {name: self.models[name].run.query(f"rank <= {self.k}") for name in summary.model}
        accuracy = [f"{name}@{self.primary_k}" for name in ALL_METRICS]
        return {
            "metric_by_model": plots.metric_by_model(summary, accuracy),
            "metric_by_slice": plots.metric_by_slice(self.slices, self.primary_metric, list(summary.model)),
            "recommended_popularity": plots.recommended_popularity(runs, self.item_popularity),
            "score_distributions": plots.score_distributions(runs),
        }

    def plot_markdown(self) -> dict[str, str]:
        """Each plot as a markdown image with an inline base64 PNG."""
        return {name: plots.markdown_image(name, png) for name, png in self.plots.items()}

    @property
    def primary_k(self) -> int:
        return int(self.primary_metric.rpartition("@")[2])


def _context(
    tables: dict[str, pd.DataFrame], contract: DatasetContract, custom_metrics: Sequence[str], threshold: float
) -> _Context:
    train, catalog = tables["train"], tables["items"]
    item_ids = pd.Index(catalog.item_id).union(pd.Index(train.item_id.unique()))
    popularity = train.groupby("item_id").user_id.nunique().reindex(item_ids, fill_value=0)
    diversity = (
        contract.diversity_column if contract.diversity_column and contract.diversity_column.name in catalog else None
    )
    return _Context(catalog, diversity, popularity, int(train.user_id.nunique()), tuple(custom_metrics), threshold)


def _slice_columns(users: pd.DataFrame, contract: DatasetContract) -> list[str]:
    """The contract's user segments with few enough values that each slice holds users, and activity."""
    present = [c for c in contract.user_segment_columns if c in users and users[c].nunique() <= MAX_SLICE_VALUES]
    return [*present, "activity_level"]


def _beyond_accuracy(run: pd.DataFrame, truth: pd.DataFrame, k: int, ctx: _Context) -> tuple[dict, pd.DataFrame]:
    """Global beyond-accuracy and custom values, and the per-user ones as columns."""
    measures = [novelty(run, ctx.item_popularity, ctx.n_users)]
    if ctx.diversity is not None:
        attribute = ctx.catalog.set_index("item_id")[ctx.diversity.name]
        separator = ctx.diversity.separator if ctx.diversity.kind == "multi" else None
        measures.insert(0, intra_list_diversity(run, attribute, separator).rename(f"ild@{k}"))
    per_user = pd.concat(measures, axis=1).rename(columns={"novelty": f"novelty@{k}"})
    custom = apply_custom_metrics(run, truth, ctx.catalog, ctx.custom_metrics)
    per_user = per_user.rename_axis("user_id").reset_index()
    custom_per_user = custom.per_user.rename(columns=lambda c: c if c == "user_id" else f"{c}@{k}")
    per_user = per_user.merge(custom_per_user, on="user_id", how="outer")
    bias = popularity_bias(run, ctx.item_popularity)
    summary = {
        f"coverage@{k}": catalog_coverage(run, ctx.catalog),
        **{f"{name}@{k}": value for name, value in bias.items()},
        **{f"{name}@{k}": value for name, value in custom.summary.items()},
    }
    return summary, per_user


def _evaluate_model(
    name: str,
    model: Recommender,
    tables: dict[str, pd.DataFrame],
    ks: Sequence[int],
    k: int,
    ctx: _Context,
    ranked: pd.DataFrame | None = None,
) -> ModelEvaluation:
    result = evaluate(model, tables["test"], exclude=tables["valid"], metrics=ALL_METRICS, ks=ks, run=ranked)
    run = result.run[result.run["rank"] <= k]
    extra_summary, extra_per_user = _beyond_accuracy(run, result.ground_truth, k, ctx)
    per_user = result.per_user.merge(extra_per_user, on="user_id", how="left")
    first_item = same_first_item(run, ctx.first_item_threshold)
    means = {c: float(per_user[c].mean()) for c in per_user.columns if c not in ("user_id", "n_relevant")}
    summary = {**means, **extra_summary, "first_item_share": first_item.share}
    return ModelEvaluation(name, model.is_learned, summary, per_user, result.run, first_item)


def _significance(
    models: dict[str, ModelEvaluation], baseline: str | None, metrics: Sequence[str], n_resamples: int, seed: int
) -> pd.DataFrame:
    rows = []
    for name, model in models.items():
        if baseline is None or name == baseline:
            continue
        for metric in metrics:
            candidate = model.per_user.set_index("user_id")[metric]
            reference = models[baseline].per_user.set_index("user_id")[metric]
            boot = paired_bootstrap(candidate, reference, n_resamples=n_resamples, seed=seed)
            t_test = paired_t_test(candidate, reference)
            rows.append(
                {"model": name, "baseline": baseline, "metric": metric, **boot, "p_value_ttest": t_test["p_value"]}
            )
    return pd.DataFrame(rows).rename(columns={"p_value": "p_value_bootstrap"})


def _best_baseline(models: dict[str, ModelEvaluation], names: Sequence[str], metric: str) -> str | None:
    candidates = [name for name in names if name in models]
    return max(candidates, key=lambda name: models[name].summary[metric]) if candidates else None


def full_evaluation(
    models: dict[str, Recommender],
    tables: dict[str, pd.DataFrame],
    ks: Sequence[int] = (5, 10, 20),
    custom_metrics: Sequence[str] = (),
    baseline_names: Sequence[str] | None = None,
    k: int = 10,
    primary_metric: str = DEFAULT_METRIC,
    n_resamples: int = 2000,
    seed: int = 0,
    first_item_threshold: float = 0.5,
    contract: DatasetContract | None = None,
    runs: Mapping[str, pd.DataFrame] | None = None,
) -> SuiteResult:
    """Evaluate every model on the test split (train and validation masked) with every metric.

    Beyond-accuracy and custom metrics judge the top ``k`` lists; ``baseline_names`` defaults
    to the models that are not learned, and the best of them by ``primary_metric`` is the
    reference of the significance tests. The dataset ``contract`` (MovieLens' by default) names
    the item attribute of intra-list diversity and the user segments of the slices. ``runs`` are
    test rankings made before (``evaluate``'s ``run``), by model name, at least ``max(ks)`` deep.
    """
    contract = contract or default_contract()
    ks = tuple(sorted({*ks, parse_metric(primary_metric)[1]}))
    if k > max(ks):
        raise ValueError(f"k={k} exceeds the longest cutoff {max(ks)}")
    ctx = _context(tables, contract, custom_metrics, first_item_threshold)
    runs = runs or {}
    evaluated = {
        name: _evaluate_model(name, model, tables, ks, k, ctx, runs.get(name)) for name, model in models.items()
    }
    if baseline_names is None:
        baseline_names = [name for name, model in models.items() if not model.is_learned]
    baseline = _best_baseline(evaluated, baseline_names, primary_metric)
    segments = user_segments(tables["users"], tables["train"], columns=_slice_columns(tables["users"], contract))
    slices = pd.concat(
        [sliced_metrics(m.per_user, segments).assign(model=name) for name, m in evaluated.items()], ignore_index=True
    )
    significance = _significance(evaluated, baseline, [primary_metric], n_resamples, seed)
    names = tuple(custom_metrics)
    return SuiteResult(ks, k, primary_metric, baseline, evaluated, slices, significance, ctx.item_popularity, names)
