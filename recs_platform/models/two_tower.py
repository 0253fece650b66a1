"""Two-tower retrieval model in PyTorch: user and item towers over ids and side features.

Each tower embeds an id (slot 0 is "unknown") plus categorical features and maps them through
an MLP; the score is the dot product. Ids are randomly replaced by the unknown slot during
training (``id_dropout``), so the feature paths alone give usable vectors: that is how users
and items never seen in training are scored. Feature vocabularies are sorted string arrays,
saved with the weights, so a loaded model encodes new feature rows exactly as at fit time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
import torch
from pydantic import Field

from recs_platform.models.base import (
    FeatureColumnParams,
    Logger,
    Recommender,
    TrainingData,
    Validator,
    as_ids,
    register,
)
from recs_platform.models.schedule import ScheduleParams, train_epochs


def vocabulary(values: Iterable[str]) -> np.ndarray:
    """Sorted distinct non-empty strings: a pickle-free category -> index map (index + 1)."""
    strings = np.asarray(list(values), dtype=str)
    return np.unique(strings[strings != ""])


def encode(values: np.ndarray, vocab: np.ndarray) -> np.ndarray:
    """Indices into ``vocab`` shifted by one; 0 for missing or never-seen categories."""
    values = np.asarray(values, dtype=str)
    if len(vocab) == 0:
        return np.zeros(len(values), dtype=np.int64)
    position = np.searchsorted(vocab, values).clip(max=len(vocab) - 1)
    return np.where(vocab[position] == values, position + 1, 0).astype(np.int64)


def as_strings(column: pd.Series) -> np.ndarray:
    """Category values as strings with missing values as "" (never in a vocabulary)."""
    return column.astype("string").fillna("").to_numpy(dtype=str)


def decades(release_year: pd.Series) -> np.ndarray:
    years = pd.to_numeric(release_year, errors="coerce")
    return as_strings((years // 10 * 10).astype("Int64"))


def attribute_tokens(items: pd.DataFrame, columns: list[str]) -> list[list[str]]:
    """Each item's attribute values as ``column=value`` tokens, for one embedding bag. A column
    holds lists (a multi-valued attribute's ``<name>_list``), "|"-separated text or one category."""

    def values(value: object) -> list[str]:
        if isinstance(value, list | tuple | np.ndarray):
            return [str(v) for v in value if str(v)]
        text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
        return [part for part in text.split("|") if part]

    per_column = [[[f"{c}={v}" for v in values(value)] for value in items[c]] for c in columns if c in items]
    if not per_column:
        return [[] for _ in range(len(items))]
    return [[token for tokens in row for token in tokens] for row in zip(*per_column, strict=True)]


def mlp(inputs: int, hidden: int, outputs: int, dropout: float) -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Linear(inputs, hidden), torch.nn.ReLU(), torch.nn.Dropout(dropout), torch.nn.Linear(hidden, outputs)
    )


class TwoTowerNet(torch.nn.Module):
    """The two towers; every embedding table reserves index 0 for unknown/missing."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        user_vocab_sizes: list[int],
        n_genres: int,
        n_decades: int,
        params: TwoTowerRecommender.Params,
    ) -> None:
        super().__init__()
        dim, hidden, out, dropout = params.embedding_dim, params.hidden, params.factors, params.dropout
        self.user_id = torch.nn.Embedding(n_users + 1, dim)
        self.user_fields = torch.nn.ModuleList(torch.nn.Embedding(size + 1, dim) for size in user_vocab_sizes)
        self.user_mlp = mlp(dim * (1 + len(user_vocab_sizes)), hidden, out, dropout)
        self.item_id = torch.nn.Embedding(n_items + 1, dim)
        self.genres = torch.nn.EmbeddingBag(n_genres + 1, dim, mode="mean", padding_idx=0)
        self.decade = torch.nn.Embedding(n_decades + 1, dim)
        self.item_mlp = mlp(3 * dim, hidden, out, dropout)

    def users(self, slots: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        fields = [table(codes[:, i]) for i, table in enumerate(self.user_fields)]
        return self.user_mlp(torch.cat([self.user_id(slots), *fields], dim=1))

    def items(self, slots: torch.Tensor, genres: torch.Tensor, decade: torch.Tensor) -> torch.Tensor:
        return self.item_mlp(torch.cat([self.item_id(slots), self.genres(genres), self.decade(decade)], dim=1))


@register
class TwoTowerRecommender(Recommender):
    """User tower (id + user attributes) and item tower (id + item attributes + release decade), dot product.

    Trained with a sampled softmax: each batch's positives compete against ``negatives``
    uniformly drawn items shared by the batch (the whole catalog when it is smaller, i.e. a
    full softmax on MovieLens-100K). Items with no training interaction use the unknown id
    slot, so they are ranked by their features alone.
    """

    class Params(ScheduleParams, FeatureColumnParams):
        """``user_features`` feed the user tower; ``item_features`` one embedding bag of the item tower."""

        embedding_dim: int = Field(32, ge=1, description="Width of every id and feature embedding.")
        hidden: int = Field(128, ge=1, description="Hidden units of each tower's MLP.")
        factors: int = Field(64, ge=1, description="Dimensions of the user and item vectors that are dotted.")
        dropout: float = Field(0.1, ge=0, lt=1, description="Dropout inside the tower MLPs.")
        id_dropout: float = Field(0.2, ge=0, le=1, description="Share of ids replaced by 'unknown' to train features.")
        negatives: int = Field(
            2048, ge=1, description="Sampled negatives per batch (all items when the catalog is smaller)."
        )
        batch_size: int = Field(1024, ge=1, description="Positive pairs per optimizer step.")
        learning_rate: float = Field(0.002, gt=0, description="Adam learning rate.")
        weight_decay: float = Field(1e-6, ge=0, description="Adam weight decay.")
        eval_every: int = Field(2, ge=1, description="Score the validation split every this many epochs.")
        patience: int = Field(3, ge=1, description="Stop after this many validations without improvement.")
        epochs: int = Field(100, ge=1, description="Most epochs to train; a refit trains exactly the best epoch count.")

    name = "two_tower"
    scores_features = True

    # -- features ----------------------------------------------------------------------
    def _encode_features(self, data: TrainingData) -> None:
        """Vocabularies from the feature frames, and every known user's and item's codes."""
        fields = self.params.user_features
        users = _aligned(data.users, "user_id", self.user_map.ids, fields)
        items = _aligned(data.items, "item_id", self.item_map.ids, [*self.params.item_features, "release_year"])
        self.vocab = {field: vocabulary(as_strings(users[field])) for field in fields}
        genres = attribute_tokens(items, self.params.item_features)
        self.vocab["genre"] = vocabulary(g for item in genres for g in item)
        self.vocab["decade"] = vocabulary(decades(items.release_year))
        self.user_codes = self._user_codes(users)
        width = max([1, *map(len, genres)])
        self.item_genres = np.zeros((len(genres), width), dtype=np.int64)
        for row, item in enumerate(genres):
            self.item_genres[row, : len(item)] = encode(np.asarray(item, dtype=str), self.vocab["genre"])
        self.item_decade = encode(decades(items.release_year), self.vocab["decade"])
        # Items without training interactions keep the unknown id slot: features only.
        trained = np.asarray(data.matrix.sum(axis=0)).ravel() > 0
        self.item_slot = np.where(trained, np.arange(1, len(trained) + 1), 0).astype(np.int64)

    def _user_codes(self, users: pd.DataFrame) -> np.ndarray:
        columns = [encode(_strings_or_missing(users, field), self.vocab[field]) for field in self.params.user_features]
        return np.stack(columns, axis=1) if columns else np.zeros((len(users), 0), dtype=np.int64)

    # -- training ----------------------------------------------------------------------
    def _build_net(self) -> None:
        sizes = [len(self.vocab[field]) for field in self.params.user_features]
        self.net = TwoTowerNet(
            len(self.user_map),
            len(self.item_map),
            sizes,
            len(self.vocab["genre"]),
            len(self.vocab["decade"]),
            self.params,
        )

    def _fit(self, data: TrainingData, validate: Validator | None, log: Logger) -> None:
        params = self.params
        rng = np.random.default_rng(params.seed)
        torch.manual_seed(params.seed)
        self._encode_features(data)
        self._build_net()
        optimizer = torch.optim.Adam(self.net.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
        users, items = data.matrix.nonzero()
        train_epochs(self, lambda: self._train_epoch(users, items, optimizer, rng), validate, log)

    def _train_epoch(
        self, users: np.ndarray, items: np.ndarray, optimizer: torch.optim.Optimizer, rng: np.random.Generator
    ) -> float:
        self.net.train()
        order = rng.permutation(len(users))
        batch_size, total = self.params.batch_size, 0.0
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            loss = self._batch_loss(users[batch], items[batch], rng)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        return total / len(order)

    def _batch_loss(self, users: np.ndarray, items: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        n_items = len(self.item_map)
        candidates = (
            np.arange(n_items)
            if self.params.negatives >= n_items
            else rng.choice(n_items, self.params.negatives, replace=False)
        )
        user_vectors = self._user_vectors(users, self._dropped(users + 1, rng))
        positives = self._item_vectors(items, self._dropped(self.item_slot[items], rng))
        negatives = self._item_vectors(candidates, self._dropped(self.item_slot[candidates], rng))
        negative_logits = user_vectors @ negatives.T
        # A sampled candidate equal to the row's positive is not a negative.
        clash = torch.from_numpy(candidates[None, :] == items[:, None])
        negative_logits = negative_logits.masked_fill(clash, -torch.inf)
        logits = torch.cat([(user_vectors * positives).sum(dim=1, keepdim=True), negative_logits], dim=1)
        return torch.nn.functional.cross_entropy(logits, torch.zeros(len(users), dtype=torch.long))

    def _dropped(self, slots: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Id slots with a random ``id_dropout`` share set to unknown, to train the feature paths."""
        return np.where(rng.random(len(slots)) < self.params.id_dropout, 0, slots)

    # -- scoring -----------------------------------------------------------------------
    def _user_vectors(self, users: np.ndarray, slots: np.ndarray, codes: np.ndarray | None = None) -> torch.Tensor:
        codes = self.user_codes[users] if codes is None else codes
        return self.net.users(torch.from_numpy(slots), torch.from_numpy(codes))

    def _item_vectors(self, items: np.ndarray, slots: np.ndarray) -> torch.Tensor:
        genres, decade = torch.from_numpy(self.item_genres[items]), torch.from_numpy(self.item_decade[items])
        return self.net.items(torch.from_numpy(slots), genres, decade)

    def _catalog_scores(self, user_vectors: Callable[[], torch.Tensor]) -> np.ndarray:
        self.net.eval()
        with torch.no_grad():
            items = np.arange(len(self.item_map))
            return (user_vectors() @ self._item_vectors(items, self.item_slot).T).numpy()

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        return self._catalog_scores(lambda: self._user_vectors(user_index, user_index + 1))

    def recommend_for_features(
        self, user_features: pd.DataFrame, k: int, exclude_items: Iterable[int] | None = None
    ) -> pd.DataFrame:
        """Top-``k`` items for users described only by feature columns (``user_id`` plus the
        ``user_features`` columns), e.g. users absent from training; the id slot is unknown
        even for known ids. ``exclude_items`` are item ids withheld from every user."""
        if k <= 0:
            raise ValueError("k must be positive")
        self._require_fitted()
        unknown = np.zeros(len(user_features), dtype=np.int64)
        codes = self._user_codes(user_features)
        scores = self._catalog_scores(lambda: self._user_vectors(unknown, unknown, codes)).astype(np.float64)
        if exclude_items is not None:
            excluded = self.item_map.coerce(list(exclude_items))
            scores[:, self.item_map.index(excluded[self.item_map.contains(excluded)])] = -np.inf
        return self._ranked(as_ids(user_features.user_id.to_numpy()), scores, k)

    # -- persistence -------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        weights = {f"net.{key}": value.detach().numpy().copy() for key, value in self.net.state_dict().items()}
        vocab = {f"vocab.{key}": value for key, value in self.vocab.items()}
        codes = {"user_codes": self.user_codes, "item_genres": self.item_genres, "item_decade": self.item_decade}
        return {**weights, **vocab, **codes, "item_slot": self.item_slot}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.vocab = {key.removeprefix("vocab."): value for key, value in state.items() if key.startswith("vocab.")}
        self.user_codes, self.item_genres = state["user_codes"], state["item_genres"]
        self.item_decade, self.item_slot = state["item_decade"], state["item_slot"]
        self._build_net()
        weights = {key.removeprefix("net."): torch.from_numpy(v) for key, v in state.items() if key.startswith("net.")}
        self.net.load_state_dict(weights)


def _aligned(frame: pd.DataFrame | None, key: str, ids: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """``columns`` of ``frame`` in the order of ``ids``; rows or columns it lacks are missing."""
    if frame is None:
        return pd.DataFrame(index=ids, columns=columns)
    present = frame.drop_duplicates(key).set_index(key).reindex(ids)
    return present.reindex(columns=columns)


def _strings_or_missing(frame: pd.DataFrame, column: str) -> np.ndarray:
    return as_strings(frame[column]) if column in frame else np.full(len(frame), "", dtype=str)
