"""Split and feature tables → pandera-validated, frozen, content-versioned Parquet."""

import dagster as dg
from dagster_dbt import get_asset_key_for_model
from dagster_pandera import pandera_schema_to_dagster_type

from assets.dbt import dbt_models
from assets.resources import SplitSettings, StorageResource, WarehouseResource
from recs_platform.artifacts import DatasetVersion
from recs_platform.data.contract import DEFAULT_CONTRACT, load_contract
from recs_platform.validation.datasets import freeze
from recs_platform.validation.schemas import (
    ValidationFailure,
    item_features_schema,
    user_features_schema,
    validate_dataset,
)

MOVIELENS = load_contract(DEFAULT_CONTRACT)  # the schemas the asset's description shows

SOURCES = {
    "train": "split_train",
    "valid": "split_valid",
    "test": "split_test",
    "users": "user_features",
    "items": "item_features",
    "impressions": "attributed_feedback",
}
QUERIES = {name: f"select * from {table}" for name, table in SOURCES.items()} | {
    # Only attributions whose window has closed: an item not consumed yet may still be.
    "impressions": "select user_id, item_id, served_at, position, consumed from attributed_feedback "
    "where shown and window_closed order by request_id, position",
}


@dg.asset(
    deps=[get_asset_key_for_model([dbt_models], model) for model in [*SOURCES.values(), "split_cutoffs"]],
    group_name="datasets",
    # New impressions alone do not retrain: they come along with the next retrain (new events, the
    # weekly schedule, or the engagement alarm).
    automation_condition=dg.AutomationCondition.eager().ignore(
        dg.AssetSelection.assets(get_asset_key_for_model([dbt_models], "attributed_feedback"))
    ),
    pool="warehouse",
    metadata={
        "user_features_schema": pandera_schema_to_dagster_type(user_features_schema(MOVIELENS)).metadata["schema"],
        "item_features_schema": pandera_schema_to_dagster_type(item_features_schema(MOVIELENS)).metadata["schema"],
    },
)
def dataset(
    context: dg.AssetExecutionContext, storage: StorageResource, warehouse: WarehouseResource, split: SplitSettings
) -> dg.Output[DatasetVersion]:
    """Validates the split and feature tables with pandera, then freezes them to versioned Parquet.

    The schemas come from the home's dataset contract. Any violation fails the step, so nothing
    downstream trains on bad data, and the failing rows are shown in the run's failure metadata.
    """
    contract = storage.contract()
    with warehouse.connect(read_only=True) as connection:
        tables = {name: connection.execute(query).df() for name, query in QUERIES.items()}
        cutoffs = connection.execute("select * from split_cutoffs").df().iloc[0].to_dict()
    try:
        validated = validate_dataset(tables, cutoffs, contract)
    except ValidationFailure as failure:
        raise dg.Failure(
            description=str(failure),
            metadata={
                "failure_count": len(failure.failure_cases),
                "failure_sample": dg.MetadataValue.md(failure.failure_cases.head(20).to_markdown(index=False)),
            },
        ) from failure
    info = {
        "split": split.dbt_vars(),
        "cutoffs": cutoffs,
        "contract": contract.name,
        "model_defaults": contract.model_defaults(),
    }
    version = freeze(validated, storage.paths.datasets, info)
    context.log.info(f"dataset version {version.version} at {version.path}")
    return dg.Output(
        version,
        data_version=dg.DataVersion(version.version),
        metadata={
            "dataset_version": version.version,
            "path": dg.MetadataValue.path(version.path),
            "split_protocol": split.protocol,
            **{f"rows_{name}": len(frame) for name, frame in validated.items()},
            "users_in_train": int(validated["train"].user_id.nunique()),
            "items_in_train": int(validated["train"].item_id.nunique()),
        },
    )
