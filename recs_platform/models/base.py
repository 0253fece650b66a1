"""The one interface every recommender implements, heuristic or learned.

A recommender is fitted on interactions (``user_id, item_id`` and optionally ``timestamp``),
ranks the whole catalog for known users, excludes what each user has already seen, and saves
itself pickle-free: JSON for config and metadata, ``.npz`` for arrays, including the id maps.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

CONFIG_FILE = "recommender.json"
ARRAYS_FILE = "arrays.npz"
RECOMMENDATION_COLUMNS = ["user_id", "item_id", "rank", "score"]
Logger = Callable[[str], None]
# Dense scores of one ranking batch (users x items float64): 128 MiB is 335 users at 50k items.
# 16 MiB (under glibc's largest mmap threshold, so no fresh pages per batch) was tried: alone it
# looked faster, but the 1M-event graph's evaluation report took 199 s against 175 s.
SCORE_BATCH_BYTES = 128 * 2**20


class NotFittedError(RuntimeError):
    """The recommender was asked to rank before ``fit`` or ``load``."""


class InvalidParams(ValueError):
    """Hyperparameters a recommender does not declare, or of the wrong type or range."""


class RecommenderParams(BaseModel):
    """A recommender's hyperparameters: typed, one description per field, immutable.

    Each recommender subclasses this as its ``Params``, in the spirit of implicit's documented
    keyword arguments. Unknown names and wrong types (``true`` for an int, ``"1e-5"`` for a
    float) are errors, never silently coerced.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @classmethod
    def parse(cls, owner: str, values: dict[str, Any]) -> Self:
        """Validated parameters of recommender ``owner``; one sentence per invalid field."""
        try:
            return cls(**values)
        except ValidationError as error:
            raise InvalidParams(f"{owner}: {describe_errors(error)}") from None


class FeatureColumnParams(RecommenderParams):
    """The side-information columns of recommenders that read the user and item feature tables;
    absent columns count as missing, and a dataset's contract sets its own (``model_defaults``)."""

    user_features: list[str] = Field(
        ["age_bucket", "gender", "occupation"], description="Categorical user feature columns."
    )
    item_features: list[str] = Field(
        ["genres_list"],
        description="Item attribute columns: lists (multi-valued attributes), '|'-separated text or categories.",
    )


def describe_errors(error: ValidationError) -> str:
    """``field: message`` for every field pydantic rejected, separated by semicolons."""
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(parameters)"
        message = "unknown parameter" if item["type"] == "extra_forbidden" else item["msg"]
        problems.append(f"{field}: {message} (got {item['input']!r})")
    return "; ".join(problems)


@dataclass(frozen=True)
class Validator:
    """Held-out scoring during ``fit``: ``summary()`` returns every metric at ``metric``'s cutoff
    for the model being fitted, and ``metric`` is the one that decides."""

    metric: str
    summary: Callable[[], dict[str, float]]


def as_ids(values: Iterable[Any] | np.ndarray) -> np.ndarray:
    """Ids as a numpy array a map can search: int64 for integer ids, fixed-width unicode for string
    ids (which ``np.load(allow_pickle=False)`` reads back, unlike object arrays)."""
    array = values if isinstance(values, np.ndarray) else np.asarray(list(values))
    if array.dtype.kind in "iu" or (array.size == 0 and array.dtype.kind != "U"):
        return array.astype(np.int64, copy=False)
    if array.dtype.kind == "O" and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in array):
        return array.astype(np.int64)
    return array.astype(str)


def plain_id(value: Any) -> int | str:
    """A numpy or pandas id as the JSON-ready int or str it stands for."""
    return value.item() if isinstance(value, np.generic) else value


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` by one sort: for the short arrays of a request, a fifth of its time."""
    ordered = np.sort(values)
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))] if len(ordered) else ordered


def sorted_row(sorted_ids: np.ndarray, value: int | str) -> int | None:
    """The row of ``value`` in a sorted id array, or None when it is absent (an id of the other
    type, a string for integer ids or the reverse, is never present)."""
    if isinstance(value, str) != (sorted_ids.dtype.kind == "U"):
        return None
    row = int(np.searchsorted(sorted_ids, value))
    return row if row < len(sorted_ids) and sorted_ids[row] == value else None


class CannotFit(RuntimeError):
    """The model cannot be fitted within its resources (e.g. a dense item x item matrix over the
    memory budget); the message says why, for the sweep table and the report."""


class FitCache:
    """Work that fits of several configurations on the same training data share, such as a Gram
    matrix and its eigendecomposition. A sweep makes one and passes it to each fit, so nothing is
    shared between sweeps or datasets; entries are keyed by what they were computed from."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, Any] = {}

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The entry for ``key``, computed on first use."""
        if key not in self._entries:
            self._entries[key] = compute()
        return self._entries[key]


def fingerprint(matrix: sp.csr_matrix) -> str:
    """A digest of a binary CSR matrix's shape and pattern: equal digests, equal matrices (the key
    of work a ``FitCache`` shares)."""
    digest = hashlib.blake2b(str(matrix.shape).encode(), digest_size=16)
    digest.update(np.ascontiguousarray(matrix.indptr).tobytes())
    digest.update(np.ascontiguousarray(matrix.indices).tobytes())
    return digest.hexdigest()


class IdMap:
    """A bijection between external ids (integers or strings) and dense indices, stored as a
    sorted id array."""

    def __init__(self, ids: Iterable[Any] | np.ndarray) -> None:
        self.ids = np.unique(as_ids(ids))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def is_string(self) -> bool:
        return self.ids.dtype.kind == "U"

    def coerce(self, ids: Iterable[Any] | np.ndarray) -> np.ndarray:
        """``ids`` in this map's id type. Text asked of an integer map is read as a number when it
        is one ("12"); anything else becomes int64's minimum, which no id map holds in practice."""
        array = as_ids(ids)
        if self.is_string:
            return array.astype(str)
        if array.dtype.kind == "i":
            return array
        numeric = pd.to_numeric(pd.Series(array), errors="coerce")
        whole = (numeric.notna() & (numeric == numeric.round()) & (numeric.abs() < 2**62)).to_numpy()
        return np.where(whole, numeric.fillna(0).to_numpy(), np.iinfo(np.int64).min).astype(np.int64)

    def contains(self, ids: Iterable[Any] | np.ndarray) -> np.ndarray:
        return self.rows(ids) >= 0

    def rows(self, ids: Iterable[Any] | np.ndarray) -> np.ndarray:
        """The index of each id, -1 where the map does not hold it."""
        ids = self.coerce(ids)
        if not len(self.ids):
            return np.full(len(ids), -1)
        position = np.searchsorted(self.ids, ids)
        np.minimum(position, len(self.ids) - 1, out=position)  # not clip(): its dtype checks cost a request more
        return np.where(self.ids[position] == ids, position, -1)

    def row(self, value: int | str) -> int | None:
        """The index of one id, or None: a serving request's lookup, without the array calls of ``rows``."""
        return sorted_row(self.ids, value)

    def index(self, ids: Iterable[Any] | np.ndarray) -> np.ndarray:
        ids = self.coerce(ids)
        rows = self.rows(ids)
        if (rows < 0).any():
            raise KeyError(f"unknown ids: {ids[rows < 0][:10].tolist()}")
        return rows


@dataclass(frozen=True)
class TrainingData:
    """What ``_fit`` learns from, already mapped to dense indices."""

    matrix: sp.csr_matrix  # binary user x item
    interactions: pd.DataFrame  # training rows with user_index, item_index (and timestamp when given)
    users: pd.DataFrame | None  # user features, or None
    items: pd.DataFrame | None  # item features, or None
    # Served items users did not consume (known users and items, never a training positive), as
    # user_index, item_index rows: explicit negatives for the recommenders that use them.
    ignored: pd.DataFrame | None = None
    # Work shared with other fits of the same sweep (``FitCache``), or None for a single fit.
    cache: FitCache | None = None

    def shared(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()``, or the sweep's result for ``key`` (computed by the first fit that asks)."""
        return compute() if self.cache is None else self.cache.get(key, compute)


# Where each built-in recommender is defined, under recs_platform.models.
BUILT_IN_MODULES = {
    "popularity": "popularity",
    "segment_popularity": "heuristics",
    "recent_history": "heuristics",
    "cooccurrence": "heuristics",
    "item_knn": "neighbors",
    "ease": "neighbors",
    "dlae": "neighbors",
    "bpr": "bpr",
    "bpr_feedback": "bpr",
    "sasrec": "sasrec",
    "two_stage": "two_stage",
    "two_tower": "two_tower",
}


class Registry(Mapping[str, "type[Recommender]"]):
    """Recommender classes by name. A built-in one's module is imported when the class is first
    asked for, so a process that loads a DLAE bundle (the deployment's verifier, the CLI) does not
    import PyTorch, LightGBM, faiss and scikit-learn: seconds each."""

    def __init__(self) -> None:
        self._classes: dict[str, type[Recommender]] = {}

    def add(self, cls: type[Recommender]) -> None:
        self._classes[cls.name] = cls

    def __getitem__(self, name: str) -> type[Recommender]:
        if name not in self._classes and name in BUILT_IN_MODULES:
            importlib.import_module(f"recs_platform.models.{BUILT_IN_MODULES[name]}")
        return self._classes[name]

    def __contains__(self, name: object) -> bool:
        return name in BUILT_IN_MODULES or name in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(sorted({*BUILT_IN_MODULES, *self._classes}))

    def __len__(self) -> int:
        return len({*BUILT_IN_MODULES, *self._classes})


RECOMMENDERS = Registry()


def register(cls: type[Recommender]) -> type[Recommender]:
    """Class decorator that makes a recommender loadable by its ``name``."""
    RECOMMENDERS.add(cls)
    return cls


class Recommender(ABC):
    """Base class: subclasses implement ``_fit``, ``_score`` and their array state."""

    name: ClassVar[str]
    Params: ClassVar[type[RecommenderParams]] = RecommenderParams
    is_learned: ClassVar[bool] = True
    # Whether the model scores any history (``recommend_for_history``), not only its training rows.
    scores_any_history: ClassVar[bool] = False
    # Whether fits of several configurations share work through a ``FitCache`` (a sweep then fits them together).
    shares_fit_work: ClassVar[bool] = False
    # Whether serving retrieves and ranks at the request's time from the user's current history and
    # features (the two-stage model's ``rank_for_user``).
    ranks_at_request_time: ClassVar[bool] = False
    # Whether the model scores a user from features alone (the two-tower's ``recommend_for_features``).
    scores_features: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        self.params = self.Params.parse(self.name, params)
        self.metadata: dict[str, Any] = {}
        # The validation summary of the weights ``fit`` kept, when it chose them by validation.
        self.validation: dict[str, float] | None = None
        self.user_map: IdMap | None = None
        self.item_map: IdMap | None = None
        self.seen: sp.csr_matrix | None = None

    # -- training -----------------------------------------------------------------------
    def fit(
        self,
        train: pd.DataFrame,
        catalog_items: Iterable[int] | None = None,
        validate: Validator | None = None,
        log: Logger | None = None,
        users: pd.DataFrame | None = None,
        items: pd.DataFrame | None = None,
        impressions: pd.DataFrame | None = None,
        cache: FitCache | None = None,
    ) -> Self:
        """Fit on ``train``; ``validate`` enables early stopping for models that support it.

        ``users`` and ``items`` are the feature tables (``user_features`` / ``item_features``)
        for recommenders that use side information; ``impressions`` are served items with their
        ``consumed`` outcome, for those that learn from what users ignored. Others ignore them.
        ``cache`` shares work with other fits on the same data (a sweep's); raises ``CannotFit``
        when the model does not fit its resources.
        """
        if train.empty:
            raise ValueError(f"{self.name}: cannot fit on an empty training set")
        missing = {"user_id", "item_id"} - set(train.columns)
        if missing:
            raise ValueError(f"{self.name}: training data lacks columns {sorted(missing)}")
        item_ids = train.item_id.to_numpy()
        if catalog_items is not None:
            item_ids = np.concatenate([as_ids(item_ids), as_ids(catalog_items)])
        self.user_map, self.item_map = IdMap(train.user_id.to_numpy()), IdMap(item_ids)
        self.seen = self.interaction_matrix(train)
        data = TrainingData(self.seen, self._indexed(train), users, items, self._ignored(impressions), cache)
        self._fit(data, validate=validate, log=log or (lambda message: None))
        return self

    def _ignored(self, impressions: pd.DataFrame | None) -> pd.DataFrame | None:
        """Served-but-not-consumed pairs of known users and items that are not training positives."""
        if impressions is None or impressions.empty:
            return None
        shown = impressions[~impressions.consumed.astype(bool)]
        shown = shown[self.user_map.contains(shown.user_id) & self.item_map.contains(shown.item_id)]
        pairs = self._indexed(shown[["user_id", "item_id"]].drop_duplicates())
        if pairs.empty:  # everything shown was consumed (indexing the matrix with nothing fails)
            return None
        positive = np.asarray(self.seen[pairs.user_index.to_numpy(), pairs.item_index.to_numpy()]).ravel() > 0
        return pairs[~positive].reset_index(drop=True)

    def _indexed(self, interactions: pd.DataFrame) -> pd.DataFrame:
        """Interactions with dense ``user_index`` and ``item_index`` columns added."""
        return interactions.assign(
            user_index=self.user_map.index(interactions.user_id), item_index=self.item_map.index(interactions.item_id)
        )

    def interaction_matrix(self, interactions: pd.DataFrame) -> sp.csr_matrix:
        """Binary user x item matrix of the known users' and items' interactions."""
        self._require_fitted()
        known = self.user_map.contains(interactions.user_id) & self.item_map.contains(interactions.item_id)
        rows = self.user_map.index(interactions.user_id[known])
        cols = self.item_map.index(interactions.item_id[known])
        shape = (len(self.user_map), len(self.item_map))
        matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)
        matrix.data[:] = 1.0  # duplicates collapse to one positive
        return matrix

    @abstractmethod
    def _fit(self, data: TrainingData, validate: Validator | None, log: Logger) -> None:
        """Learn from the training data (binary matrix, indexed interactions, side information)."""

    @abstractmethod
    def _score(self, user_index: np.ndarray) -> np.ndarray:
        """Scores of every catalog item for the given user indices, shape (users, items): a new
        array, which the ranking masks in place."""

    # -- ranking ------------------------------------------------------------------------
    def known_users(self, user_ids: Iterable[int]) -> np.ndarray:
        self._require_fitted()
        return self.user_map.contains(as_ids(user_ids))

    def recommend(
        self,
        user_ids: Iterable[int],
        k: int = 10,
        exclude: pd.DataFrame | None = None,
        exclude_seen: bool = True,
        batch_size: int | None = None,
    ) -> pd.DataFrame:
        """Top-``k`` items per known user as ``user_id, item_id, rank, score`` (rank from 1).

        Items the user interacted with in training are excluded unless ``exclude_seen`` is
        false; ``exclude`` masks further ``user_id, item_id`` pairs (e.g. validation items).
        Users are scored ``batch_size`` at a time (by default as many as keep one batch's dense
        scores within ``SCORE_BATCH_BYTES``), never all users x items at once.
        """
        if k <= 0:
            raise ValueError("k must be positive")
        self._require_fitted()
        batch_size = batch_size or score_batch_rows(len(self.item_map))
        users = self.user_map.coerce(user_ids)
        user_index = self.user_map.index(users)
        masked = self.seen if exclude_seen else None
        if exclude is not None and not exclude.empty:
            extra = self.interaction_matrix(exclude)
            masked = extra if masked is None else (masked + extra)
        frames = [
            self._top_k(users[start : start + batch_size], user_index[start : start + batch_size], k, masked)
            for start in range(0, len(users), batch_size)
        ]
        if not frames:
            return pd.DataFrame(columns=RECOMMENDATION_COLUMNS)
        return pd.concat(frames, ignore_index=True)

    def recommend_one(self, user_id: int | str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``recommend([user_id], k)`` as item ids and scores: the same list without building a
        frame, which cost a serving request more than the scoring itself."""
        if k <= 0:
            raise ValueError("k must be positive")
        self._require_fitted()
        row = self.user_map.row(user_id)
        if row is None:
            raise KeyError(f"unknown ids: {[user_id]}")
        scores = _maskable(self._score(np.array([row])))[0]
        scores[self.seen_items(row)] = -np.inf
        return self._best(scores, k)

    def seen_items(self, user_index: int) -> np.ndarray:
        """Item indices of one user's training interactions (the CSR row, read without scipy's indexing)."""
        return self.seen.indices[self.seen.indptr[user_index] : self.seen.indptr[user_index + 1]]

    def unseen_known(self, user_row: int, item_ids: np.ndarray) -> np.ndarray:
        """Which of ``item_ids`` the model knows but the user at ``user_row`` did not train on:
        what a history has that the model's own list for the user does not use."""
        rows = self.item_map.rows(item_ids)
        seen = np.zeros(len(self.item_map) + 1, dtype=bool)  # the extra last slot answers row -1
        seen[self.seen_items(user_row)] = True
        return (rows >= 0) & ~seen[rows]

    def _best(self, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Item ids and scores of the top ``k`` of one score row; -inf (masked) items are dropped."""
        top = _row_top_k(scores, min(k, len(scores)))
        top = top[np.isfinite(scores[top])]
        return self.item_map.ids[top], scores[top].astype(np.float64)

    def _top_k(self, users: np.ndarray, index: np.ndarray, k: int, masked: sp.csr_matrix | None) -> pd.DataFrame:
        masked_rows = None if masked is None else masked[index]
        scores, columns = self._ranking_scores(index, k, masked_rows)
        scores = _maskable(scores)
        if masked_rows is not None:
            rows, items = masked_rows.nonzero()
            if columns is not None:
                rows, items = _within_columns(columns, rows, items)
            scores[rows, items] = -np.inf
        return self._ranked(users, scores, k, columns)

    def _ranking_scores(
        self, user_index: np.ndarray, k: int, masked_rows: sp.csr_matrix | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """A batch's scores for its top ``k``, and the sorted item columns they cover (None: all).

        A model whose every top ``k`` lies among fewer items (those a pruned fit kept, a prefix of
        one popularity order) scores only those; ranking the rest was most of its evaluation.
        ``masked_rows`` are the batch's masked items, which a prefix must reach past.
        """
        return self._score(user_index), None

    def _ranked(self, users: np.ndarray, scores: np.ndarray, k: int, columns: np.ndarray | None = None) -> pd.DataFrame:
        """The top-``k`` rows of a users x items score matrix as ``user_id, item_id, rank, score``;
        with ``columns`` the matrix covers those items only.

        Items scored -inf (masked) are dropped, so a list can be shorter than ``k``.
        """
        k = min(k, scores.shape[1])
        top = np.stack([_row_top_k(row, k) for row in scores]) if len(scores) else np.zeros((0, k), dtype=np.int64)
        item_ids = self.item_map.ids if columns is None else self.item_map.ids[columns]
        frame = pd.DataFrame(
            {
                "user_id": np.repeat(users, k),
                "item_id": item_ids[top.ravel()],
                "rank": np.tile(np.arange(1, k + 1), len(users)),
                "score": np.take_along_axis(scores, top, axis=1).ravel().astype(np.float64),
            }
        )
        return frame[np.isfinite(frame.score)].reset_index(drop=True)

    def recommend_for_history(
        self, history: Sequence[int], k: int, exclude: Iterable[int] = ()
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item ids and scores for a user described by ``history`` alone: item ids, oldest
        first, as they are now rather than at training time. Items the model does not know are
        ignored; history items and ``exclude`` are never recommended."""
        if not self.scores_any_history:
            raise NotImplementedError(f"{self.name} scores only the histories it was trained on")
        if k <= 0:
            raise ValueError("k must be positive")
        self._require_fitted()
        known = self._known_items(history)
        scores = _maskable(self._score_histories([known]))[0]
        scores[known] = -np.inf
        if excluded := list(exclude):
            scores[self._known_items(excluded)] = -np.inf
        return self._best(scores, k)

    def _known_items(self, item_ids: Iterable[Any] | np.ndarray) -> np.ndarray:
        """Indices of the known ones among ``item_ids``, in their order."""
        rows = self.item_map.rows(item_ids)
        return rows[rows >= 0]

    def history_matrix(self, histories: Sequence[np.ndarray]) -> sp.csr_matrix:
        """Binary rows x items matrix of item-index histories, the same encoding as ``seen``."""
        rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
        cols = np.concatenate(histories) if len(histories) else np.zeros(0, dtype=np.int64)
        matrix = sp.csr_matrix(
            (np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(len(histories), len(self.item_map))
        )
        matrix.data[:] = 1.0
        return matrix

    def _score_histories(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of every item for each history of item indices (oldest first), shape (len, items)."""
        raise NotImplementedError(f"{self.name} scores only the histories it was trained on")

    # -- persistence --------------------------------------------------------------------
    def save(self, path: Path) -> Path:
        """Write config, metadata and arrays (id maps, seen items, weights) under ``path``."""
        self._require_fitted()
        path.mkdir(parents=True, exist_ok=True)
        config = {"recommender": self.name, "params": self.params.model_dump(mode="json"), "metadata": self.metadata}
        (path / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True, default=str))
        arrays = {
            "user_ids": self.user_map.ids,
            "item_ids": self.item_map.ids,
            "seen_indptr": self.seen.indptr,
            "seen_indices": self.seen.indices,
            **{f"state_{key}": value for key, value in self._state().items()},
        }
        # Uncompressed: dense float weights shrink ~10% under zlib, which costs ~25x the write time
        # (a 10k-item EASE matrix: minutes instead of seconds).
        np.savez(path / ARRAYS_FILE, **arrays)
        self._save_files(path)
        return path

    @classmethod
    def load(cls, path: Path) -> Recommender:
        """Load any saved recommender; the concrete class is read from its config."""
        config = json.loads((path / CONFIG_FILE).read_text())
        recommender = RECOMMENDERS[config["recommender"]](**config["params"])
        recommender.metadata = config["metadata"]
        with np.load(path / ARRAYS_FILE, allow_pickle=False) as arrays:
            recommender.user_map = IdMap(arrays["user_ids"])
            recommender.item_map = IdMap(arrays["item_ids"])
            shape = (len(recommender.user_map), len(recommender.item_map))
            data = np.ones(len(arrays["seen_indices"]), dtype=np.float32)
            recommender.seen = sp.csr_matrix((data, arrays["seen_indices"], arrays["seen_indptr"]), shape=shape)
            recommender._restore({k.removeprefix("state_"): arrays[k] for k in arrays.files if k.startswith("state_")})
        recommender._load_files(path)
        return recommender

    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]:
        """Arrays that, with the id maps and params, fully determine the fitted model."""

    @abstractmethod
    def _restore(self, state: dict[str, np.ndarray]) -> None:
        """Inverse of ``_state``."""

    def _save_files(self, path: Path) -> None:  # noqa: B027 (an optional hook: most models are arrays only)
        """Write state that is not an array (nested models, a text model format) beside the arrays."""

    def _load_files(self, path: Path) -> None:  # noqa: B027 (an optional hook, as above)
        """Inverse of ``_save_files``, after ``_restore``."""

    def _require_fitted(self) -> None:
        if self.user_map is None or self.item_map is None:
            raise NotFittedError(f"{self.name} is not fitted; call fit() or load() first")


def score_batch_rows(n_items: int) -> int:
    """Users per ranking batch: as many as keep a batch's float64 scores within ``SCORE_BATCH_BYTES``."""
    return max(1, SCORE_BATCH_BYTES // (8 * max(n_items, 1)))


def _within_columns(columns: np.ndarray, rows: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (row, item) pairs whose item is among the sorted ``columns``, items as positions in them."""
    positions = np.minimum(np.searchsorted(columns, items), max(len(columns) - 1, 0))
    inside = columns[positions] == items if len(columns) else np.zeros(len(items), dtype=bool)
    return rows[inside], positions[inside]


def most_masked(masked_rows: sp.csr_matrix | None) -> int:
    """The most masked items of any row of a batch (0 without a mask)."""
    return 0 if masked_rows is None else int(np.diff(masked_rows.indptr).max(initial=0))


def order_prefix(scores: np.ndarray, length: int) -> np.ndarray:
    """The sorted columns of the first ``length`` items of the ranking by ``scores`` (ties by smaller
    column): a user-independent ranking's top k after masking m items lies within ``k + m`` of them."""
    return np.sort(np.argsort(-scores, kind="stable")[:length])


def _maskable(scores: np.ndarray | np.matrix) -> np.ndarray:
    """A batch's scores as a float array, to mask in place. Float32 scores stay float32: converting
    a batch to float64 took 29 % of a 200k-user x 50k-item evaluation, and it changes neither the
    order nor the ties."""
    scores = np.asarray(scores)
    return scores if scores.dtype.kind == "f" else scores.astype(np.float64)


# Rows at least this long are first narrowed to the scores above a threshold read off a sample.
SAMPLED_TOP_K_ITEMS = 4096
_SAMPLE_STRIDE = 16


def _row_top_k(row: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best scores, ties broken by smaller index (= smaller item id).

    A long row is narrowed first: the k-th best of every 16th score is a threshold that at least
    k scores reach, so the top k are the scores above it, topped up by the first ones equal to
    it. That reads the row twice instead of partitioning it, and partitioning a row of mostly
    equal scores (a sparse model's zeros) took a millisecond per 50k items.
    """
    if len(row) >= max(SAMPLED_TOP_K_ITEMS, 4 * _SAMPLE_STRIDE * k):
        sample = row[::_SAMPLE_STRIDE]
        threshold = np.partition(sample, len(sample) - k)[len(sample) - k]
        if np.isnan(threshold):  # no score compares with NaN: rank as the whole-row partition does
            return _partitioned_top_k(row, k)
        above = np.flatnonzero(row > threshold)
        if len(above) >= k:
            return above[_partitioned_top_k(row[above], k)]
        return _above_then_first_ties(row, above, threshold, k)
    return _partitioned_top_k(row, k)


def _partitioned_top_k(row: np.ndarray, k: int) -> np.ndarray:
    """``_row_top_k`` by partitioning the whole row.

    Partitioning alone picks arbitrary members among items tied at the k-th score, so when more
    items tie there than it kept, the tied ones are chosen by index; the top k is then always a
    prefix of the full ranking.
    """
    chosen = np.argpartition(row, len(row) - k)[len(row) - k :]
    scores = row[chosen]
    cut = scores.min()
    if np.count_nonzero(row == cut) > np.count_nonzero(scores == cut):  # rare: more ties than places
        return _above_then_first_ties(row, chosen[scores > cut], cut, k)
    return chosen[np.lexsort((chosen, -scores))]


def _above_then_first_ties(row: np.ndarray, above: np.ndarray, cut: float, k: int) -> np.ndarray:
    """``above`` (the indices scoring more than ``cut``, fewer than ``k``) topped up to ``k`` by the
    first indices scoring ``cut``, best first, ties by smaller index."""
    chosen = np.concatenate([above, np.flatnonzero(row == cut)[: k - len(above)]])
    return chosen[np.lexsort((chosen, -row[chosen]))]


def load_recommender(path: Path) -> Recommender:
    """Load a saved recommender of any registered class."""
    return Recommender.load(path)


def new_recommender(name: str, params: dict[str, Any]) -> Recommender:
    """An unfitted recommender of the registered class ``name``."""
    if name not in RECOMMENDERS:
        raise KeyError(f"unknown recommender {name!r}; known: {sorted(RECOMMENDERS)}")
    return RECOMMENDERS[name](**params)
