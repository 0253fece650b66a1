"""One asset per recommender, all trained through the same library call."""

import dagster as dg
from pydantic import Field

from assets.resources import StorageResource
from recs_platform.models import BPRRecommender
from recs_platform.training import ModelArtifact, train
from recs_platform.validation.datasets import DatasetVersion

BPR = BPRRecommender.defaults


class PopularityConfig(dg.Config):
    """The popularity baseline has no hyperparameters."""


class BPRConfig(dg.Config):
    """BPR matrix factorization hyperparameters (editable in the Launchpad)."""

    factors: int = Field(default=BPR["factors"], description="Embedding size.")
    epochs: int = Field(default=BPR["epochs"], description="Maximum training epochs.")
    batch_size: int = Field(default=BPR["batch_size"], description="Triples per gradient step.")
    learning_rate: float = Field(default=BPR["learning_rate"], description="Adam learning rate.")
    weight_decay: float = Field(default=BPR["weight_decay"], description="L2 penalty applied by Adam.")
    eval_every: int = Field(default=BPR["eval_every"], description="Epochs between validation NDCG@10 evaluations.")
    patience: int = Field(default=BPR["patience"], description="Evaluations without improvement before stopping.")
    seed: int = Field(default=BPR["seed"], description="Seed for initialisation and negative sampling.")


def recommender_asset(name: str, config_class: type[dg.Config], description: str) -> dg.AssetsDefinition:
    """Build the asset that trains recommender ``name`` on the frozen dataset."""

    @dg.asset(
        name=f"{name}_model",
        group_name="models",
        description=description,
        kinds={"pytorch" if name == "bpr" else "python"},
        automation_condition=dg.AutomationCondition.eager(),
    )
    def _model(
        context: dg.AssetExecutionContext, config: config_class, dataset: DatasetVersion, storage: StorageResource
    ) -> dg.Output[ModelArtifact]:
        artifact = train(name, config.model_dump(), dataset, storage.paths.artifacts, log=context.log.info)
        metadata = {
            "recommender": name,
            "data_version": artifact.data_version,
            "code_version": artifact.code_version,
            "fit_seconds": round(artifact.fit_seconds, 2),
            "params": dg.MetadataValue.json(artifact.params),
            "path": dg.MetadataValue.path(artifact.path),
        }
        for key in ("best_valid_ndcg@10", "epochs_trained"):
            if key in artifact.metadata:
                metadata[key] = artifact.metadata[key]
        return dg.Output(artifact, metadata=metadata)

    return _model


popularity_model = recommender_asset("popularity", PopularityConfig, "Global popularity baseline.")
bpr_model = recommender_asset("bpr", BPRConfig, "BPR matrix factorization (PyTorch, CPU, seeded).")
MODEL_ASSETS = [popularity_model, bpr_model]
