"""The BentoML service: ``bentoml serve recs_platform.serving.service:RecommenderService``.

It serves whatever the registry's production pointer names (see ``ProductionModel``), reports
not-ready on ``/readyz`` until a bundle is loaded, and logs every served request as a JSON line.
"""

import logging
import time
import uuid
from datetime import UTC, datetime

import bentoml
from starlette.responses import JSONResponse

from recs_platform.serving.model import ProductionModel
from recs_platform.serving.request_log import RequestLog
from recs_platform.serving.schemas import (
    RecommendedItem,
    RecommendResponse,
    TopK,
    UserId,
)
from recs_platform.settings import PlatformPaths


@bentoml.service(name="recs-recommender", traffic={"timeout": 10})
class RecommenderService:
    # The one model declaration: a holder that loads the production bundle and hot-reloads it.
    production = ProductionModel()

    def __init__(self) -> None:
        # BentoML's server logging leaves non-bentoml loggers at WARNING; model swaps are worth seeing.
        logging.getLogger("recs_platform.serving").setLevel(logging.INFO)
        self.production.start()
        self.request_log = RequestLog(PlatformPaths.from_env().serving_logs)

    @bentoml.on_shutdown
    def stop_reloading(self) -> None:
        self.production.stop()

    def __is_ready__(self) -> bool:
        """BentoML's /readyz hook: ready once a production bundle is loaded."""
        return self.production.bundle is not None

    @bentoml.api
    def recommend(self, user_id: UserId, k: TopK = 10) -> RecommendResponse:
        """Top-``k`` items for ``user_id``; unknown users get the popularity fallback."""
        started = time.perf_counter()
        bundle = self.production.bundle  # one read: a concurrent swap cannot change it mid-request
        if bundle is None:
            # Returned rather than raised: BentoML replaces the message of any 5xx exception
            # with a generic one, and callers need to know why they are refused.
            return JSONResponse(
                {"error": "no production model is loaded yet; promote one in the registry"},
                status_code=503,
            )
        recommendations, used_fallback = bundle.recommend(user_id, k)
        response = RecommendResponse(
            request_id=str(uuid.uuid4()),
            user_id=user_id,
            model_version=bundle.version,
            fallback=used_fallback,
            items=[RecommendedItem(item_id=r.item_id, title=r.title, score=r.score) for r in recommendations],
        )
        self._log(response, k, latency_ms=(time.perf_counter() - started) * 1000)
        return response

    def _log(self, response: RecommendResponse, k: int, latency_ms: float) -> None:
        self.request_log.append(
            {
                "request_id": response.request_id,
                "timestamp": datetime.now(UTC).isoformat(),
                "user_id": response.user_id,
                "k": k,
                "model_version": response.model_version,
                "fallback": response.fallback,
                "item_ids": [item.item_id for item in response.items],
                "scores": [item.score for item in response.items],
                "latency_ms": round(latency_ms, 3),
            }
        )
