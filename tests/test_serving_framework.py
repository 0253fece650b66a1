"""The fix to BentoML's request timeout (``recs_platform.serving.framework``), in one event loop,
and the collector kept off what a server loaded."""

import asyncio
import gc
import json

from bentoml._internal.server.http.traffic import TimeoutMiddleware

from recs_platform.serving.framework import cancel_request_timers, freeze_loaded_objects
from recs_platform.serving.model import ProductionModel, Watched

cancel_request_timers()


def _app(delay_s: float):
    async def app(scope, receive, send):
        await asyncio.sleep(delay_s)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def _request(middleware: TimeoutMiddleware) -> list[dict]:
    sent = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    await middleware({"type": "http", "method": "GET", "path": "/", "headers": []}, receive, send)
    return sent


def test_a_finished_request_leaves_no_live_timer():
    async def main():
        middleware = TimeoutMiddleware(_app(0), timeout=60)
        for _ in range(20):
            sent = await _request(middleware)
            assert sent[0]["status"] == 200
        live = [timer for timer in asyncio.get_running_loop()._scheduled if not timer.cancelled()]
        return live

    assert asyncio.run(main()) == []


def test_a_request_past_the_timeout_still_gets_504():
    sent = asyncio.run(_request(TimeoutMiddleware(_app(5), timeout=0.05)))
    assert sent[0]["status"] == 504
    assert json.loads(sent[1]["body"]) == {"error": "Not able to process the request in 0.05 seconds"}


def test_swap_listeners_run_after_the_first_load_and_each_swap_only():
    production = ProductionModel(reload_interval_s=60)
    pointer = {"version": "a"}
    production.bundle = Watched("bundle", lambda: pointer["version"], str.upper)
    production.precomputed, production.online, production.challengers = (Watched(n, lambda: None, str) for n in "poc")
    swaps, polls = [], []
    production.on_swap(lambda: swaps.append(production.bundle.value))
    production.on_refresh(lambda: polls.append(production.bundle.value))
    production.refresh()
    production.refresh()
    pointer["version"] = "b"
    production.refresh()
    assert swaps == ["A", "B"]
    assert polls == ["A", "A", "B"]


def test_freezing_collects_the_garbage_first_and_freezes_the_rest():
    cycle = []
    cycle.append(cycle)
    try:
        del cycle
        freeze_loaded_objects()
        assert gc.get_freeze_count() > 1000  # the interpreter and every imported module
        assert gc.collect() == 0  # the cycle went before freezing, and nothing frozen is scanned
    finally:
        gc.unfreeze()
