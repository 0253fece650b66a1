"""Bayesian Personalized Ranking matrix factorization in PyTorch, trained on CPU."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field

from recs_platform.models.base import Logger, Recommender, TrainingData, Validator, register
from recs_platform.models.schedule import ScheduleParams, train_epochs


@register
class BPRRecommender(Recommender):
    """Matrix factorization with item biases, trained on (user, positive, negative) triples.

    Negatives are sampled uniformly among the user's unseen items. With validation data the
    model is scored every ``eval_every`` epochs and the best epoch's weights are kept; training
    stops after ``patience`` evaluations without improvement.
    """

    class Params(ScheduleParams):
        factors: int = Field(64, ge=1, description="Dimensions of the user and item vectors.")
        batch_size: int = Field(2048, ge=1, description="(user, positive, negative) triples per optimizer step.")
        learning_rate: float = Field(0.005, gt=0, description="Adam learning rate.")
        weight_decay: float = Field(3e-5, ge=0, description="Adam weight decay (L2 on every parameter).")

    name = "bpr"

    def _fit(self, data: TrainingData, validate: Validator | None, log: Logger) -> None:
        matrix = data.matrix
        params = self.params
        rng = np.random.default_rng(params.seed)
        torch.manual_seed(params.seed)
        n_users, n_items = matrix.shape
        self.user_factors = torch.nn.Embedding(n_users, params.factors)
        self.item_factors = torch.nn.Embedding(n_items, params.factors)
        self.item_bias = torch.nn.Embedding(n_items, 1)
        for table in (self.user_factors, self.item_factors):
            torch.nn.init.normal_(table.weight, std=0.1)
        torch.nn.init.zeros_(self.item_bias.weight)
        modules = [self.user_factors, self.item_factors, self.item_bias]
        optimizer = torch.optim.Adam(
            [p for m in modules for p in m.parameters()],
            lr=params.learning_rate,
            weight_decay=params.weight_decay,
        )
        users, positives = matrix.nonzero()
        train_epochs(self, lambda: self._train_epoch(matrix, users, positives, optimizer, rng), validate, log)

    def _train_epoch(
        self,
        matrix: sp.csr_matrix,
        users: np.ndarray,
        positives: np.ndarray,
        optimizer: torch.optim.Optimizer,
        rng: np.random.Generator,
    ) -> float:
        order = rng.permutation(len(users))
        negatives = self._sample_negatives(matrix, users[order], rng)
        batch_size, total = self.params.batch_size, 0.0
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            u = torch.from_numpy(users[batch])
            i = torch.from_numpy(positives[batch])
            j = torch.from_numpy(negatives[start : start + batch_size])
            margin = self._pair_score(u, i) - self._pair_score(u, j)
            loss = -torch.nn.functional.logsigmoid(margin).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        return total / len(order)

    @staticmethod
    def _sample_negatives(matrix: sp.csr_matrix, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Uniform items, resampled (a few rounds) where they hit one of the user's positives."""
        negatives = rng.integers(0, matrix.shape[1], size=len(users))
        for _ in range(10):
            clash = np.asarray(matrix[users, negatives]).ravel() > 0
            if not clash.any():
                break
            negatives[clash] = rng.integers(0, matrix.shape[1], size=int(clash.sum()))
        return negatives

    def _pair_score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        dot = (self.user_factors(users) * self.item_factors(items)).sum(dim=1)
        return dot + self.item_bias(items).squeeze(1)

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            users = self.user_factors.weight[torch.from_numpy(user_index)]
            scores = users @ self.item_factors.weight.T + self.item_bias.weight.T
        return scores.numpy()

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": self.user_factors.weight.detach().numpy().copy(),
            "item_factors": self.item_factors.weight.detach().numpy().copy(),
            "item_bias": self.item_bias.weight.detach().numpy().copy(),
        }

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.user_factors = torch.nn.Embedding.from_pretrained(torch.from_numpy(state["user_factors"]))
        self.item_factors = torch.nn.Embedding.from_pretrained(torch.from_numpy(state["item_factors"]))
        self.item_bias = torch.nn.Embedding.from_pretrained(torch.from_numpy(state["item_bias"]))
