"""One asset per recommender; each configuration of its sweep trains as its own step (all in one
step for recommenders that share work across fits, e.g. one Gram matrix or decomposition), the
best on validation is refit on train+valid as the model that is evaluated and deployed. When no
configuration fits its resources the asset is a skipped artifact that carries the reason.

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
    fit_batches,
    refit,
    sweep_table,
    train_and_validate,
)
from recs_platform.versioning import code_version


class SweepRunConfig(dg.Config):
    """Launchpad overrides for one run of a sweep."""

    override_params_json: str = Field(
        default="{}", description='JSON object merged into every configuration, e.g. {"epochs": 5}.'
    )


def recommender_asset(sweep: Sweep) -> dg.AssetsDefinition:
    """The graph-backed asset ``<name>_model``: plan configurations → train each → select on
    validation → refit the chosen one on train+valid (unless the sweep says ``refit: false``)."""
    name = sweep.recommender

    @dg.op(name=f"{name}_configurations", out=dg.DynamicOut(list))
    def plan(context: dg.OpExecutionContext, config: SweepRunConfig, dataset: DatasetVersion):
        """One step per configuration, or one for all when the recommender shares work across fits;
        a large dataset takes the sweep's ``large`` configurations when it has them."""
        override = json.loads(config.override_params_json)
        configs = sweep.configs_for(dataset.manifest()["rows"])
        if configs is not sweep.configs:
            context.log.info(f"{name}: large dataset, {len(configs)} configuration(s) from the sweep's large section")
        for batch in fit_batches(name, configs):
            configs = [SweepConfig(name, c.config_id, {**c.params, **override}) for c in batch]
            for sweep_config in configs:
                check_params(name, sweep_config.params, source="override_params_json")
            key = configs[0].config_id if len(configs) == 1 else "shared"
            yield dg.DynamicOutput(configs, mapping_key=key)

    @dg.op(name=f"{name}_train", tags={"recommender": name})
    def train_batch(
        context: dg.OpExecutionContext,
        configs: list[SweepConfig],
        dataset: DatasetVersion,
        storage: StorageResource,
        gate: GateSettings,
    ) -> list[SweepResult]:
        results = train_and_validate(configs, dataset, storage.paths.artifacts, context.log.info, gate.metric)
        for result in results:
            outcome = result.skipped or f"valid {gate.metric} {result.valid[gate.metric]:.4f}"
            context.log.info(f"{result.config.config_id} {result.config.params}: {outcome}")
        return results

    @dg.op(name=f"{name}_select")
    def select(
        context: dg.OpExecutionContext,
        batches: list[list[SweepResult]],
        dataset: DatasetVersion,
        storage: StorageResource,
        gate: GateSettings,
    ) -> dg.Output[ModelArtifact]:
        results = [result for batch in batches for result in batch]
        chosen = best(results, gate.metric)
        table = dg.MetadataValue.md(sweep_table(results, gate.metric).to_markdown(index=False, floatfmt=".4f"))
        if chosen is None:
            reason = "; ".join(sorted({result.skipped for result in results}))
            context.log.warning(f"{name}: every configuration skipped: {reason}")
            record_sweep(storage.paths.experiments, dataset.version, name, results, "", context.run_id)
            skipped = ModelArtifact.skipped_model(name, dataset.version, code_version(), reason)
            return dg.Output(skipped, metadata={"recommender": name, "skipped": reason, "sweep": table})
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
                "sweep": table,
                "fit_seconds": round(final.fit_seconds, 2),
                "data_version": final.data_version,
                "code_version": final.code_version,
                "path": dg.MetadataValue.path(final.path),
                **(
                    {"pruned_item_share": final.metadata["pruned_item_share"]}
                    if "pruned_item_share" in final.metadata
                    else {}
                ),
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
        return select(plan(dataset).map(lambda configs: train_batch(configs, dataset)).collect(), dataset)

    return model


def model_assets(sweeps: dict[str, Sweep]) -> list[dg.AssetsDefinition]:
    return [recommender_asset(sweep) for sweep in sweeps.values()]
