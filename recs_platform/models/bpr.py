"""Bayesian Personalized Ranking matrix factorization in PyTorch, trained on CPU."""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field

from recs_platform.models.base import CannotFit, Logger, Recommender, TrainingData, Validator, register
from recs_platform.models.schedule import ScheduleParams, train_epochs


@register
class BPRRecommender(Recommender):
    """Matrix factorization with item biases, trained on (user, positive, negative) triples.

    Negatives are sampled uniformly among the user's unseen items; with ``ignored_negatives`` p, a
    share p of them is drawn instead from what the user was served and did not consume (for users
    with such impressions): explicit negatives from the serving logs. With validation data the
    model is scored every ``eval_every`` epochs and the best epoch's weights are kept; training
    stops after ``patience`` evaluations without improvement.
    """

    class Params(ScheduleParams):
        factors: int = Field(64, ge=1, description="Dimensions of the user and item vectors.")
        batch_size: int = Field(2048, ge=1, description="(user, positive, negative) triples per optimizer step.")
        learning_rate: float = Field(0.005, gt=0, description="Adam learning rate.")
        weight_decay: float = Field(3e-5, ge=0, description="Adam weight decay (L2 on every parameter).")
        ignored_negatives: float = Field(
            0.0, ge=0, le=1, description="Share of negatives drawn from served items the user did not consume."
        )
        sparse_updates: bool = Field(
            False,
            description="Update only the rows a batch touches (sparse gradients, SparseAdam, weight_decay as an L2"
            " penalty on those rows): a step costs what its batch holds rather than every user and item vector.",
        )

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
        optimizer = self._optimizer()
        tables = self._row_gradients()
        users, positives = matrix.nonzero()
        ignored = self._ignored_matrix(data)
        if ignored.nnz:
            users_with = int((np.diff(ignored.indptr) > 0).sum())
            log(f"{self.name}: {ignored.nnz} served-but-ignored items as negatives for {users_with} users")

        def epoch() -> float:
            return self._train_epoch(matrix, ignored, users, positives, optimizer, tables, rng)

        train_epochs(self, epoch, validate, log)

    @property
    def _tables(self) -> tuple[torch.nn.Embedding, torch.nn.Embedding, torch.nn.Embedding]:
        return self.user_factors, self.item_factors, self.item_bias

    def _row_gradients(self) -> list[RowGradients]:
        """How each table's gradient reaches the optimizer, for one training run."""
        return [RowGradients(table, self.params.sparse_updates) for table in self._tables]

    def _optimizer(self) -> torch.optim.Optimizer:
        """Adam over every parameter, or, with ``sparse_updates``, SparseAdam's update of the batch's
        rows (dense Adam touches all users x factors every step: 78 s per epoch at 1M rows, 200k users).

        Dense Adam is torch's fused kernel: the same update in one pass over each tensor instead of
        one per operation (a 10k-item epoch: 0.80-0.83 s before, 0.33 s; bench/scale_fits.py)."""
        weights = [table.weight for table in self._tables]
        if self.params.sparse_updates:
            return RowAdam(weights, lr=self.params.learning_rate)
        return torch.optim.Adam(
            weights, lr=self.params.learning_rate, weight_decay=self.params.weight_decay, fused=True
        )

    def _ignored_matrix(self, data: TrainingData) -> sp.csr_matrix:
        """Users x items, 1 where the user was served the item and ignored it (when used at all)."""
        shape = data.matrix.shape
        if data.ignored is None or self.params.ignored_negatives == 0:
            return sp.csr_matrix(shape, dtype=np.float32)
        ones = np.ones(len(data.ignored), dtype=np.float32)
        return sp.csr_matrix((ones, (data.ignored.user_index, data.ignored.item_index)), shape=shape)

    def _train_epoch(
        self,
        matrix: sp.csr_matrix,
        ignored: sp.csr_matrix,
        users: np.ndarray,
        positives: np.ndarray,
        optimizer: torch.optim.Optimizer,
        tables: list[RowGradients],
        rng: np.random.Generator,
    ) -> float:
        order = rng.permutation(len(users))
        negatives = self._sample_negatives(matrix, users[order], rng)
        self._swap_in_ignored(negatives, ignored, users[order], rng)
        batch_size, total = self.params.batch_size, 0.0
        user_table, item_table, bias_table = tables
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            # Positives and negatives in one lookup: one gradient per table, not two to add up.
            items = torch.from_numpy(np.concatenate([positives[batch], negatives[start : start + batch_size]]))
            user_rows = user_table.lookup(torch.from_numpy(users[batch]))
            item_rows, bias_rows = item_table.lookup(items), bias_table.lookup(items)
            # Positive and negative scores as one (2, batch) product, the user rows broadcast over
            # both: slicing the rows instead would make backward fill a zero tensor of all of them
            # per slice, and concatenating the user rows twice copied them forward and back.
            n = len(batch)
            scores = (item_rows.view(2, n, -1) * user_rows).sum(dim=2) + bias_rows.view(2, n)
            positive, negative = scores
            loss = -torch.nn.functional.logsigmoid(positive - negative).mean()
            loss = loss + self._batch_penalty((user_rows, item_rows, bias_rows), n)
            loss.backward()
            for table in tables:
                table.hand_over()
            optimizer.step()
            for table in tables:
                table.clear()
            total += loss.item() * len(batch)
        return total / len(order)

    def _batch_penalty(self, rows: tuple[torch.Tensor, ...], batch_size: int) -> torch.Tensor:
        """With sparse updates, weight_decay is an L2 penalty on the rows the batch looked up (user,
        positive and negative vectors and biases, as in Rendle's BPR); dense Adam applies it to
        every parameter itself."""
        if not self.params.sparse_updates:
            return torch.zeros(())
        return self.params.weight_decay * sum(row.pow(2).sum() for row in rows) / batch_size

    @staticmethod
    def _sample_negatives(matrix: sp.csr_matrix, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Uniform items, resampled (a few rounds) where they hit one of the user's positives. Only
        the draws just resampled are looked up again: the others were already clear."""
        negatives = rng.integers(0, matrix.shape[1], size=len(users))
        pending = np.arange(len(users))
        for _ in range(10):
            pending = pending[np.asarray(matrix[users[pending], negatives[pending]]).ravel() > 0]
            if not len(pending):
                break
            negatives[pending] = rng.integers(0, matrix.shape[1], size=len(pending))
        return negatives

    def _swap_in_ignored(
        self, negatives: np.ndarray, ignored: sp.csr_matrix, users: np.ndarray, rng: np.random.Generator
    ) -> None:
        """Replace a share of ``negatives`` (in place) by random ignored items of the same user."""
        if not ignored.nnz:
            return
        counts = np.diff(ignored.indptr)[users]
        chosen = (counts > 0) & (rng.random(len(users)) < self.params.ignored_negatives)
        picks = ignored.indptr[users[chosen]] + (rng.random(int(chosen.sum())) * counts[chosen]).astype(np.int64)
        negatives[chosen] = ignored.indices[picks]

    def _score(self, user_index: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            users = self.user_factors.weight[torch.from_numpy(user_index)]
            # The bias seeds the product's output: adding it afterwards was another pass over the
            # scores, and appending it as a last factor copied the item table at every batch.
            scores = torch.addmm(self.item_bias.weight.T, users, self.item_factors.weight.T)
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


class RowGradients:
    """The gradient of one embedding table through the rows a batch looked up.

    Through ``nn.Embedding``, each lookup's backward returns a new zero-filled table for a dense
    optimizer: 5 MB for 10k items x 128 factors, filled twice a step (positives and negatives) and
    then added up, which was most of an epoch (docs/benchmarks.md). Here the dense gradient is one
    persistent table, written at the batch's rows before the step and zeroed at them after it; for
    SparseAdam it is a sparse tensor of those rows. The optimizer sees the same gradient either way.
    """

    def __init__(self, table: torch.nn.Embedding, sparse: bool) -> None:
        self.weight = table.weight
        self.sparse = sparse
        self._rows = torch.zeros(0, dtype=torch.int64)
        self._looked_up = torch.zeros(0)
        if not sparse:
            self.weight.grad = torch.zeros_like(self.weight)

    def lookup(self, rows: torch.Tensor) -> torch.Tensor:
        """The table's ``rows``, as a leaf of the batch's graph."""
        self._rows = rows.to(torch.int64)  # what index_fill_ takes
        self._looked_up = self.weight.detach().index_select(0, self._rows).requires_grad_()
        return self._looked_up

    def hand_over(self) -> None:
        """Give the table the gradient of the rows looked up (after ``backward``)."""
        if self.sparse:
            self.weight.grad = torch.sparse_coo_tensor(
                self._rows.unsqueeze(0), self._looked_up.grad, self.weight.shape, check_invariants=False
            )
        else:
            self.weight.grad.index_add_(0, self._rows, self._looked_up.grad)

    def clear(self) -> None:
        """Zero the dense gradient where it was written (after the optimizer's step). A table at most
        four times the rows written is zeroed whole, which costs less: 10k x 128 after 4,096 rows,
        123 µs against 645 µs at the rows (bench/scale_fits.py --only row_gradients)."""
        if self.sparse:
            return
        if self.weight.numel() <= 4 * self._looked_up.numel():
            self.weight.grad.zero_()
        else:
            self.weight.grad.index_fill_(0, self._rows, 0.0)


class RowAdam(torch.optim.Optimizer):
    """``torch.optim.SparseAdam``'s update, the same floats bit for bit, with the moments read and
    written at the gradient's rows by index.

    SparseAdam reads the moments through ``sparse_mask`` and adds its updates as sparse tensors: at
    10M events that was three quarters of a BPR epoch, and this takes about half its time per
    step (bench/scale_fits.py --only sparse_adam).
    """

    def __init__(
        self, params: list[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure: None = None) -> None:
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self._update(param, param.grad.coalesce(), group)

    def _update(self, param: torch.Tensor, grad: torch.Tensor, group: dict) -> None:
        """One parameter's step: its moments and weights change at the gradient's (unique) rows only."""
        state = self.state[param]
        if not state:
            state.update(step=0, exp_avg=torch.zeros_like(param), exp_avg_sq=torch.zeros_like(param))
        state["step"] += 1
        rows, values = grad._indices()[0], grad._values()
        if not values.numel():
            return
        (beta1, beta2), step = group["betas"], state["step"]
        old_mean, old_square = state["exp_avg"].index_select(0, rows), state["exp_avg_sq"].index_select(0, rows)
        mean = values.sub(old_mean).mul_(1 - beta1).add_(old_mean)
        square = values.pow(2).sub_(old_square).mul_(1 - beta2).add_(old_square)
        state["exp_avg"].index_copy_(0, rows, mean)
        state["exp_avg_sq"].index_copy_(0, rows, square)
        step_size = group["lr"] * math.sqrt(1 - beta2**step) / (1 - beta1**step)
        param.index_add_(0, rows, mean.div_(square.sqrt_().add_(group["eps"])).mul_(-step_size))


@register
class FeedbackBPRRecommender(BPRRecommender):
    """BPR that learns from the serving logs: half of its negatives, for users who were served
    something, are items they were shown and ignored. Evaluated beside plain BPR.

    Before anything was served and ignored it cannot fit (``CannotFit``, so a sweep lists it as
    skipped with the reason): it would be plain BPR under another name, a copy of a fit the BPR
    sweep makes, and it could be deployed as a model that learned from feedback it never had.
    """

    class Params(BPRRecommender.Params):
        ignored_negatives: float = Field(
            0.5, ge=0, le=1, description="Share of negatives drawn from served items the user did not consume."
        )

    name = "bpr_feedback"

    def _fit(self, data: TrainingData, validate: Validator | None, log: Logger) -> None:
        if self.params.ignored_negatives > 0 and (data.ignored is None or data.ignored.empty):
            raise CannotFit("no served-and-ignored impressions yet: without them bpr_feedback is plain BPR")
        super()._fit(data, validate, log)
