"""One asset per recommender; each configuration of its sweep trains as its own step."""

import json

import dagster as dg
from pydantic import Field

from assets.resources import StorageResource
from recs_platform.sweeps import SweepConfig, SweepResult, best, sweep_table, train_and_validate
from recs_platform.training import ModelArtifact
from recs_platform.validation.datasets import DatasetVersion


class SweepRunConfig(dg.Config):
    """Launchpad overrides for one run of a sweep."""

    override_params_json: str = Field(
        default="{}", description='JSON object merged into every configuration, e.g. {"epochs": 5}.'
    )


def recommender_asset(name: str, configs: list[SweepConfig]) -> dg.AssetsDefinition:
    """The graph-backed asset ``<name>_model``: plan configurations → train each → select on validation."""

    @dg.op(name=f"{name}_configurations", out=dg.DynamicOut(SweepConfig))
    def plan(config: SweepRunConfig):
        override = json.loads(config.override_params_json)
        for sweep_config in configs:
            params = {**sweep_config.params, **override}
            yield dg.DynamicOutput(
                SweepConfig(name, sweep_config.config_id, params), mapping_key=sweep_config.config_id
            )

    @dg.op(name=f"{name}_train", tags={"recommender": name})
    def train_one(
        context: dg.OpExecutionContext, sweep_config: SweepConfig, dataset: DatasetVersion, storage: StorageResource
    ) -> SweepResult:
        result = train_and_validate(sweep_config, dataset, storage.paths.artifacts, log=context.log.info)
        context.log.info(f"{sweep_config.config_id} {sweep_config.params}: valid ndcg@10 {result.valid['ndcg@10']:.4f}")
        return result

    @dg.op(name=f"{name}_select")
    def select(results: list[SweepResult]) -> dg.Output[ModelArtifact]:
        chosen = best(results)
        return dg.Output(
            chosen.artifact,
            metadata={
                "recommender": name,
                "chosen_config": chosen.config.config_id,
                "params": dg.MetadataValue.json(chosen.config.params),
                "valid_ndcg@10": chosen.valid["ndcg@10"],
                "configurations": len(results),
                "sweep": dg.MetadataValue.md(sweep_table(results).to_markdown(index=False, floatfmt=".4f")),
                "data_version": chosen.artifact.data_version,
                "code_version": chosen.artifact.code_version,
                "path": dg.MetadataValue.path(chosen.artifact.path),
            },
        )

    @dg.graph_asset(
        name=f"{name}_model",
        group_name="models",
        description=f"{name}: best of {len(configs)} configuration(s) on validation NDCG@10.",
        automation_condition=dg.AutomationCondition.eager(),
    )
    def model(dataset: DatasetVersion) -> ModelArtifact:
        return select(plan().map(lambda sweep_config: train_one(sweep_config, dataset)).collect())

    return model


def model_assets(sweeps: dict[str, list[SweepConfig]]) -> list[dg.AssetsDefinition]:
    return [recommender_asset(name, configs) for name, configs in sweeps.items()]
