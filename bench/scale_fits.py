"""Fit-level costs behind the graph at catalogue scale (docs/benchmarks.md, issue 13), side by side:

    PYTHONPATH=. .venv/bin/python bench/scale_fits.py [--only neighbours|bpr|ranking]

* neighbours: item-kNN's per-row top-k on a 610 x 10,000 binary matrix's cosine similarities, the
  former lexsort of every similarity against ``keep_top_per_row`` (and that both keep the same matrix);
* bpr: one BPR epoch on 1M synthetic rows of 200k users and 50k items, dense Adam (timed on the
  first 200k rows and scaled) against sparse updates, one torch thread;
* ranking: ``recommend`` for 4,000 users x 50k items of a one-epoch BPR model, best of 3 (run it at
  two commits to compare them).
"""

import argparse
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.metrics.pairwise import cosine_similarity

from recs_platform.models.bpr import BPRRecommender, positive_pairs
from recs_platform.models.neighbors import keep_top_per_row


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
    no_ignored, pairs = sp.csr_matrix(matrix.shape, dtype=np.float32), positive_pairs(matrix)
    print("| optimizer | batch | s per epoch |")
    for sparse, batch, timed_rows in [(False, 2048, 200_000), (True, 2048, len(users)), (True, 8192, len(users))]:
        model = BPRRecommender(sparse_updates=sparse, batch_size=batch)
        model.user_factors = torch.nn.Embedding(matrix.shape[0], 64, sparse=sparse)
        model.item_factors = torch.nn.Embedding(matrix.shape[1], 64, sparse=sparse)
        model.item_bias = torch.nn.Embedding(matrix.shape[1], 1, sparse=sparse)
        rng = np.random.default_rng(0)
        started = time.perf_counter()
        model._train_epoch(pairs, no_ignored, users[:timed_rows], positives[:timed_rows], model._optimizer(), rng)
        seconds = (time.perf_counter() - started) * len(users) / timed_rows
        print(f"| {'SparseAdam' if sparse else 'dense Adam'} | {batch:,} | {seconds:.1f} |")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["neighbours", "bpr", "ranking"])
    args = parser.parse_args()
    for name, run in (("neighbours", neighbours), ("bpr", bpr), ("ranking", ranking)):
        if args.only in (None, name):
            run()


if __name__ == "__main__":
    main()
