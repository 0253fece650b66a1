"""pandera schemas for the split tables and the feature tables.

Static schemas describe types and ranges; ``validate_dataset`` adds the checks that need the
whole dataset: ids inside the catalog, no interaction in two splits, and the temporal cutoffs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import pandera.pandas as pa

from recs_platform.artifacts import no_impressions
from recs_platform.data.contract import MAX_STRING_ID, DatasetContract

ACTIVITY_LEVELS = ["low", "medium", "high"]


def split_schema(
    name: str,
    contract: DatasetContract,
    user_ids: pd.Series | None = None,
    item_ids: pd.Series | None = None,
    min_timestamp: pd.Timestamp | None = None,
    max_timestamp: pd.Timestamp | None = None,
) -> pa.DataFrameSchema:
    """Schema of one split table; catalog ids and cutoffs make it dataset-specific."""
    user_checks = [pa.Check.isin(user_ids.tolist(), error="user_id not in catalog")] if user_ids is not None else []
    item_checks = [pa.Check.isin(item_ids.tolist(), error="item_id not in catalog")] if item_ids is not None else []
    time_checks = []
    if min_timestamp is not None:
        time_checks.append(
            pa.Check.ge(min_timestamp, error=f"{name} interaction earlier than its cutoff {min_timestamp}")
        )
    if max_timestamp is not None:
        time_checks.append(
            pa.Check.lt(max_timestamp, error=f"{name} interaction at or after the next cutoff {max_timestamp}")
        )
    return pa.DataFrameSchema(
        {
            "user_id": _id_column(contract, "user_id", user_checks, description="user id from the user catalog"),
            "item_id": _id_column(contract, "item_id", item_checks, description="item id from the item catalog"),
            "timestamp": pa.Column("datetime64[us]", time_checks, coerce=True, description="first interaction time"),
        },
        unique=["user_id", "item_id"],
        report_duplicates="all",
        name=f"split_{name}",
        description=f"{name} interactions: one implicit positive per (user, item)",
        strict="filter",
    )


# The pandera dtype of each id type, and of each contract column kind in the feature marts.
ID_DTYPES = {"integer": "int64", "string": str}
KIND_DTYPES = {
    "categorical": str, "numeric": "float64", "multi": str, "date": "datetime64[us]", "timestamp": "datetime64[us]",
}  # fmt: skip


def _id_column(contract: DatasetContract, role: str, checks: list | None = None, **options: Any) -> pa.Column:
    id_type = contract.id_type(role)
    checks = ([pa.Check.ge(0)] if id_type == "integer" else [pa.Check.str_length(1, MAX_STRING_ID)]) + (checks or [])
    return pa.Column(ID_DTYPES[id_type], checks, **options)


def _attributes(contract: DatasetContract, kind: str) -> dict[str, pa.Column]:
    """The contract's declared catalogue columns, typed by kind, all nullable."""
    return {
        column.name: pa.Column(KIND_DTYPES[column.kind], nullable=True, coerce=column.kind != "categorical")
        for column in contract.catalog(kind)
        if column.name != contract.title_column
    }


def user_features_schema(contract: DatasetContract) -> pa.DataFrameSchema:
    """One row per user: activity and recency, plus the contract's user attributes and buckets."""
    buckets = {
        f"{column.name}_bucket": pa.Column(str, nullable=True) for column in contract.catalog("users") if column.buckets
    }
    return pa.DataFrameSchema(
        {
            "user_id": _id_column(contract, "user_id", unique=True),
            "n_interactions": pa.Column("int64", pa.Check.ge(0), coerce=True),
            "days_since_last_interaction": pa.Column("float64", pa.Check.ge(0), nullable=True, coerce=True),
            **_attributes(contract, "users"),
            **buckets,
            "activity_level": pa.Column(str, pa.Check.isin(ACTIVITY_LEVELS), nullable=True),
        },
        name="user_features",
        description=f"one row per user of the {contract.name} contract: activity, recency and attributes",
        strict="filter",
    )


def item_features_schema(contract: DatasetContract) -> pa.DataFrameSchema:
    """One row per catalog item: title, the contract's attributes (and their lists), popularity,
    and release year and age when the contract declares an item date."""
    lists = {f"{name}_list": pa.Column(object, nullable=True) for name in contract.columns_of_kind("items", "multi")}
    dated = (
        {
            "release_year": pa.Column("float64", pa.Check.in_range(1800, 2200), nullable=True, coerce=True),
            "item_age_days": pa.Column("float64", nullable=True, coerce=True),
        }
        if contract.item_date_column
        else {}
    )
    return pa.DataFrameSchema(
        {
            "item_id": _id_column(contract, "item_id", unique=True),
            "title": pa.Column(str, nullable=True),
            **_attributes(contract, "items"),
            **lists,
            **dated,
            "n_interactions": pa.Column("int64", pa.Check.ge(0), coerce=True),
            "popularity_rank": pa.Column("int64", pa.Check.ge(1), unique=True, coerce=True),
        },
        name="item_features",
        description=f"one row per catalog item of the {contract.name} contract: attributes, popularity and age",
        strict="filter",
    )


def _pandas_dtype(id_type: str) -> str:
    return "int64" if id_type == "integer" else "object"


def impressions_schema(contract: DatasetContract) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "user_id": pa.Column(ID_DTYPES[contract.user_id_type]),
            "item_id": pa.Column(ID_DTYPES[contract.item_id_type]),
            "served_at": pa.Column("datetime64[ns]", coerce=True),
            "position": pa.Column("int64", pa.Check.ge(1), coerce=True),
            "consumed": pa.Column(bool),
        },
        strict=True,
        description="Served items with whether the user consumed them within the attribution window.",
    )


@dataclass
class ValidationFailure(Exception):
    """The dataset broke its contract; ``failure_cases`` holds the offending rows."""

    message: str
    failure_cases: pd.DataFrame

    def __str__(self) -> str:
        return self.message


def _run(schema: pa.DataFrameSchema, frame: pd.DataFrame, table: str, failures: list[pd.DataFrame]) -> pd.DataFrame:
    try:
        return schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        failures.append(errors.failure_cases.assign(table=table))
        return frame


def validate_dataset(
    tables: dict[str, pd.DataFrame], cutoffs: dict[str, object], contract: DatasetContract
) -> dict[str, pd.DataFrame]:
    """Validate train/valid/test and the feature tables against the dataset contract; raise
    ``ValidationFailure`` on any error.

    ``cutoffs`` holds ``split_protocol`` and, for the temporal protocol, ``valid_cutoff`` and
    ``test_cutoff``.
    """
    if tables["train"].empty:
        raise ValidationFailure(
            "the train split is empty: no usable events reached the warehouse (is the landing zone empty?); "
            "land event files, e.g. with `recs-platform bootstrap`, and run again",
            pd.DataFrame({"table": ["train"], "check": ["not empty"], "failure_case": ["0 rows"]}),
        )
    failures: list[pd.DataFrame] = []
    users = _run(user_features_schema(contract), tables["users"], "users", failures)
    items = _run(item_features_schema(contract), tables["items"], "items", failures)
    bounds = _split_bounds(cutoffs)
    if "impressions" not in tables:
        tables["impressions"] = no_impressions(*(_pandas_dtype(contract.id_type(c)) for c in ("user_id", "item_id")))
    impressions = tables["impressions"]
    impressions = _run(impressions_schema(contract), impressions, "impressions", failures)
    validated = {"users": users, "items": items, "impressions": impressions}
    for split in ("train", "valid", "test"):
        schema = split_schema(split, contract, tables["users"].user_id, tables["items"].item_id, *bounds[split])
        validated[split] = _run(schema, tables[split], split, failures)
    failures.extend(_overlaps(tables))
    if failures:
        cases = pd.concat(failures, ignore_index=True)
        raise ValidationFailure(f"dataset validation failed with {len(cases)} failure cases", cases)
    return validated


def _split_bounds(cutoffs: dict[str, object]) -> dict[str, tuple]:
    if cutoffs.get("split_protocol") != "temporal":
        return {split: (None, None) for split in ("train", "valid", "test")}
    valid_cut, test_cut = pd.Timestamp(cutoffs["valid_cutoff"]), pd.Timestamp(cutoffs["test_cutoff"])
    return {"train": (None, valid_cut), "valid": (valid_cut, test_cut), "test": (test_cut, None)}


def _overlaps(tables: dict[str, pd.DataFrame]) -> list[pd.DataFrame]:
    """Failure cases for (user, item) pairs that appear in more than one split."""
    splits = ("train", "valid", "test")
    # Repeats inside one split are the schema's uniqueness failure; here only cross-split pairs count.
    stacked = pd.concat([tables[s][["user_id", "item_id"]].drop_duplicates().assign(split=s) for s in splits])
    repeated = stacked[stacked.duplicated(["user_id", "item_id"], keep=False)]
    if repeated.empty:
        return []
    return [
        pd.DataFrame(
            {
                "table": repeated.split.to_numpy(),
                "schema_context": "Dataset",
                "column": "user_id,item_id",
                "check": "pair in exactly one split",
                "failure_case": (repeated.user_id.astype(str) + "," + repeated.item_id.astype(str)).to_numpy(),
                "index": repeated.index.to_numpy(),
            }
        )
    ]
