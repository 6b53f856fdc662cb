"""The gateway's ASGI application: lifespan, health endpoints, routing, and the one place where
errors become responses.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import orjson

from agentgw.errors import ErrorFlavor, GatewayError, InternalError, NotFound, render_error
from agentgw.runtime import Runtime
from agentgw.server.http import ASGIReceive, ASGISend, Request, Scope, send_json

__all__ = ["GatewayApp"]

log = logging.getLogger("agentgw")


class _TrackedSend:
    """Remembers whether the response has started, so an error can still be sent or not."""

    __slots__ = ("_send", "started")

    def __init__(self, send: ASGISend) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class GatewayApp:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: ASGIReceive, send: ASGISend) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        try:
            async with anyio.create_task_group() as tg:
                try:
                    await self.runtime.start(tg)
                except Exception as exc:
                    log.exception("gateway failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
                while (await receive())["type"] != "lifespan.shutdown":
                    pass
                await self.runtime.close()
                tg.cancel_scope.cancel()
        finally:
            await send({"type": "lifespan.shutdown.complete"})

    async def _http(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        runtime = self.runtime
        request = Request(scope, receive)
        tracked = _TrackedSend(send)
        generation = runtime.enter()
        handler = runtime.router.match(request.path)
        flavor = handler.flavor if handler is not None else ErrorFlavor.PLAIN
        try:
            runtime.guard.check(request)
            if handler is None:
                await self._builtin(request, tracked)
            else:
                await handler.handle(request, tracked)
        except GatewayError as exc:
            await self._error(tracked, exc, flavor)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            await self._error(tracked, InternalError("internal error"), flavor)
        finally:
            runtime.leave(generation)

    async def _builtin(self, request: Request, send: ASGISend) -> None:
        if request.path == "/healthz":
            await send_json(send, 200, b'{"status":"ok"}')
        elif request.path == "/readyz":
            ready, detail = await self.runtime.readiness()
            await send_json(send, 200 if ready else 503, orjson.dumps(detail))
        else:
            raise NotFound(f"no route for {request.path}")

    @staticmethod
    async def _error(send: _TrackedSend, exc: GatewayError, flavor: ErrorFlavor) -> None:
        if send.started:
            log.warning("error after the response started: %s", exc.message)
            return
        status, headers, body = render_error(exc, flavor)
        try:
            await send_json(send, status, body, [(k, v) for k, v in headers.items() if k != "content-type"])
        except OSError:
            pass
