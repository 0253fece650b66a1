"""Closed-form sweeps side by side: the default EASE and DLAE grids fitted independently (each fit
solving on its own, as before sweeps shared work: a dense n x n inverse per configuration) and with
one shared ``FitCache`` (``closed_form.RidgeSolver``: one Gram matrix, or users x users work with one
eigendecomposition for every EASE l2), on synthetic training matrices.

    python bench/closed_form_sweeps.py --shape 610x3000 --shape 4000x2000

A shape is users x items; fewer users than items takes the users x users path. Prints a markdown
table of fit seconds (weights only, nothing saved) and the largest weight difference.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recs_platform.data.synthetic import SyntheticConfig, generate
from recs_platform.models.base import FitCache
from recs_platform.models.neighbors import DLAERecommender, EASERecommender
from recs_platform.sweeps import load_sweeps


def training_rows(n_users: int, n_items: int) -> pd.DataFrame:
    events = generate(SyntheticConfig(n_users=n_users, n_items=n_items, n_events=n_users * 100)).events
    return events[["user_id", "item_id"]].drop_duplicates()


def dense_inverse_fit(model: EASERecommender, rows: pd.DataFrame) -> np.ndarray:
    """The weights as every fit computed them before sweeps shared work: Gram, penalty, dense inverse."""
    users, items = pd.factorize(rows.user_id, sort=True)[0], pd.factorize(rows.item_id, sort=True)[0]
    matrix = sp.csr_matrix((np.ones(len(rows)), (users, items)))  # the column order of fit's sorted id map
    gram = (matrix.T @ matrix).toarray().astype(np.float64)
    penalty = model._dropout_weight() * np.diag(gram) + model.params.l2
    gram[np.diag_indices_from(gram)] += penalty
    return model._weights(np.linalg.inv(gram), penalty)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", action="append", default=[], help="USERSxITEMS (repeatable)")
    parser.add_argument("--shared-only", action="store_true", help="skip the dense-inverse reference (slow)")
    args = parser.parse_args()
    sweeps = {name: load_sweeps(Path("config/recommenders"))[name] for name in ("ease", "dlae")}
    classes = {"ease": EASERecommender, "dlae": DLAERecommender}
    print("| users x items | sweep | configs | dense inverse per config s | shared cache s | ratio | max abs diff |")
    print("|---|---|--:|--:|--:|--:|--:|")
    for shape in args.shape or ["610x3000"]:
        n_users, n_items = (int(part) for part in shape.split("x"))
        rows = training_rows(n_users, n_items)
        for name, sweep in sweeps.items():
            configs = sweep.configs
            cache, started = FitCache(), time.perf_counter()
            shared = [classes[name](**c.params).fit(rows, cache=cache).item_weights for c in configs]
            together = time.perf_counter() - started
            if args.shared_only:
                print(f"| {n_users:,} x {n_items:,} | {name} | {len(configs)} | not run | {together:.1f} | | |")
                continue
            started = time.perf_counter()
            reference = [dense_inverse_fit(classes[name](**c.params), rows) for c in configs]
            independent = time.perf_counter() - started
            diff = max(float(np.abs(a - b).max()) for a, b in zip(reference, shared, strict=True))
            print(
                f"| {n_users:,} x {n_items:,} | {name} | {len(configs)} | {independent:.1f} | {together:.1f}"
                f" | {independent / together:.1f}x | {diff:.1e} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
