"""SASRec (Kang & McAuley, 2018): next-item prediction with causal self-attention, in PyTorch.

Each user's training items, ordered by timestamp, form a sequence; the model reads the last
``max_len`` of them and scores every catalog item as the next one. Training uses a full
softmax over the catalog at every position (cheap for catalogs of a few thousand items).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Self

import numpy as np
import pandas as pd
import torch
from pydantic import Field

from recs_platform.models.base import Logger, Recommender, TrainingData, Validator, register
from recs_platform.models.schedule import ScheduleParams, train_epochs


class SASRecNet(torch.nn.Module):
    """Item + position embeddings, pre-norm causal transformer blocks, shared output embedding."""

    def __init__(self, n_items: int, params: SASRecRecommender.Params) -> None:
        super().__init__()
        hidden, max_len, dropout = params.hidden, params.max_len, params.dropout
        self.items = torch.nn.Embedding(n_items + 1, hidden, padding_idx=0)  # 0 pads sequences
        self.positions = torch.nn.Embedding(max_len, hidden)
        for table in (self.items, self.positions):
            # Small weights (as RecBole) keep the initial output logits, dot products with the
            # item table, near zero; unit-variance init makes the first softmax extremely peaked.
            torch.nn.init.normal_(table.weight, std=0.02)
        self.dropout = torch.nn.Dropout(dropout)
        self.blocks = torch.nn.ModuleList(
            torch.nn.TransformerEncoderLayer(
                hidden, params.heads, hidden, dropout, activation="gelu", batch_first=True, norm_first=True
            )
            for _ in range(params.blocks)
        )
        self.norm = torch.nn.LayerNorm(hidden)
        causal = torch.triu(torch.ones(max_len, max_len, dtype=torch.bool), diagonal=1)
        self.register_buffer("causal", causal, persistent=False)

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        """Hidden state after each position of left-padded ``sequences`` (batch, max_len, hidden)."""
        real = (sequences > 0).unsqueeze(-1)
        states = self.dropout(self.items(sequences) + self.positions.weight) * real
        for block in self.blocks:
            # Padding positions are zeroed after every block, as in the reference implementation.
            states = block(states, src_mask=self.causal, is_causal=True) * real
        return self.norm(states)

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        return states @ self.items.weight[1:].T


@register
class SASRecRecommender(Recommender):
    """Sequential recommender: scores the next item after each user's training sequence.

    Without a ``timestamp`` column the input row order is the sequence order. A user's
    sequence is cut, from its end, into windows of ``max_len + 1`` items, so long histories
    train on all their transitions while scoring reads only the last ``max_len`` items.
    """

    class Params(ScheduleParams):
        max_len: int = Field(50, ge=1, description="Most recent items the model reads.")
        hidden: int = Field(64, ge=1, description="Width of item embeddings and attention layers.")
        blocks: int = Field(2, ge=1, description="Transformer blocks.")
        heads: int = Field(1, ge=1, description="Attention heads per block (must divide hidden).")
        dropout: float = Field(0.2, ge=0, lt=1, description="Dropout on embeddings and inside every block.")
        batch_size: int = Field(128, ge=1, description="Sequence windows per optimizer step.")
        learning_rate: float = Field(0.002, gt=0, description="Adam learning rate.")
        weight_decay: float = Field(0.0, ge=0, description="Adam weight decay.")
        patience: int = Field(3, ge=1, description="Stop after this many validations without improvement.")

    name = "sasrec"
    scores_any_history = True

    def _fit(self, data: TrainingData, validate: Validator | None, log: Logger) -> None:
        params = self.params
        rng = np.random.default_rng(params.seed)
        torch.manual_seed(params.seed)
        histories = user_sequences(data.interactions, len(self.user_map))
        self.sequences = np.stack([left_padded(h + 1, params.max_len) for h in histories])
        inputs, targets = training_windows(histories, params.max_len)
        self.net = SASRecNet(len(self.item_map), params)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
        train_epochs(self, lambda: self._train_epoch(inputs, targets, optimizer, rng), validate, log)

    def _train_epoch(
        self, inputs: np.ndarray, targets: np.ndarray, optimizer: torch.optim.Optimizer, rng: np.random.Generator
    ) -> float:
        self.net.train()
        order = rng.permutation(len(inputs))
        batch_size, total, count = self.params.batch_size, 0.0, 0
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            target = torch.from_numpy(targets[batch]) - 1  # -1 marks padding, ignored below
            logits = self.net.logits(self.net(torch.from_numpy(inputs[batch])))
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=-1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            n = int((target >= 0).sum())
            total, count = total + loss.item() * n, count + n
        return total / max(count, 1)

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        return self._score_sequences(self.sequences[user_index])

    def _score_histories(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        return self._score_sequences(np.stack([left_padded(h + 1, self.params.max_len) for h in histories]))

    def _score_sequences(self, sequences: np.ndarray) -> np.ndarray:
        """Next-item scores after each left-padded, shifted-by-one sequence."""
        self.net.eval()
        with torch.no_grad():
            states = self.net(torch.from_numpy(sequences))[:, -1]
            return self.net.logits(states).numpy()

    def with_history(self, interactions: pd.DataFrame) -> Self:
        """A copy that also knows ``interactions`` (known users and items only), without retraining:
        they are appended to the sequences in timestamp order and masked like training items.

        This is how a sequential model is evaluated on the item after the validation one."""
        self._require_fitted()
        known = interactions[
            self.user_map.contains(interactions.user_id) & self.item_map.contains(interactions.item_id)
        ]
        updated = copy.copy(self)
        updated.seen = ((self.seen + self.interaction_matrix(known)) > 0).astype(np.float32).tocsr()
        updated.sequences = self.sequences.copy()
        indexed = self._indexed(known)
        for user, history in zip(np.unique(indexed.user_index), user_sequences(indexed), strict=True):
            current = self.sequences[user][self.sequences[user] > 0]
            updated.sequences[user] = left_padded(np.concatenate([current, history + 1]), self.params.max_len)
        return updated

    def _state(self) -> dict[str, np.ndarray]:
        weights = {f"net.{key}": value.detach().numpy().copy() for key, value in self.net.state_dict().items()}
        return {**weights, "sequences": self.sequences}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.sequences = state["sequences"]
        self.net = SASRecNet(len(self.item_map), self.params)
        weights = {key.removeprefix("net."): torch.from_numpy(v) for key, v in state.items() if key.startswith("net.")}
        self.net.load_state_dict(weights)


def user_sequences(interactions: pd.DataFrame, n_users: int | None = None) -> list[np.ndarray]:
    """Each user's distinct item indices in time order (ties by item index, first occurrence kept).

    With ``n_users`` the list has one (possibly empty) entry per user index; without it, one
    per user present, in user index order.
    """
    keys = ["user_index", "timestamp", "item_index"] if "timestamp" in interactions else ["user_index"]
    ordered = interactions.sort_values(keys, kind="stable").drop_duplicates(["user_index", "item_index"])
    users, items = ordered.user_index.to_numpy(), ordered.item_index.to_numpy(dtype=np.int64)
    if n_users is None:
        return np.split(items, np.flatnonzero(np.diff(users)) + 1) if len(items) else []
    return np.split(items, np.searchsorted(users, np.arange(1, n_users)))


def left_padded(sequence: np.ndarray, length: int) -> np.ndarray:
    """The last ``length`` entries of ``sequence``, zero-padded on the left."""
    tail = sequence[-length:]
    return np.concatenate([np.zeros(length - len(tail), dtype=np.int64), tail])


def training_windows(histories: list[np.ndarray], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(input, next-item target) pairs of left-padded ``max_len`` windows, items shifted by one.

    Windows are cut from the end of each history and overlap by one item, so every transition
    is a target exactly once.
    """
    inputs, targets = [], []
    for history in histories:
        for end in range(len(history), 1, -max_len):
            window = history[max(0, end - max_len - 1) : end] + 1
            inputs.append(left_padded(window[:-1], max_len))
            targets.append(left_padded(window[1:], max_len))
    if not inputs:
        return np.zeros((0, max_len), dtype=np.int64), np.zeros((0, max_len), dtype=np.int64)
    return np.stack(inputs), np.stack(targets)
