"""The BentoML service: ``bentoml serve recs_platform.serving.service:RecommenderService``.

It answers from the production bundle, the online store and the bundle's precomputed lists
(``ProductionModel``, hot-reloaded), reports not-ready on ``/readyz`` until a bundle is loaded,
and degraded (``/readyz``, ``/metrics``, its status file) while the champion alias names a bundle
it could not load (see ``serving.health``). It logs every answer, with the exact inputs it used,
as landed serving-log files.
"""

import logging
import os
import time
from datetime import UTC, datetime

import bentoml
from bentoml.exceptions import BentoMLException
from starlette.responses import JSONResponse

from recs_platform.data.serving_log import SHOWN, ServingLogWriter
from recs_platform.serving.answer import Request, answer, answer_record
from recs_platform.serving.contract import JsonBodiesOnly, PublishedSpec, published_spec
from recs_platform.serving.framework import cancel_request_timers, freeze_loaded_objects
from recs_platform.serving.health import ReadinessMiddleware, StatusFile, metrics_text
from recs_platform.serving.inspect import AdminSettings, Inspector, build_app
from recs_platform.serving.model import ProductionModel, ServingHealth, production_registry
from recs_platform.serving.schemas import (
    RecentItems,
    RecommendedItem,
    RecommendResponse,
    RequestTime,
    TopK,
    UserFeatures,
    UserId,
)
from recs_platform.serving.shadow import ShadowMirror
from recs_platform.settings import PlatformPaths

DEFAULT_LOG_ROTATE_S = 60.0

cancel_request_timers()


inspect_app = build_app(lambda: bentoml.get_current_service().inspector)


# 60 s, not 10: an admin move verifies the bundle in a separate process first (about 6 s alone,
# more on a busy machine), and a 504 would report a move that still completes in the background.
@bentoml.service(name="recs-recommender", traffic={"timeout": 60})
@bentoml.asgi_app(inspect_app, path="/inspect")
class RecommenderService:
    # The one model declaration: a holder that loads the production bundle and hot-reloads it.
    production = ProductionModel()

    def __init__(self) -> None:
        # BentoML's server logging leaves non-bentoml loggers at WARNING; model swaps are worth seeing.
        logging.getLogger("recs_platform.serving").setLevel(logging.INFO)
        paths = PlatformPaths.from_env()
        self.status_file = StatusFile(paths.serving_status, self.production.health)
        self.production.on_refresh(self.status_file.write)
        self.production.on_swap(freeze_loaded_objects)
        self.production.start()
        rotate_s = float(os.environ.get("RECS_SERVING_LOG_ROTATE_S", DEFAULT_LOG_ROTATE_S))
        self.serving_log = ServingLogWriter(paths.serving_logs, rotate_s=rotate_s)
        self.serving_log.start()
        self.shadow = ShadowMirror(self.serving_log)
        self.shadow.start()
        self.inspector = Inspector(self.production, paths, production_registry(paths), AdminSettings.from_env())

    @bentoml.on_shutdown
    def stop_background_work(self) -> None:
        self.production.stop()
        self.shadow.stop()
        self.serving_log.stop()  # lands what is still buffered
        self.status_file.remove()

    def __is_ready__(self) -> bool:
        """BentoML's /readyz hook: ready once a production bundle is loaded. ``ReadinessMiddleware``
        answers /readyz itself, with both tags, once this instance exists."""
        return self.production.bundle.value is not None

    def __metrics__(self, content: str) -> str:
        """BentoML's /metrics hook: its metrics, then the served tag, the pointer's, load and read
        failures, and the serving log's counters."""
        return content + metrics_text(self.production.health(), self.serving_log)

    # async, though nothing is awaited: BentoML runs a sync method in a thread pool, and on 2 cores
    # the hop and the GIL handoff per request cost more than the answer itself (docs/benchmarks.md).
    @bentoml.api
    async def recommend(
        self,
        user_id: UserId,
        k: TopK = 10,
        recent_items: RecentItems = None,
        features: UserFeatures | None = None,
        now: RequestTime = None,
    ) -> RecommendResponse:
        """Top-``k`` items for ``user_id`` from their current history; unknown users get the
        segment answer when their demographics are known, else popularity."""
        started = time.perf_counter()
        # One read of each: a concurrent swap cannot change them mid-request.
        bundle, online = self.production.bundle.value, self.production.online.value
        precomputed = self.production.precomputed.value
        if bundle is None:
            # Returned rather than raised: BentoML replaces the message of any 5xx exception
            # with a generic one, and callers need to know why they are refused.
            return JSONResponse(
                {"error": "no production model is loaded yet; promote one in the registry"},
                status_code=503,
            )
        served_at = _served_at(now)
        user_features = features.model_dump(exclude_none=True) if features else None
        request = Request(user_id, k, recent_items or (), user_features, served_at)
        state = online.get(user_id) if online is not None else None
        if precomputed is not None and precomputed.bundle_version != bundle.version:
            precomputed = None  # the lists of the previous bundle, until this one's are loaded
        result = answer(bundle, request, state, precomputed)
        response = RecommendResponse(
            request_id=os.urandom(16).hex(),  # uuid4's 128 random bits, at a tenth of its cost
            user_id=user_id,
            model_version=bundle.version,
            source=result.source,
            history_source=result.history_source,
            items=[
                RecommendedItem(item_id=item, title=bundle.titles.get(item, ""), score=score)
                for item, score in zip(result.item_ids, result.scores, strict=True)
            ],
        )
        latency_ms = (time.perf_counter() - started) * 1000
        online_version = online.version if online is not None else None
        self.serving_log.append(
            answer_record(
                response.request_id, SHOWN, served_at, request, result, bundle.version, latency_ms, online_version
            )
        )
        challengers = self.production.challengers.value
        if challengers:
            self.shadow.submit(challengers, request, state, response.request_id, served_at, online_version)
        return response


def _current_health() -> ServingHealth | None:
    """The health of this process's service instance; None before it exists."""
    try:
        return bentoml.get_current_service().production.health()
    except BentoMLException:
        return None


RecommenderService.add_asgi_middleware(ReadinessMiddleware, health=_current_health)
API_INPUTS = {api.route: api.input_spec for api in RecommenderService.apis.values()}
RecommenderService.add_asgi_middleware(JsonBodiesOnly, routes=API_INPUTS)
RecommenderService.add_asgi_middleware(
    PublishedSpec, spec=lambda: published_spec(RecommenderService.openapi_spec.asdict(), API_INPUTS)
)


def _served_at(now: datetime | None) -> datetime:
    """The request's time in UTC: the caller's (naive means UTC) or the server's clock."""
    if now is None:
        return datetime.now(UTC)
    return now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
