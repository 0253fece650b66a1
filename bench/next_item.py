"""Next-item prediction on MovieLens-100K under leave-one-out (RecBole's sequential protocol).

    .venv/bin/python bench/next_item.py --dataset var/bench/datasets/<version>

All interactions of the frozen dataset are re-split per user by time: last item = test,
second-to-last = validation, the rest = train. Each model ranks the full catalog with the
user's history masked; SASRec predicts the test item from the whole sequence before it.
"""

import argparse
from pathlib import Path

import torch

from recs_platform.artifacts import DatasetVersion
from recs_platform.training import compare_next_item


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="frozen dataset folder")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tables = DatasetVersion(args.dataset.name, str(args.dataset)).load()
    table = compare_next_item(tables, {"popularity": {}, "bpr": {}, "sasrec": {}}, log=print)
    print(table.to_markdown(index=False, floatfmt=".4f"))


if __name__ == "__main__":
    main()
