"""Next-item prediction on MovieLens-100K under leave-one-out (RecBole's sequential protocol).

    .venv/bin/python bench/next_item.py --dataset var/bench/datasets/<version>

All interactions of the frozen dataset are re-split per user by time: last item = test,
second-to-last = validation, the rest = train. Each model ranks the full catalog with the
user's history masked; SASRec predicts the test item from the whole sequence before it.
"""

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from recs_platform.evaluation.sequential import evaluate_next_item, leave_one_out_split
from recs_platform.models import BPRRecommender, PopularityRecommender, SASRecRecommender
from recs_platform.validation.datasets import DatasetVersion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="frozen dataset folder")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tables = DatasetVersion(args.dataset.name, str(args.dataset)).load()
    split = leave_one_out_split(pd.concat([tables[name] for name in ("train", "valid", "test")], ignore_index=True))
    catalog = tables["items"].item_id.to_numpy()
    rows = []
    for model in (PopularityRecommender(), BPRRecommender(), SASRecRecommender()):
        started = time.perf_counter()
        model.fit(split["train"], catalog_items=catalog, valid=split["valid"])
        fit = time.perf_counter() - started
        rows.append({"recommender": model.name, "fit_s": fit, **evaluate_next_item(model, split).summary})
        print(rows[-1], flush=True)
    print(f"\nleave-one-out split sizes: { {name: len(frame) for name, frame in split.items()} }\n")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4f"))


if __name__ == "__main__":
    main()
