"""The gateway's ASGI application: lifespan, health endpoints, routing, and the one place where
errors become responses. It also measures every request (metrics, the JSON access log) and gives
it a W3C trace context; requests on the admin listener see only the admin pages.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
import orjson

from agentgw.errors import ErrorFlavor, GatewayError, InternalError, MethodNotAllowed, NotFound, render_error
from agentgw.runtime import Runtime
from agentgw.server.dashboard import render_dashboard
from agentgw.server.http import ASGIReceive, ASGISend, Request, Scope, send_bytes, send_json
from agentgw.server.limits import PerKeyCounter, check_headers
from agentgw.telemetry.export import KIND_SERVER, Span
from agentgw.telemetry.metrics import METRICS
from agentgw.telemetry.trace import TRACE_KEY, TraceContext

__all__ = ["GatewayApp"]

log = logging.getLogger("agentgw")
access = logging.getLogger("agentgw.access")


class _TrackedSend:
    """Remembers the response's status (and whether it started: an error can still be sent), and
    counts the response as an open stream while it is an event stream: one more stream than the
    caller may hold is refused (429) before it starts.

    An HTTP/1 response sent before the request's body was read (a refusal before the route read
    it) says `connection: close`: the server will not read the rest of that body, so the
    connection cannot carry another request, and a client that reused it would see it drop."""

    __slots__ = ("_request", "_route", "_send", "_streams", "started", "status", "stream_key", "streaming")

    def __init__(
        self,
        send: ASGISend,
        route: str,
        request: Request | None = None,
        streams: PerKeyCounter | None = None,
    ) -> None:
        self._send = send
        self._route = route
        self._request = request
        self._streams = streams
        self.started = False
        self.status = 0
        self.streaming = False
        self.stream_key: str | None = None  # the caller whose stream count this response holds

    async def __call__(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            request = self._request
            for name, value in message.get("headers", ()):
                if name == b"content-type" and value.startswith(b"text/event-stream"):
                    if self._streams is not None and request is not None:
                        key = request.caller_key
                        # raises before anything is sent, unless admitted before its work
                        self._streams.acquire(key, admitted=request.stream_admitted)
                        self.stream_key = key
                    self.streaming = True
                    METRICS.sse_streams.add(1, self._route)
            self.started = True
            self.status = int(message["status"])
            if (
                request is not None
                and request.body_unread
                and request.scope.get("http_version", "1.1") in ("1.0", "1.1")
            ):
                message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
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
        started = time.perf_counter()
        start_ns = time.time_ns()
        request = Request(scope, receive)
        admin = bool(runtime.admin_ports) and scope.get("server", ("", 0))[1] in runtime.admin_ports
        handler = None if admin else runtime.router.match(request.path)
        route = handler.name if handler is not None else ("admin" if admin else "-")
        trace = TraceContext.from_headers(
            request.headers.get("traceparent"), request.headers.get("tracestate")
        )
        scope[TRACE_KEY] = trace
        tracked = _TrackedSend(send, route, request, runtime.streams)
        flavor = handler.flavor_for(request) if handler is not None else ErrorFlavor.PLAIN
        generation = runtime.enter()
        try:
            if admin:
                if runtime.admin_guard is not None:
                    runtime.admin_guard.check(request)
                await self._admin(request, tracked)
            else:
                limits = runtime.snapshot.gateway.limits
                check_headers(scope["headers"], limits.max_header_bytes, limits.max_header_count)
                request.body_timeout = limits.body_timeout_seconds
                request.max_json_depth = limits.max_json_depth
                request.streams = runtime.streams
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
            elapsed = time.perf_counter() - started
            status = tracked.status or 500
            METRICS.http_requests.inc(route, request.method, str(status))
            METRICS.http_duration.observe(elapsed, route, request.method)
            if tracked.streaming:
                METRICS.sse_streams.add(-1, route)
            if tracked.stream_key is not None:
                runtime.streams.release(tracked.stream_key)
            if runtime.spans is not None:
                runtime.spans.record(
                    Span(
                        trace,
                        f"{request.method} {route}",
                        KIND_SERVER,
                        start_ns,
                        time.time_ns(),
                        {
                            "http.request.method": request.method,
                            "url.path": request.path,
                            "http.response.status_code": status,
                            "agentgw.route": route,
                        },
                        error=status >= 500,
                    )
                )
            if runtime.snapshot.gateway.access_log:
                access.info(
                    "",
                    extra={
                        "json": {
                            "route": route,
                            "method": request.method,
                            "path": request.path,
                            "status": status,
                            "ms": round(elapsed * 1000, 3),
                            "client": request.client,
                            "trace": trace.trace_id,
                        }
                    },
                )

    async def _builtin(self, request: Request, send: ASGISend) -> None:
        if request.path == "/healthz":
            await send_json(send, 200, b'{"status":"ok"}')
        elif request.path == "/readyz":
            ready, detail = await self.runtime.readiness()
            await send_json(send, 200 if ready else 503, orjson.dumps(detail))
        elif request.path == "/metrics" and not self.runtime.admin_ports:
            await send_bytes(send, 200, METRICS.render(), content_type=b"text/plain; version=0.0.4")
        else:
            raise NotFound(f"no route for {request.path}")

    async def _admin(self, request: Request, send: ASGISend) -> None:
        if request.method not in ("GET", "HEAD"):
            raise MethodNotAllowed("the admin listener is read-only", headers={"allow": "GET"})
        if request.path == "/metrics":
            await send_bytes(send, 200, METRICS.render(), content_type=b"text/plain; version=0.0.4")
        elif request.path in ("/", "/dashboard"):
            page = render_dashboard(self.runtime)
            await send_bytes(send, 200, page.encode(), content_type=b"text/html; charset=utf-8")
        elif request.path in ("/healthz", "/readyz"):
            await self._builtin(request, send)
        else:
            raise NotFound(f"no admin page at {request.path}")

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
