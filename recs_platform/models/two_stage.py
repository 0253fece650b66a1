"""Two-stage recommender: learned retrieval narrows the catalogue, a LightGBM LambdaRank ranker orders it.

**Retrieval.** Each source proposes its top ``candidates`` items for a user's history: item-to-item
recommenders (EASE, DLAE, item-kNN: anything that scores any history) and, optionally, an
approximate nearest-neighbour index (faiss HNSW, inner product) over a two-tower model's item
vectors, queried with the user's vector. A user's candidates are the union of the sources'.

**Ranking.** Each candidate gets one feature row (``ranking_features.user_item_features``): every
source's score and rank, user and item features from the catalogue tables (the dbt marts
``user_features`` / ``item_features``), user x item cross features (affinity for the item's
attribute values, days since the user last consumed a shared value, popularity gap, numeric
gaps), item popularity, trend and recency, and the request's hour and weekday. The ranker's
score orders the candidates; items no source retrieved rank below every candidate.

**Training protocol (no leakage).** ``fit`` receives only the training rows (the train split, or
train+valid when the sweep refits the chosen configuration), like every other recommender:

1. Each user's interactions are ordered by time (ties by item id); with at least
   ``min_label_history`` of them, ``label_fraction`` of them (at least one) form the *later*
   (label) part, the rest the *earlier* part. Users with fewer keep everything in the earlier
   part. With ``label_split: temporal`` the later part is the newest rows; with ``random`` (the
   default) a seeded random share, which matches a random_per_user split's held-out items and
   won on validation under both split protocols on MovieLens-100K (docs/benchmarks.md).
2. The retrieval models and the feature snapshot (item counts, trend, first and last
   interaction) are fit on the earlier part only.
3. For each user with a later part, the candidates retrieved from the earlier history, at the
   time of the user's last earlier interaction, are labelled 1 if they are in the later part;
   users none of whose later items were retrieved are dropped (they carry no ranking signal).
4. The ranker is trained on those rows. Then the retrieval models and the snapshot are refit on
   all training rows, so serving retrieves from everything the model may know; the ranker is
   unchanged.

Validation and test never enter ``fit``: the sweep selects configurations on validation and the
reports score test exactly as for every other model. Catalogue activity columns computed by dbt
over all interactions (``n_interactions``, ``popularity_rank``, ...) are not used: the snapshot
counts activity on the rows it is given.

**Offline and serving.** Offline scoring (evaluation, batch lists) ranks a training user's
history at the time of their last training interaction; serving ranks the online store's
history at the request time (``rank_for_user``). Both build a ``UserInputs`` and go through the
same retrieval, feature and ranker code.

**Saved state.** ``arrays.npz`` holds the feature snapshot, the histories with their times, the
user category codes and the two-tower user vectors; ``ranker.txt`` is LightGBM's text model;
``retrieval/<source>/`` are the saved retrieval recommenders and ``ann.faiss`` the index
(faiss' own format). Nothing is pickled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import faiss
import lightgbm as lgb
import numpy as np
import pandas as pd
import torch
from pydantic import Field

from recs_platform.models.base import (
    CannotFit,
    FeatureColumnParams,
    Logger,
    Recommender,
    TrainingData,
    Validator,
    _row_top_k,
    as_ids,
    load_recommender,
    new_recommender,
    register,
)
from recs_platform.models.ranking_features import (
    FeatureColumns,
    FeatureSnapshot,
    UserInputs,
    epoch_seconds,
    user_item_features,
)
from recs_platform.models.two_tower import TwoTowerRecommender

ANN_SOURCE = "ann"
RANKER_FILE = "ranker.txt"
INDEX_FILE = "ann.faiss"
RETRIEVAL_DIR = "retrieval"
SNAPSHOT_PREFIX = "snapshot."
# Offline batches (evaluation, precomputed lists) are scored on the ranker's threads; a request's few
# hundred rows on one, where starting threads costs more than it saves. Each row's score is the same.
PARALLEL_PREDICT_ROWS = 50_000


class Retrieval:
    """The candidate sources of one fit: history-scoring recommenders and an optional ANN index."""

    def __init__(
        self,
        sources: dict[str, Recommender],
        n: int,
        index: faiss.Index | None = None,
        user_vectors: np.ndarray | None = None,
    ) -> None:
        self.sources, self.n, self.index, self.user_vectors = sources, n, index, user_vectors

    @property
    def names(self) -> list[str]:
        return [*self.sources, *([ANN_SOURCE] if self.index is not None else [])]

    def retrieve(self, users: Sequence[UserInputs]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per user: candidate item indices (ascending) and their (score, rank) per source, NaN
        where a source did not retrieve the item. Scores are standardised over the source's
        candidates for that user: raw scores grow when retrieval is refit on more rows than the
        ranker was trained with, their spread within one list much less."""
        found = [self._from_history(name, model, users) for name, model in self.sources.items()]
        if self.index is not None:
            found.append(self._from_index(users))
        results = []
        for row in range(len(users)):
            per_source = [source[row] for source in found]
            items = np.unique(np.concatenate([items for items, _ in per_source]))
            retrieval = np.full((len(items), 2 * len(per_source)), np.nan)
            for column, (source_items, scores) in enumerate(per_source):
                position = np.searchsorted(items, source_items)
                spread = scores.std() if len(scores) > 1 else 0.0
                retrieval[position, 2 * column] = (scores - scores.mean()) / spread if spread > 0 else 0.0
                retrieval[position, 2 * column + 1] = np.arange(1, len(source_items) + 1)
            results.append((items, retrieval))
        return results

    def _from_history(
        self, name: str, model: Recommender, users: Sequence[UserInputs]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        scores = np.asarray(model._score_histories([user.history for user in users]), dtype=np.float64)
        found = []
        for row, user in zip(scores, users, strict=True):
            row[user.history] = -np.inf
            top = _row_top_k(row, min(self.n, len(row)))
            top = top[np.isfinite(row[top])]
            found.append((top, row[top]))
        return found

    def _from_index(self, users: Sequence[UserInputs]) -> list[tuple[np.ndarray, np.ndarray]]:
        known = [row for row, user in enumerate(users) if user.user_index is not None]
        found = [(np.zeros(0, dtype=np.int64), np.zeros(0))] * len(users)
        if not known:
            return found
        depth = min(self.index.ntotal, self.n + max(len(users[row].history) for row in known))
        queries = np.ascontiguousarray(self.user_vectors[[users[row].user_index for row in known]], dtype=np.float32)
        # Per-call search parameters: the shared index is never mutated by concurrent requests.
        search = faiss.SearchParametersHNSW(efSearch=max(2 * depth, 64))
        scores, items = self.index.search(queries, depth, params=search)
        for row, item_row, score_row in zip(known, items, scores, strict=True):
            keep = (item_row >= 0) & ~np.isin(item_row, users[row].history)
            found[row] = (item_row[keep][: self.n].astype(np.int64), score_row[keep][: self.n].astype(np.float64))
        return found


def ann_index(item_vectors: np.ndarray, neighbors: int) -> faiss.Index:
    """An HNSW inner-product index over ``item_vectors``, built on one thread so it is reproducible."""
    index = faiss.IndexHNSWFlat(item_vectors.shape[1], neighbors, faiss.METRIC_INNER_PRODUCT)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        index.add(np.ascontiguousarray(item_vectors, dtype=np.float32))
    finally:
        faiss.omp_set_num_threads(threads)
    return index


@dataclass(frozen=True)
class Histories:
    """Each user's distinct items (first interaction time), as CSR-like arrays over user indices."""

    indptr: np.ndarray
    items: np.ndarray
    seconds: np.ndarray

    @classmethod
    def of(cls, rows: pd.DataFrame, n_users: int) -> Histories:
        first = rows.groupby(["user_index", "item_index"], sort=True).seconds.min().reset_index()
        counts = np.bincount(first.user_index.to_numpy(), minlength=n_users)
        indptr = np.concatenate([[0], np.cumsum(counts)])
        return cls(indptr, first.item_index.to_numpy(dtype=np.int64), first.seconds.to_numpy(dtype=np.float64))

    def user(self, index: int, codes: np.ndarray, now: float | None = None) -> UserInputs:
        """User ``index`` at ``now`` (default: their newest interaction)."""
        start, end = self.indptr[index], self.indptr[index + 1]
        times = self.seconds[start:end]
        if now is None:
            now = float(np.max(times)) if len(times) and np.isfinite(times).any() else np.nan
        return UserInputs(self.items[start:end], times, codes, now, index)


@dataclass(frozen=True)
class RankedList:
    """A served list with what produced it: item ids, ranker scores, sources and feature rows."""

    item_ids: np.ndarray
    scores: np.ndarray
    features: list[dict[str, Any]]


@dataclass(frozen=True)
class Explanation:
    """Why an item is in a list: the sources that retrieved it and its largest feature contributions."""

    sources: list[str]
    contributions: list[tuple[str, float]]

    def sentence(self) -> str:
        shares = ", ".join(f"{name} {value:+.3f}" for name, value in self.contributions)
        return f"retrieved by {', '.join(self.sources) or 'no source'} · {shares}"


@register
class TwoStageRecommender(Recommender):
    """Retrieval from learned recommenders (and an ANN index), then a LambdaRank ranker (see module doc)."""

    class Params(FeatureColumnParams):
        retrievers: dict[str, dict[str, Any]] = Field(
            {"dlae": {}, "item_knn": {}},
            description="Retrieval recommenders that score any history (name: params).",
        )
        ann_two_tower: dict[str, Any] | None = Field(
            None, description="Two-tower params whose item vectors feed a faiss ANN source; null for none."
        )
        ann_neighbors: int = Field(32, ge=4, description="HNSW graph degree (M) of the ANN index.")
        candidates: int = Field(200, ge=1, description="Candidates per retrieval source (N).")
        # 0.3 over 0.2: +0.004 validation NDCG@10 on 300 MovieLens-100K users (bench/two_stage.py notes).
        label_fraction: float = Field(0.3, gt=0, lt=1, description="Share of a user's rows used as labels.")
        label_split: Literal["temporal", "random"] = Field(
            "random", description="Labels are each user's newest rows (temporal) or a seeded random share (random)."
        )
        min_label_history: int = Field(5, ge=2, description="Users with fewer rows give no ranker labels.")
        item_numeric: list[str] = Field(["release_year"], description="Numeric item columns (absent ones are missing).")
        trend_days: float = Field(30.0, gt=0, description="Window of the item popularity trend, in days.")
        recent_items: int = Field(10, ge=1, description="Newest history items behind the recent affinity.")
        trees: int = Field(300, ge=1, description="Boosting rounds of the ranker.")
        learning_rate: float = Field(0.05, gt=0, description="Ranker learning rate.")
        leaves: int = Field(31, ge=2, description="Leaves per tree.")
        min_child_samples: int = Field(50, ge=1, description="Fewest rows in a leaf.")
        truncation: int = Field(20, ge=1, description="LambdaRank truncation level (positions that get gradients).")
        threads: int = Field(2, ge=1, description="Threads for training the ranker and scoring offline batches.")
        seed: int = Field(0, description="Seed of the ranker and the two-tower.")
        max_candidate_rows: int = Field(
            20_000_000,
            ge=1,
            description="Most candidate rows (users x sources x candidates) the ranker may build features for and"
            " score in one evaluation; above it the model is not fitted (CannotFit, with the count).",
        )

    name = "two_stage"
    ranks_at_request_time = True

    # -- training ------------------------------------------------------------------------
    def _fit(self, data: TrainingData, validate: Validator | None, log: Logger) -> None:
        params = self.params
        self._check_candidate_rows(data.matrix.shape[0])
        self.columns = self._feature_columns()
        rows = data.interactions.assign(seconds=_seconds(data.interactions))
        item_table = _aligned(data.items, "item_id", self.item_map.ids)
        user_table = _aligned(data.users, "user_id", self.user_map.ids)
        earlier, later = split_for_ranker(
            rows, params.label_fraction, params.min_label_history, params.label_split == "random", params.seed
        )
        log(f"two_stage: retrieval on {len(earlier)} earlier rows, labels from {len(later)} later rows")
        retrieval = self._fit_retrieval(earlier, data, log)
        snapshot = FeatureSnapshot.build(self.columns, earlier, len(self.item_map), item_table, user_table)
        codes = snapshot.user_codes(user_table)
        earlier_histories = Histories.of(earlier, len(self.user_map))
        self.ranker_rows = self._ranker_rows(retrieval, snapshot, earlier_histories, later, codes)
        self.ranker = self._train_ranker(self.ranker_rows, snapshot.feature_names(retrieval.names), snapshot)
        log(f"two_stage: ranker on {len(self.ranker_rows)} rows of {self.ranker_rows.user_index.nunique()} users")
        self.retrieval = self._fit_retrieval(rows, data, log)
        self.snapshot = FeatureSnapshot.build(self.columns, rows, len(self.item_map), item_table, user_table)
        self.histories = Histories.of(rows, len(self.user_map))
        self.user_codes = self.snapshot.user_codes(user_table)
        self.metadata["feature_importance"] = self.feature_importance()

    def _check_candidate_rows(self, n_users: int) -> None:
        """Every user's candidates get ranker features and a LightGBM score; past the budget that
        is hours and tens of GiB on one machine, so the sweep reports why rather than trying."""
        sources = len(self.params.retrievers) + (self.params.ann_two_tower is not None)
        needed = n_users * sources * self.params.candidates
        if needed > self.params.max_candidate_rows:
            raise CannotFit(
                f"two_stage would rank {needed:,} candidate rows ({n_users:,} users x {sources} sources x"
                f" {self.params.candidates} candidates), over max_candidate_rows {self.params.max_candidate_rows:,}"
            )

    def _feature_columns(self) -> FeatureColumns:
        p = self.params
        return FeatureColumns(p.user_features, p.item_features, p.item_numeric, p.trend_days, p.recent_items)

    def _fit_retrieval(self, rows: pd.DataFrame, data: TrainingData, log: Logger) -> Retrieval:
        """The retrieval models fit on ``rows`` with the model's catalogue, so indices agree."""
        frame = rows[["user_id", "item_id", *(["timestamp"] if "timestamp" in rows else [])]]
        fit = {"catalog_items": self.item_map.ids, "users": data.users, "items": data.items}
        sources = {}
        for name, source_params in self.params.retrievers.items():
            model = new_recommender(name, source_params)
            if not model.scores_any_history:
                raise ValueError(f"two_stage: retriever {name} cannot score a history; use ease, dlae or item_knn")
            sources[name] = model.fit(frame, **fit, log=log)
        if self.params.ann_two_tower is None:
            return Retrieval(sources, self.params.candidates)
        tower = TwoTowerRecommender(**{"seed": self.params.seed, **self.params.ann_two_tower})
        tower.fit(frame, **fit, log=log)
        users, items = _tower_vectors(tower)
        index = ann_index(items, self.params.ann_neighbors)
        return Retrieval(sources, self.params.candidates, index, users)

    def _ranker_rows(
        self,
        retrieval: Retrieval,
        snapshot: FeatureSnapshot,
        earlier: Histories,
        later: pd.DataFrame,
        codes: np.ndarray,
    ) -> pd.DataFrame:
        """One row per (labelled user, candidate): features from the earlier part, label from the later."""
        labelled = np.unique(later.user_index.to_numpy())
        inputs = [earlier.user(int(user), codes[user]) for user in labelled]
        names = snapshot.feature_names(retrieval.names)
        kept: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # users, items, labels, features
        positives = later.groupby("user_index").item_index.agg(lambda items: set(items.tolist()))
        for user, (items, features) in zip(labelled, self._features(retrieval, snapshot, inputs), strict=True):
            label = np.isin(items, list(positives[user])).astype(np.int32)
            if label.any():
                kept.append((np.full(len(items), user), items, label, features))
        if not kept:
            raise ValueError("two_stage: no user's later items were retrieved; raise candidates or add data")
        users, items, labels, features = (np.concatenate(part) for part in zip(*kept, strict=True))
        # One frame for all users: a frame per user cost more than the features in it.
        return pd.DataFrame(features, columns=names).assign(user_index=users, item_index=items, label=labels)

    def _train_ranker(self, rows: pd.DataFrame, names: list[str], snapshot: FeatureSnapshot) -> lgb.Booster:
        params = self.params
        groups = rows.groupby("user_index", sort=False).size().to_numpy()
        dataset = lgb.Dataset(
            rows[names].to_numpy(),
            label=rows.label.to_numpy(),
            group=groups,
            feature_name=names,
            categorical_feature=snapshot.categorical_features(),
            params={"verbose": -1},
        )
        settings = {
            "objective": "lambdarank",
            "lambdarank_truncation_level": params.truncation,
            "learning_rate": params.learning_rate,
            "num_leaves": params.leaves,
            "min_data_in_leaf": params.min_child_samples,
            "seed": params.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": params.threads,
            "verbose": -1,
        }
        return lgb.train(settings, dataset, num_boost_round=params.trees)

    # -- features and scoring --------------------------------------------------------------
    def _features(
        self, retrieval: Retrieval, snapshot: FeatureSnapshot, users: Sequence[UserInputs]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per user: the candidates and their feature rows."""
        return [
            (items, user_item_features(snapshot, user, items, found))
            for user, (items, found) in zip(users, retrieval.retrieve(users), strict=True)
        ]

    def _rank(self, users: Sequence[UserInputs]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per user: candidates, their feature rows and their ranker scores (one ranker call)."""
        featured = self._features(self.retrieval, self.snapshot, users)
        stacked = np.concatenate([features for _, features in featured]) if featured else np.zeros((0, 0))
        threads = self.params.threads if len(stacked) >= PARALLEL_PREDICT_ROWS else 1
        scores = self.ranker.predict(stacked, num_threads=threads) if len(stacked) else np.zeros(0)
        bounds = np.cumsum([0, *(len(items) for items, _ in featured)])
        return [
            (items, features, scores[bounds[row] : bounds[row + 1]]) for row, (items, features) in enumerate(featured)
        ]

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        users = [self.offline_inputs(int(index)) for index in user_index]
        scores = np.zeros((len(users), len(self.item_map)))
        for row, (items, _, ranked) in enumerate(self._rank(users)):
            scores[row] = ranked.min() - 1.0 if len(ranked) else 0.0  # below every candidate
            scores[row, items] = ranked
        return scores

    def offline_inputs(self, user_index: int, now: float | None = None) -> UserInputs:
        """A training user as offline scoring sees them: training history, at ``now`` or their newest interaction."""
        self._require_fitted()
        return self.histories.user(user_index, self.user_codes[user_index], now)

    def serving_inputs(
        self,
        user_id: int | str,
        history: np.ndarray,
        history_times: np.ndarray,
        features: Mapping[str, Any],
        now: float,
    ) -> UserInputs:
        """A user as serving sees them: the online store's history (item ids, times) and features."""
        self._require_fitted()
        rows = self.item_map.rows(as_ids(history))
        known = rows >= 0
        codes = self.snapshot.user_codes(pd.DataFrame([dict(features)]))[0]
        user_index = self.user_map.row(user_id)
        times = epoch_seconds(np.asarray(history_times)[known]) if known.any() else np.zeros(0)
        return UserInputs(rows[known], times, codes, now, user_index)

    def features(self, user: UserInputs, item_ids: Iterable[int]) -> pd.DataFrame:
        """The ranker's feature rows of ``item_ids`` for ``user`` (items no source retrieved have
        NaN retrieval features), indexed by item id."""
        items = self.item_map.index(as_ids(item_ids))
        candidates, found = self.retrieval.retrieve([user])[0]
        retrieval = np.full((len(items), found.shape[1]), np.nan)
        position = np.searchsorted(candidates, items).clip(max=max(len(candidates) - 1, 0))
        hit = (len(candidates) > 0) & (candidates[position] == items)
        retrieval[hit] = found[position[hit]]
        rows = user_item_features(self.snapshot, user, items, retrieval)
        names = self.snapshot.feature_names(self.retrieval.names)
        return pd.DataFrame(rows, columns=names, index=pd.Index(self.item_map.ids[items], name="item_id"))

    def rank_for_user(self, user: UserInputs, k: int, exclude: Iterable[int] = ()) -> RankedList:
        """The top ``k`` candidates for ``user`` with the feature rows that ranked them (as logged)."""
        if k <= 0:
            raise ValueError("k must be positive")
        items, features, scores = self._rank([user])[0]
        excluded = as_ids(exclude)
        keep = ~np.isin(items, self._known_items(excluded))
        items, features, scores = items[keep], features[keep], scores[keep]
        top = _row_top_k(scores, min(k, len(scores))) if len(scores) else np.zeros(0, dtype=np.int64)
        names = self.snapshot.feature_names(self.retrieval.names)
        chosen = features[top]
        values = np.where(np.isfinite(chosen), chosen, np.nan).astype(object)
        values[~np.isfinite(chosen)] = None
        rows = [
            {"item_id": self.item_map.ids[item].item(), **dict(zip(names, row, strict=True))}
            for item, row in zip(items[top], values.tolist(), strict=True)
        ]
        return RankedList(self.item_map.ids[items[top]], scores[top], rows)

    def contributions(self, user: UserInputs, item_ids: Iterable[int]) -> pd.DataFrame:
        """Each item's per-feature contribution to its ranker score (LightGBM ``pred_contrib``)."""
        rows = self.features(user, item_ids)
        contrib = self.ranker.predict(rows.to_numpy(), pred_contrib=True, num_threads=1)
        return pd.DataFrame(contrib, columns=[*rows.columns, "bias"], index=rows.index)

    def explain(self, rows: Sequence[Mapping[str, Any]], top: int = 3) -> list[Explanation]:
        """For logged feature rows (``RankedList.features``): the sources that retrieved each item and
        its ``top`` feature contributions by magnitude (LightGBM ``pred_contrib``)."""
        names = self.snapshot.feature_names(self.retrieval.names)
        matrix = np.array([[np.nan if row[name] is None else row[name] for name in names] for row in rows], dtype=float)
        contributions = self.ranker.predict(matrix.reshape(len(rows), len(names)), pred_contrib=True, num_threads=1)
        explained = []
        for row, contribution in zip(rows, contributions[:, :-1], strict=True):
            sources = [source for source in self.retrieval.names if row[f"{source}_rank"] is not None]
            strongest = np.argsort(-np.abs(contribution), kind="stable")[:top]
            explained.append(Explanation(sources, [(names[i], float(contribution[i])) for i in strongest]))
        return explained

    def feature_importance(self) -> dict[str, float]:
        """Total split gain per feature, largest first."""
        gain = self.ranker.feature_importance(importance_type="gain")
        pairs = sorted(zip(self.ranker.feature_name(), gain.tolist(), strict=True), key=lambda p: -p[1])
        return {name: round(float(value), 3) for name, value in pairs}

    # -- persistence ---------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        vectors = {} if self.retrieval.user_vectors is None else {"user_vectors": self.retrieval.user_vectors}
        return {
            **{SNAPSHOT_PREFIX + key: value for key, value in self.snapshot.arrays.items()},
            "history_indptr": self.histories.indptr,
            "history_items": self.histories.items,
            "history_seconds": self.histories.seconds,
            "user_codes": self.user_codes,
            **vectors,
        }

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.columns = self._feature_columns()
        snapshot = {key.removeprefix(SNAPSHOT_PREFIX): v for key, v in state.items() if key.startswith(SNAPSHOT_PREFIX)}
        self.snapshot = FeatureSnapshot(self.columns, snapshot)
        self.histories = Histories(state["history_indptr"], state["history_items"], state["history_seconds"])
        self.user_codes = state["user_codes"]
        self._user_vectors = state.get("user_vectors")

    def _save_files(self, path: Path) -> None:
        (path / RANKER_FILE).write_text(self.ranker.model_to_string())
        for name, model in self.retrieval.sources.items():
            model.save(path / RETRIEVAL_DIR / name)
        if self.retrieval.index is not None:
            faiss.write_index(self.retrieval.index, str(path / INDEX_FILE))

    def _load_files(self, path: Path) -> None:
        self.ranker = lgb.Booster(model_str=(path / RANKER_FILE).read_text())
        sources = {name: load_recommender(path / RETRIEVAL_DIR / name) for name in self.params.retrievers}
        index = faiss.read_index(str(path / INDEX_FILE)) if (path / INDEX_FILE).exists() else None
        self.retrieval = Retrieval(sources, self.params.candidates, index, self._user_vectors)


def split_for_ranker(
    rows: pd.DataFrame, label_fraction: float, min_history: int, shuffle: bool = False, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's rows split into a part for retrieval and a part for labels.

    Users with at least ``min_history`` rows put their last ``ceil(n * label_fraction)`` rows
    (at least one, at most n - 1) in the label part: the newest (ties in time ordered by item
    index), or with ``shuffle`` a random share drawn by ``seed`` from the rows in that order.
    """
    ordered = rows.sort_values(["user_index", "seconds", "item_index"], kind="stable")
    if shuffle:
        draw = np.random.default_rng(seed).random(len(ordered))
        ordered = ordered.assign(_draw=draw).sort_values(["user_index", "_draw"], kind="stable").drop(columns="_draw")
    position = ordered.groupby("user_index").cumcount().to_numpy()
    sizes = ordered.groupby("user_index").user_index.transform("size").to_numpy()
    n_later = np.where(sizes >= min_history, np.clip(np.ceil(sizes * label_fraction), 1, sizes - 1), 0)
    later = position >= sizes - n_later
    return ordered[~later].reset_index(drop=True), ordered[later].reset_index(drop=True)


def _tower_vectors(tower: TwoTowerRecommender) -> tuple[np.ndarray, np.ndarray]:
    """Every known user's and item's two-tower vector, as the tower scores them."""
    tower.net.eval()
    with torch.no_grad():
        users = np.arange(len(tower.user_map))
        items = np.arange(len(tower.item_map))
        user_vectors = tower._user_vectors(users, users + 1).numpy()
        item_vectors = tower._item_vectors(items, tower.item_slot).numpy()
    return np.ascontiguousarray(user_vectors, dtype=np.float32), np.ascontiguousarray(item_vectors, dtype=np.float32)


def _seconds(interactions: pd.DataFrame) -> np.ndarray:
    if "timestamp" not in interactions:
        return np.full(len(interactions), np.nan)
    return epoch_seconds(interactions.timestamp)


def _aligned(table: pd.DataFrame | None, key: str, ids: np.ndarray) -> pd.DataFrame:
    """``table``'s rows in the order of ``ids`` (missing rows, or no table, give missing values)."""
    if table is None or key not in table:
        return pd.DataFrame(index=pd.Index(ids, name=key))
    return table.drop_duplicates(key).set_index(key).reindex(ids)
