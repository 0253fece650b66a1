"""A no-op BentoML service with the recommendation endpoint's signature: the framework's ceiling.

``bench/serving_throughput.py`` serves it beside the real service, with the same service settings,
and drives both with the same requests. It validates the same request model and returns a response
of the same shape (``k`` items with titles and scores) without looking at any model or state.
Like the real endpoint it is async (answered on the event loop, not in BentoML's thread pool) and
runs with the same framework fix (``recs_platform.serving.framework``).
"""

import bentoml

from recs_platform.serving.framework import cancel_request_timers
from recs_platform.serving.schemas import (
    RecentItems,
    RecommendedItem,
    RecommendResponse,
    RequestTime,
    TopK,
    UserFeatures,
    UserId,
)

cancel_request_timers()  # the framework as the real service runs it


@bentoml.service(name="recs-noop", traffic={"timeout": 60})
class NoopService:
    @bentoml.api
    async def recommend(
        self,
        user_id: UserId,
        k: TopK = 10,
        recent_items: RecentItems = None,
        features: UserFeatures | None = None,
        now: RequestTime = None,
    ) -> RecommendResponse:
        return RecommendResponse(
            request_id="noop",
            user_id=user_id,
            model_version="noop",
            source="model",
            history_source="online_store",
            items=[RecommendedItem(item_id=item, title=f"Movie {item}", score=1.0 / item) for item in range(1, k + 1)],
        )
