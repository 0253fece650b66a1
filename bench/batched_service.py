"""The snapshot path with BentoML's adaptive batching for the scoring step: an experiment for
``bench/serving_throughput.py --batched``, not the production service.

``BatchedRecommender`` answers known users only (the snapshot path: the model's own list, titles
left empty): it sends each user to ``Scorer.top_k``, a batchable API in a separate service
(BentoML batches across requests only for calls that go through its dispatcher, i.e. to another
service or over HTTP), which scores the batch with one ``recommend`` call.
"""

import uuid

import bentoml
import numpy as np

from recs_platform.serving.model import ProductionModel
from recs_platform.serving.schemas import (
    RecentItems,
    RecommendedItem,
    RecommendResponse,
    RequestTime,
    TopK,
    UserFeatures,
    UserId,
)

K = 10  # one k for a whole batch


@bentoml.service(name="recs-scorer", traffic={"timeout": 60})
class Scorer:
    production = ProductionModel()

    def __init__(self) -> None:
        self.production.start()

    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=2000)
    def top_k(self, user_ids: np.ndarray) -> np.ndarray:
        """Rows of ``K`` item ids then ``K`` scores, one per user, from one scoring call."""
        model = self.production.bundle.value.model
        ranked = model.recommend(user_ids.tolist(), k=K)
        items = ranked.item_id.to_numpy(dtype=np.float64).reshape(len(user_ids), K)
        return np.hstack([items, ranked.score.to_numpy().reshape(len(user_ids), K)])


@bentoml.service(name="recs-batched", traffic={"timeout": 60})
class BatchedRecommender:
    scorer = bentoml.depends(Scorer)

    @bentoml.api
    async def recommend(
        self,
        user_id: UserId,
        k: TopK = 10,
        recent_items: RecentItems = None,
        features: UserFeatures | None = None,
        now: RequestTime = None,
    ) -> RecommendResponse:
        (row,) = await self.scorer.to_async.top_k(np.array([user_id]))
        return RecommendResponse(
            request_id=str(uuid.uuid4()),
            user_id=user_id,
            model_version="batched",
            source="model",
            history_source="training",
            items=[
                RecommendedItem(item_id=int(item), title="", score=float(score))
                for item, score in zip(row[:K][:k], row[K:][:k], strict=True)
            ],
        )
