"""The intake's ASGI entry point: webhook POSTs go straight to their handlers.

FastAPI's routing, dependency solving and middleware cost about as much CPU as the
intake's own work for a re-sent alert; on the hot path a handler here gets a Starlette
``Request`` and returns a ``Response`` directly. Everything else (``/metrics``,
``/healthz``, ``/docs``, lifespan) goes to the FastAPI app, which also still declares the
webhook routes so they appear in the OpenAPI document.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

Handler = Callable[[Request], Awaitable[Response]]
log = logging.getLogger("contingency.intake")
SLOW_S = 0.05
"""An answer slower than this (the acknowledgement budget) is logged with its storing time."""


class FastLane:
    """ASGI app: ``POST`` to a path in ``handlers`` → that handler; anything else → ``api``.

    An ``HTTPException`` is answered like FastAPI does (``{"detail": ...}`` and its headers).
    """

    def __init__(self, api: FastAPI, handlers: Mapping[str, Handler]) -> None:
        self.api = api
        self.handlers = dict(handlers)

    @property
    def state(self) -> Any:
        return self.api.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = (
            self.handlers.get(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if handler is None:
            await self.api(scope, receive, send)
            return
        began = time.perf_counter()
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except HTTPException as exc:
            response = JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
        await response(scope, receive, send)
        took = time.perf_counter() - began
        if took > SLOW_S:  # where an answer past the ack budget spent its time
            stored = getattr(request.state, "store_s", None)
            log.warning(
                "intake: slow answer %.0f ms for %s (storing %s)",
                took * 1000,
                scope["path"],
                "-" if stored is None else f"{stored * 1000:.0f} ms",
            )
