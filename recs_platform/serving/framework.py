"""A fix to BentoML 1.4's request timeout, applied by the services that import this module, and
the garbage collector kept off what a server loads (``freeze_loaded_objects``).

BentoML's ``TimeoutMiddleware`` schedules one timer per request (``loop.call_later(timeout, ...)``)
and never cancels it. The timer keeps the request's context alive, its OpenTelemetry spans among
it, for the whole traffic timeout: at 300 req/s and 60 s, about 150,000 objects that every full
garbage collection walks, each one a 220-270 ms pause of the worker, and so the serving p99
(docs/benchmarks.md). ``cancel_request_timers`` gives the middleware the same behaviour with the
timer cancelled when the request ends; asyncio then drops cancelled timers from its queue.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from bentoml._internal.server.http.traffic import TimeoutMiddleware
from starlette.responses import JSONResponse


async def _call_with_cancelled_timer(self: TimeoutMiddleware, scope: dict, receive: Any, send: Any) -> None:
    """``TimeoutMiddleware.__call__`` of BentoML 1.4.40, but for the ``timer.cancel()``."""
    if scope["type"] not in ("http", "websocket"):
        return await self.app(scope, receive, send)
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

    async def _send(message: dict) -> None:
        if not waiter.done():
            waiter.set_result(None)
        await send(message)

    handling = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
    try:
        await waiter
    except TimeoutError:
        if handling.cancel():
            message = {"error": f"Not able to process the request in {self.timeout} seconds"}
            await JSONResponse(message, status_code=504)(scope, receive, send)
    else:
        await handling
    finally:
        timer.cancel()


def cancel_request_timers() -> None:
    """Install the fix (idempotent); call it where a service module is imported."""
    TimeoutMiddleware.__call__ = _call_with_cancelled_timer


def freeze_loaded_objects() -> None:
    """Collect once, then move every object alive now out of the collector's sight (``gc.freeze``).

    A serving process holds hundreds of thousands of long-lived objects (the libraries it
    imports, the bundle, the online store), and every full collection walks them all while the
    requests wait: a frozen heap leaves the collector only what requests allocate. Called again
    after each swap, so the objects of the replaced values are collected first rather than kept.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
