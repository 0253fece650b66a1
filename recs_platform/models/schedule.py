"""The training schedule shared by the PyTorch recommenders: epochs, validation, early stopping."""

import time
from collections.abc import Callable

import numpy as np
import torch
from pydantic import Field

from recs_platform.models.base import Logger, Recommender, RecommenderParams, Validator


class ScheduleParams(RecommenderParams):
    """Epochs and early stopping, shared by every recommender trained with ``train_epochs``."""

    epochs: int = Field(200, ge=1, description="Most epochs to train; a refit trains exactly the best epoch count.")
    eval_every: int = Field(5, ge=1, description="Score the validation split every this many epochs.")
    patience: int = Field(4, ge=1, description="Stop after this many validations without improvement.")
    seed: int = Field(2020, description="Seed of weight initialisation and sampling.")
    # One by default: graph steps train side by side on few cores, and torch's threads then spin
    # against each other (a BPR epoch took 22.7 s with two threads against 6.3 s with one, loaded).
    threads: int = Field(1, ge=1, description="PyTorch threads while training.")


def train_epochs(model: Recommender, run_epoch: Callable[[], float], validate: Validator | None, log: Logger) -> None:
    """BPR's schedule for any torch recommender: ``epochs`` epochs, validation every
    ``eval_every``, stop after ``patience`` evaluations without improvement, keep the best weights."""
    params: ScheduleParams = model.params
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(params.threads)
    try:
        _run_schedule(model, run_epoch, validate, log)
    finally:
        torch.set_num_threads(previous_threads)


def _run_schedule(model: Recommender, run_epoch: Callable[[], float], validate: Validator | None, log: Logger) -> None:
    params: ScheduleParams = model.params
    best_score, best_state, best_summary, best_epoch, stale, epoch = -np.inf, None, None, 0, 0, 0
    for epoch in range(1, params.epochs + 1):
        started = time.perf_counter()
        loss = run_epoch()
        message = f"{model.name} epoch {epoch}: loss {loss:.4f} ({time.perf_counter() - started:.2f}s)"
        if validate is not None and epoch % params.eval_every == 0:
            summary = validate.summary()
            score = summary[validate.metric]
            message += f", valid {validate.metric} {score:.4f}"
            if score > best_score:
                best_score, best_state, best_summary, best_epoch, stale = score, model._state(), summary, epoch, 0
            else:
                stale += 1
        log(message)
        if stale >= params.patience:
            log(f"{model.name}: early stop at epoch {epoch}; best valid {validate.metric} {best_score:.4f}")
            break
    if best_state is not None:
        model._restore(best_state)
        model.validation = best_summary  # scored already: the weights kept are the ones it scored
        model.metadata[f"best_valid_{validate.metric}"] = float(best_score)
        model.metadata["best_epoch"] = best_epoch  # what a refit without validation trains for
    model.metadata["epochs_trained"] = epoch
