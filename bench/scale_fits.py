"""Fit-level costs behind the graph at catalogue scale (docs/benchmarks.md, issue 13), side by side:

    PYTHONPATH=. .venv/bin/python bench/scale_fits.py [--only NAME]

* neighbours: item-kNN's per-row top-k on a 610 x 10,000 binary matrix's cosine similarities, the
  former lexsort of every similarity against ``keep_top_per_row`` (and that both keep the same matrix);
* bpr: one BPR epoch on 1M synthetic rows of 200k users and 50k items, dense Adam (timed on the
  first 200k rows and scaled) against sparse updates, one torch thread;
* ranking: ``recommend`` for 4,000 users x 50k items of a one-epoch BPR model, best of 3 (run it at
  two commits to compare them);
* hugepages: a DLAE fit with dense weights on 610 x 10,000 (90k rows), three times in each of four
  fresh processes, NumPy's huge-page advice on and off by turns (``recs_platform.memory``);
* bpr_epoch: one BPR epoch at that shape (128 factors), Adam as a loop per tensor, ``foreach`` and
  ``fused``;
* factored: the same DLAE fit, saved and loaded, with dense weights and with factored ones;
* row_gradients: zeroing a 10,000 x 128 gradient at a batch's 4,096 rows against zeroing all of it,
  alternately, one torch thread;
* top_k: the top 20 of 500 score rows of 50k items, dense and mostly zero (300 scored items, as a
  co-occurrence or pruned DLAE row), by ``_row_top_k`` (a sampled threshold first) against
  partitioning the whole row, alternately;
* sparse_adam: the optimizer step of a 10M-event BPR batch, torch's SparseAdam against ``RowAdam``
  (its update by row index), alternately, checked to end at the same weights.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.metrics.pairwise import cosine_similarity

from recs_platform.models import closed_form
from recs_platform.models.base import _partitioned_top_k, _row_top_k, load_recommender
from recs_platform.models.bpr import BPRRecommender, RowAdam
from recs_platform.models.neighbors import DLAERecommender, keep_top_per_row


def lexsort_top_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """keep_top_per_row before: one lexsort of every entry by (row, -value, column)."""
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    order = np.lexsort((matrix.indices, -matrix.data, rows))
    keep = order[np.arange(len(order)) - matrix.indptr[rows] < k]
    return sp.csr_matrix((matrix.data[keep], (rows[keep], matrix.indices[keep])), shape=matrix.shape)


def binary_matrix(n_users: int, n_items: int, n_rows: int, seed: int = 0) -> sp.csr_matrix:
    """Users x items with Zipf-like item popularity."""
    rng = np.random.default_rng(seed)
    popularity = 1 / np.arange(1, n_items + 1) ** 0.8
    items = rng.choice(n_items, n_rows, p=popularity / popularity.sum())
    matrix = sp.csr_matrix((np.ones(n_rows, np.float32), (rng.integers(0, n_users, n_rows), items)), (n_users, n_items))
    matrix.data[:] = 1
    return matrix


def neighbours() -> None:
    similarity = cosine_similarity(binary_matrix(610, 10_000, 80_000).T.tocsr(), dense_output=False).tocsr()
    similarity = similarity.astype(np.float32)
    similarity.setdiag(0)
    similarity.eliminate_zeros()
    print(f"| neighbours | lexsort s | partition per row s | same matrix |  ({similarity.nnz:,} similarities)")
    for k in (10, 50):
        started = time.perf_counter()
        before = lexsort_top_per_row(similarity, k)
        middle = time.perf_counter()
        after = keep_top_per_row(similarity, k)
        ended = time.perf_counter()
        same = (before != after).nnz == 0 and np.array_equal(before.indices, after.indices)
        print(f"| {k} | {middle - started:.2f} | {ended - middle:.2f} | {same} |")


def bpr() -> None:
    torch.set_num_threads(1)
    matrix = binary_matrix(200_000, 50_000, 1_000_000)
    users, positives = matrix.nonzero()
    no_ignored = sp.csr_matrix(matrix.shape, dtype=np.float32)
    print("| optimizer | batch | s per epoch |")
    for sparse, batch, timed_rows in [(False, 2048, 200_000), (True, 2048, len(users)), (True, 8192, len(users))]:
        model = BPRRecommender(sparse_updates=sparse, batch_size=batch)
        model.user_factors = torch.nn.Embedding(matrix.shape[0], 64, sparse=sparse)
        model.item_factors = torch.nn.Embedding(matrix.shape[1], 64, sparse=sparse)
        model.item_bias = torch.nn.Embedding(matrix.shape[1], 1, sparse=sparse)
        rng = np.random.default_rng(0)
        started = time.perf_counter()
        tables = model._row_gradients()
        model._train_epoch(
            matrix, no_ignored, users[:timed_rows], positives[:timed_rows], model._optimizer(), tables, rng
        )
        seconds = (time.perf_counter() - started) * len(users) / timed_rows
        print(f"| {'sparse rows (RowAdam)' if sparse else 'dense Adam'} | {batch:,} | {seconds:.1f} |")


def ranking() -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"user_id": rng.integers(0, 4000, 40_000), "item_id": rng.integers(0, 50_000, 40_000)})
    model = BPRRecommender(epochs=1).fit(rows.drop_duplicates(), catalog_items=np.arange(50_000))
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        model.recommend(np.arange(4000), k=10)
        timings.append(time.perf_counter() - started)
    print(f"recommend, 4,000 users x 50,000 items, best of 3: {min(timings):.2f} s")


def wide_rows() -> pd.DataFrame:
    """The issue's 100k-event shape: 610 users, 10,000 items, about 90k distinct rows."""
    users, items = binary_matrix(610, 10_000, 90_000).nonzero()
    return pd.DataFrame({"user_id": users, "item_id": items})


def timed_dlae_fits() -> None:
    """Run in a child: three DLAE fits with dense weights (10k x 10k arrays), seconds each."""
    closed_form.FACTORED_MAX_RANK_SHARE = 0.0
    rows, seconds = wide_rows(), []
    for _ in range(3):
        started = time.perf_counter()
        DLAERecommender().fit(rows, catalog_items=np.arange(10_000))
        seconds.append(f"{time.perf_counter() - started:.2f}")
    print(", ".join(seconds))


def hugepages() -> None:
    print("| NumPy huge-page advice | three dense DLAE fits in one process, s |")
    for advice in ("1", "0", "1", "0"):
        child = subprocess.run(
            [sys.executable, __file__, "--child-dlae-fits"],
            env={**os.environ, "NUMPY_MADVISE_HUGEPAGE": advice},
            capture_output=True,
            text=True,
            check=True,
        )
        print(f"| {'on' if advice == '1' else 'off'} | {child.stdout.strip()} |")


def bpr_epoch() -> None:
    torch.set_num_threads(1)
    matrix = binary_matrix(610, 10_000, 90_000)
    matrix.sum_duplicates()  # canonical and binary, as a training matrix is
    matrix.data[:] = 1
    users, positives = matrix.nonzero()
    no_ignored = sp.csr_matrix(matrix.shape, dtype=np.float32)
    print("| Adam | s per epoch (two rounds, mean of 3 epochs) |")
    for variant in ("loop", "foreach", "fused", "loop", "foreach", "fused"):
        model = BPRRecommender(factors=128)
        tables = [
            torch.nn.Embedding(matrix.shape[0], 128),
            torch.nn.Embedding(10_000, 128),
            torch.nn.Embedding(10_000, 1),
        ]
        model.user_factors, model.item_factors, model.item_bias = tables
        options = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}[variant]
        optimizer = torch.optim.Adam([t.weight for t in tables], lr=0.005, weight_decay=3e-5, **options)
        tables = model._row_gradients()
        rng, started = np.random.default_rng(0), time.perf_counter()
        for _ in range(3):
            model._train_epoch(matrix, no_ignored, users, positives, optimizer, tables, rng)
        print(f"| {variant} | {(time.perf_counter() - started) / 3:.3f} |")


def row_gradients() -> None:
    torch.set_num_threads(1)
    gradient, rows = torch.zeros(10_000, 128), torch.randint(0, 10_000, (4_096,))
    fills = {"at the rows (index_fill_)": lambda: gradient.index_fill_(0, rows, 0.0), "whole (zero_)": gradient.zero_}
    seconds = {name: [] for name in fills}
    for _ in range(5):
        for name, fill in fills.items():
            started = time.perf_counter()
            for _ in range(200):
                fill()
            seconds[name].append((time.perf_counter() - started) / 200)
    print("| zeroing 10,000 x 128 after 4,096 rows | µs, median of 5 rounds of 200 |\n|---|--:|")
    for name, values in seconds.items():
        print(f"| {name} | {np.median(values) * 1e6:.0f} |")


def sparse_adam() -> None:
    """The optimizer step of a 10M-event BPR batch (2,048 users, 4,096 item rows with repeats, their
    biases), torch's SparseAdam against RowAdam, alternately; both must end at the same weights."""
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    shapes = [(200_000, 64, 2_048), (50_000, 64, 4_096), (50_000, 1, 4_096)]
    start = [torch.randn((n_rows, width), generator=generator) * 0.1 for n_rows, width, _ in shapes]
    steps = [
        [
            (torch.randint(0, n_rows, (1, rows), generator=generator), torch.randn(rows, width, generator=generator))
            for n_rows, width, rows in shapes
        ]
        for _ in range(100)
    ]
    params = {name: [torch.nn.Parameter(weights.clone()) for weights in start] for name in ("SparseAdam", "RowAdam")}
    optimizers = {
        "SparseAdam": torch.optim.SparseAdam(params["SparseAdam"], lr=0.005),
        "RowAdam": RowAdam(params["RowAdam"], lr=0.005),
    }
    seconds = {name: 0.0 for name in optimizers}
    for gradients in steps:
        for name, optimizer in optimizers.items():
            for param, (rows, values), (n_rows, width, _) in zip(params[name], gradients, shapes, strict=True):
                param.grad = torch.sparse_coo_tensor(rows, values, (n_rows, width), check_invariants=False)
            started = time.perf_counter()
            optimizer.step()
            seconds[name] += time.perf_counter() - started
    assert all(torch.equal(a, b) for a, b in zip(params["SparseAdam"], params["RowAdam"], strict=True))
    print("| optimizer | ms per step, 100 steps, same weights at the end |\n|---|--:|")
    for name, total in seconds.items():
        print(f"| {name} | {total * 10:.2f} |")


def top_k() -> None:
    rng = np.random.default_rng(0)
    dense = rng.standard_normal((500, 50_000)).astype(np.float32)
    mostly_zero = np.zeros_like(dense)
    for row in mostly_zero:
        row[rng.choice(6_192, 300, replace=False)] = rng.random(300)
    print("| rows of 50k scores | top 20 by | µs per row, median of 5 rounds |\n|---|---|--:|")
    for kind, rows in (("dense", dense), ("mostly zero", mostly_zero)):
        seconds = {_row_top_k: [], _partitioned_top_k: []}
        for _ in range(5):
            for select, values in seconds.items():
                started = time.perf_counter()
                for row in rows:
                    select(row, 20)
                values.append((time.perf_counter() - started) / len(rows))
        assert all((_row_top_k(row, 20) == _partitioned_top_k(row, 20)).all() for row in rows)
        for select, values in seconds.items():
            print(f"| {kind} | `{select.__name__}` | {np.median(values) * 1e6:.0f} |")


def factored() -> None:
    rows = wide_rows()
    print("| DLAE weights | fit s | save s | arrays.npz MB | load s |")
    for form, share in (("dense", 0.0), ("factored", closed_form.FACTORED_MAX_RANK_SHARE)) * 2:
        closed_form.FACTORED_MAX_RANK_SHARE = share
        with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parents[1] / "var") as directory:
            started = time.perf_counter()
            model = DLAERecommender().fit(rows, catalog_items=np.arange(10_000))
            fitted = time.perf_counter()
            path = model.save(Path(directory) / "model")
            os.sync()  # the write reaches the disk, as it must when the next step reads it elsewhere
            saved = time.perf_counter()
            load_recommender(path)
            loaded = time.perf_counter()
            size = (path / "arrays.npz").stat().st_size / 1e6
        print(f"| {form} | {fitted - started:.2f} | {saved - fitted:.2f} | {size:,.0f} | {loaded - saved:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    runs = {
        "neighbours": neighbours,
        "bpr": bpr,
        "ranking": ranking,
        "hugepages": hugepages,
        "bpr_epoch": bpr_epoch,
        "factored": factored,
        "row_gradients": row_gradients,
        "top_k": top_k,
        "sparse_adam": sparse_adam,
    }
    parser.add_argument("--only", choices=sorted(runs))
    parser.add_argument("--child-dlae-fits", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_dlae_fits:
        timed_dlae_fits()
        return
    for name, run in runs.items():
        if args.only in (None, name):
            run()


if __name__ == "__main__":
    main()
