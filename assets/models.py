"""One asset per recommender; each configuration of its sweep trains as its own step, the best on
validation is refit on train+valid as the model that is evaluated and deployed.

The asset names are built from the sweep files' names, so this table (checked by
tests/test_docs.py) is where to find them:

| asset | sweep file | class | module |
|---|---|---|---|
| `cooccurrence_model` | `config/recommenders/cooccurrence.yaml` | `CooccurrenceRecommender` | `recs_platform/models/heuristics.py` |
| `popularity_model` | `config/recommenders/popularity.yaml` | `PopularityRecommender` | `recs_platform/models/popularity.py` |
| `recent_history_model` | `config/recommenders/recent_history.yaml` | `RecentHistoryRecommender` | `recs_platform/models/heuristics.py` |
| `segment_popularity_model` | `config/recommenders/segment_popularity.yaml` | `SegmentPopularityRecommender` | `recs_platform/models/heuristics.py` |
| `bpr_model` | `config/recommenders/bpr.yaml` | `BPRRecommender` | `recs_platform/models/bpr.py` |
| `bpr_feedback_model` | `config/recommenders/bpr_feedback.yaml` | `FeedbackBPRRecommender` | `recs_platform/models/bpr.py` |
| `dlae_model` | `config/recommenders/dlae.yaml` | `DLAERecommender` | `recs_platform/models/neighbors.py` |
| `ease_model` | `config/recommenders/ease.yaml` | `EASERecommender` | `recs_platform/models/neighbors.py` |
| `item_knn_model` | `config/recommenders/item_knn.yaml` | `ItemKNNRecommender` | `recs_platform/models/neighbors.py` |
| `two_stage_model` | `config/recommenders/two_stage.yaml` | `TwoStageRecommender` | `recs_platform/models/two_stage.py` |
| `sasrec_model` | `config/recommenders.neural/sasrec.yaml` | `SASRecRecommender` | `recs_platform/models/sasrec.py` |
| `two_tower_model` | `config/recommenders.neural/two_tower.yaml` | `TwoTowerRecommender` | `recs_platform/models/two_tower.py` |
"""

import json

import dagster as dg
from pydantic import Field

from assets.resources import GateSettings, StorageResource
from recs_platform.artifacts import DatasetVersion, ModelArtifact
from recs_platform.experiments import record_sweep
from recs_platform.sweeps import (
    Sweep,
    SweepConfig,
    SweepResult,
    best,
    check_params,
    refit,
    sweep_table,
    train_and_validate,
)


class SweepRunConfig(dg.Config):
    """Launchpad overrides for one run of a sweep."""

    override_params_json: str = Field(
        default="{}", description='JSON object merged into every configuration, e.g. {"epochs": 5}.'
    )


def recommender_asset(sweep: Sweep) -> dg.AssetsDefinition:
    """The graph-backed asset ``<name>_model``: plan configurations → train each → select on
    validation → refit the chosen one on train+valid (unless the sweep says ``refit: false``)."""
    name = sweep.recommender

    @dg.op(name=f"{name}_configurations", out=dg.DynamicOut(SweepConfig))
    def plan(config: SweepRunConfig):
        override = json.loads(config.override_params_json)
        for sweep_config in sweep.configs:
            params = {**sweep_config.params, **override}
            check_params(name, params, source="override_params_json")
            yield dg.DynamicOutput(
                SweepConfig(name, sweep_config.config_id, params), mapping_key=sweep_config.config_id
            )

    @dg.op(name=f"{name}_train", tags={"recommender": name})
    def train_one(
        context: dg.OpExecutionContext,
        sweep_config: SweepConfig,
        dataset: DatasetVersion,
        storage: StorageResource,
        gate: GateSettings,
    ) -> SweepResult:
        result = train_and_validate(sweep_config, dataset, storage.paths.artifacts, context.log.info, gate.metric)
        context.log.info(
            f"{sweep_config.config_id} {sweep_config.params}: valid {gate.metric} {result.valid[gate.metric]:.4f}"
        )
        return result

    @dg.op(name=f"{name}_select")
    def select(
        context: dg.OpExecutionContext,
        results: list[SweepResult],
        dataset: DatasetVersion,
        storage: StorageResource,
        gate: GateSettings,
    ) -> dg.Output[ModelArtifact]:
        chosen = best(results, gate.metric)
        record_sweep(storage.paths.experiments, dataset.version, name, results, chosen.config.config_id, context.run_id)
        final = chosen.artifact
        if sweep.refit:
            context.log.info(f"refitting {chosen.config.config_id} on train+valid")
            final = refit(chosen, dataset, storage.paths.artifacts, log=context.log.info)
        return dg.Output(
            final,
            metadata={
                "recommender": name,
                "chosen_config": chosen.config.config_id,
                "params": dg.MetadataValue.json(final.params),
                "trained_on": final.trained_on,
                f"valid_{gate.metric}": chosen.valid[gate.metric],
                "configurations": len(results),
                "sweep": dg.MetadataValue.md(
                    sweep_table(results, gate.metric).to_markdown(index=False, floatfmt=".4f")
                ),
                "fit_seconds": round(final.fit_seconds, 2),
                "data_version": final.data_version,
                "code_version": final.code_version,
                "path": dg.MetadataValue.path(final.path),
            },
        )

    @dg.graph_asset(
        name=f"{name}_model",
        group_name="models",
        description=(
            f"{name}: best of {len(sweep.configs)} configuration(s) on the validation metric"
            + (", refit on train+valid." if sweep.refit else ".")
        ),
        automation_condition=dg.AutomationCondition.eager(),
    )
    def model(dataset: DatasetVersion) -> ModelArtifact:
        return select(plan().map(lambda sweep_config: train_one(sweep_config, dataset)).collect(), dataset)

    return model


def model_assets(sweeps: dict[str, Sweep]) -> list[dg.AssetsDefinition]:
    return [recommender_asset(sweep) for sweep in sweeps.values()]
