"""The no-op service plus the model's own list for the user, and nothing else: what the snapshot
path cannot do without.

``bench/serving_throughput.py --floor`` serves it beside the no-op. Per request it does what the
no-op does, plus the production model's list for a known user (``recommend_one``: the scoring
and the top k, the work every computed answer includes), answered with the list's items and
their titles. Nothing else: no online store, precomputed lists, fallbacks, serving log or shadow
traffic. Its ratio to the no-op is therefore the most any serving code could reach on the
snapshot path with this model on this machine.
"""

import bentoml

from recs_platform.serving.framework import cancel_request_timers, freeze_loaded_objects
from recs_platform.serving.model import production_registry
from recs_platform.serving.schemas import (
    RecentItems,
    RecommendedItem,
    RecommendResponse,
    RequestTime,
    TopK,
    UserFeatures,
    UserId,
)
from recs_platform.settings import PlatformPaths

cancel_request_timers()  # the framework as the real service runs it


@bentoml.service(name="recs-model-floor", traffic={"timeout": 60})
class ModelFloorService:
    def __init__(self) -> None:
        self.bundle = production_registry(PlatformPaths.from_env()).load_production()
        freeze_loaded_objects()  # as the real service does after a load

    @bentoml.api
    async def recommend(
        self,
        user_id: UserId,
        k: TopK = 10,
        recent_items: RecentItems = None,
        features: UserFeatures | None = None,
        now: RequestTime = None,
    ) -> RecommendResponse:
        items, scores = self.bundle.model.recommend_one(user_id, k)
        return RecommendResponse(
            request_id="floor",
            user_id=user_id,
            model_version=self.bundle.version,
            source="model",
            history_source="training",
            items=[
                RecommendedItem(item_id=item, title=self.bundle.titles.get(item, ""), score=score)
                for item, score in zip(items.tolist(), scores.tolist(), strict=True)
            ],
        )
