"""The two-stage recommender on MovieLens-100K against the best single-stage models, under two split
protocols; candidate recall at N; serving latency of one request.

    .venv/bin/python bench/two_stage.py --dataset var/bench/datasets/<version>

``--dataset`` is a frozen random_per_user dataset (bench/pipeline.py). The temporal protocol
re-splits the same interactions by the rule of ``interaction_splits.sql``: global cutoffs at the
0.8 and 0.9 time quantiles (``quantile_cont``, here ``np.quantile``). Per protocol, DLAE and EASE
(defaults) and the two-stage model with both label splits are fit on train; the two-stage label
split and the best single-stage model are chosen on validation NDCG@10, then compared on test
(validation items masked) with a paired bootstrap over users. Candidate recall at N is measured
on validation for the chosen random_per_user model; latency is ``serving_inputs`` plus
``rank_for_user`` (retrieve N = 200 per source, featurise, rank, top 10) for sampled users,
one request at a time on one thread, as the service calls them.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recs_platform.artifacts import DatasetVersion
from recs_platform.evaluation.evaluate import evaluate
from recs_platform.evaluation.significance import paired_bootstrap
from recs_platform.models.base import Recommender
from recs_platform.models.two_stage import TwoStageRecommender
from recs_platform.training import fit_recommender

K = 10
SINGLE_STAGE = ("dlae", "ease")
LABEL_SPLITS = ("random", "temporal")
RECALL_AT = (50, 100, 200, 300, 500)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="frozen random_per_user dataset folder")
    parser.add_argument("--params", type=json.loads, default={}, help="two-stage params (JSON) beside the label split")
    parser.add_argument("--latency-users", type=int, default=300, help="requests timed")
    parser.add_argument("--protocols", nargs="*", default=["random_per_user", "temporal"])
    parser.add_argument("--label-splits", nargs="*", default=list(LABEL_SPLITS), help="two-stage label splits to fit")
    return parser.parse_args()


def temporal_tables(tables: dict[str, pd.DataFrame], valid_q: float = 0.8, test_q: float = 0.9) -> dict:
    """The same interactions split at global time quantiles, as ``interaction_splits.sql`` does."""
    interactions = pd.concat([tables[name] for name in ("train", "valid", "test")], ignore_index=True)
    seconds = interactions.timestamp.astype("int64").to_numpy()
    valid_cut, test_cut = np.quantile(seconds, [valid_q, test_q])
    split = np.where(seconds < valid_cut, "train", np.where(seconds < test_cut, "valid", "test"))
    return {
        **tables,
        **{name: interactions[split == name].reset_index(drop=True) for name in ("train", "valid", "test")},
    }


def fit_and_score(name: str, params: dict, tables: dict) -> tuple[Recommender, dict]:
    model, fit_s = fit_recommender(name, params, tables["train"], tables)
    valid = evaluate(model, tables["valid"], k=K)
    test = evaluate(model, tables["test"], k=K, exclude=tables["valid"])
    row = {"fit_s": round(fit_s, 1), "valid_ndcg@10": valid.summary["ndcg@10"], **test.summary}
    row["test_users"] = test.n_users
    return model, {"row": row, "per_user": test.per_user.set_index("user_id")["ndcg@10"]}


def compare(
    protocol: str, tables: dict, params: dict, label_splits: list[str]
) -> tuple[list[dict], dict, TwoStageRecommender]:
    rows, results, models = [], {}, {}
    for name in SINGLE_STAGE:
        models[name], results[name] = fit_and_score(name, {}, tables)
    for split in label_splits:
        key = f"two_stage ({split} labels)"
        models[key], results[key] = fit_and_score("two_stage", {**params, "label_split": split}, tables)
    for key, result in results.items():
        rows.append({"protocol": protocol, "recommender": key, **result["row"]})
        print(rows[-1], flush=True)
    best_single = max(SINGLE_STAGE, key=lambda n: results[n]["row"]["valid_ndcg@10"])
    two_stage = max((k for k in results if k.startswith("two_stage")), key=lambda k: results[k]["row"]["valid_ndcg@10"])
    test = paired_bootstrap(results[two_stage]["per_user"], results[best_single]["per_user"])
    significance = {"protocol": protocol, "two_stage": two_stage, "versus": best_single, **test}
    print(significance, flush=True)
    return rows, significance, models[two_stage]


def candidate_recall(model: TwoStageRecommender, valid: pd.DataFrame) -> pd.DataFrame:
    """Share of each user's validation items among the candidates, per source and for their union."""
    truth = valid.groupby("user_id").item_id.agg(set)
    users = truth.index[model.known_users(truth.index)]
    inputs = [model.offline_inputs(int(index)) for index in model.user_map.index(users.to_numpy())]
    rows = []
    for n in RECALL_AT:
        model.retrieval.n = n
        found = model.retrieval.retrieve(inputs)
        recall = {name: [] for name in [*model.retrieval.names, "union"]}
        sizes = []
        for user, (items, retrieval) in zip(users, found, strict=True):
            relevant = truth[user]
            ids = model.item_map.ids[items]
            for column, name in enumerate(model.retrieval.names):
                hit = np.isfinite(retrieval[:, 2 * column])
                recall[name].append(len(relevant & set(ids[hit].tolist())) / len(relevant))
            recall["union"].append(len(relevant & set(ids.tolist())) / len(relevant))
            sizes.append(len(items))
        rows.append(
            {"N": n, **{f"recall {k}": float(np.mean(v)) for k, v in recall.items()}, "union size": np.mean(sizes)}
        )
        print(rows[-1], flush=True)
    model.retrieval.n = model.params.candidates
    return pd.DataFrame(rows)


def latency(model: TwoStageRecommender, tables: dict, n_users: int) -> dict:
    """p50 / p99 of one request (k = 10) from the user's training history and catalogue features."""
    rng = np.random.default_rng(0)
    users = rng.choice(model.user_map.ids, size=min(n_users, len(model.user_map)), replace=False)
    train = tables["train"].sort_values(["user_id", "timestamp", "item_id"])
    features = tables["users"].set_index("user_id")
    histories = {user: group for user, group in train.groupby("user_id")}
    now = float(int(train.timestamp.max().timestamp())) + 3600.0
    timings = []
    for user in users:
        history = histories[user]
        row = features.loc[user].to_dict() if user in features.index else {}
        started = time.perf_counter()
        inputs = model.serving_inputs(int(user), history.item_id.to_numpy(), history.timestamp.to_numpy(), row, now)
        model.rank_for_user(inputs, K, exclude=history.item_id.to_numpy())
        timings.append((time.perf_counter() - started) * 1000)
    p50, p99 = np.percentile(timings, [50, 99])
    return {"requests": len(timings), "candidates_per_source": model.retrieval.n, "p50_ms": p50, "p99_ms": p99}


def main() -> None:
    args = parse_args()
    tables = DatasetVersion(args.dataset.name, str(args.dataset)).load()
    by_protocol = {"random_per_user": tables, "temporal": temporal_tables(tables)}
    rows, significance = [], []
    for protocol in args.protocols:
        protocol_rows, test, model = compare(protocol, by_protocol[protocol], args.params, args.label_splits)
        rows += protocol_rows
        significance.append(test)
        if protocol == "random_per_user":
            recall = candidate_recall(model, by_protocol[protocol]["valid"])
            timing = latency(model, by_protocol[protocol], args.latency_users)
            print(timing, flush=True)
            importance = list(model.metadata["feature_importance"].items())[:12]
    print(f"\ndataset {args.dataset.name}, two-stage params {args.params}\n")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4f"))
    print("\ntwo-stage (label split chosen on validation) minus the best single-stage model, test NDCG@10\n")
    print(pd.DataFrame(significance).to_markdown(index=False, floatfmt=".4f"))
    if "random_per_user" in args.protocols:
        print("\ncandidate recall at N on validation (random_per_user)\n")
        print(recall.to_markdown(index=False, floatfmt=".4f"))
        print(f"\nserving latency: {timing}")
        print(f"\nfeature importance (gain), top 12: {importance}")


if __name__ == "__main__":
    main()
