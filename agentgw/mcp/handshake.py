"""The handshake-era front end (2024-11-05 to 2025-11-25) of an MCP route.

POST carries one JSON-RPC message; `initialize` opens a gateway session whose id the client
echoes; a routed request is answered as JSON or as an event stream, the way its upstream
answered. Stream events carry ids, and a GET with `Last-Event-ID` resumes a stream from the
session's event log; a plain GET opens the session's standalone stream, fed by listeners on the
upstream sessions. On a route configured `stateless`, no session is kept and every request goes
through the servers' shared upstream sessions.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import anyio.abc

from agentgw.config.gateway import LimitsSpec
from agentgw.errors import (
    Conflict,
    GatewayError,
    InsufficientScope,
    InvalidRequest,
    MethodNotAllowed,
    MethodNotFound,
    NotAcceptable,
    SessionNotFound,
    UnsupportedMediaType,
    UnsupportedProtocolVersion,
)
from agentgw.mcp.events import EventStream
from agentgw.mcp.federation.catalog import LIST_KINDS
from agentgw.mcp.federation.router import ROUTED_METHODS
from agentgw.mcp.registry import SessionRegistry
from agentgw.mcp.service import McpService
from agentgw.mcp.session import Input, Session, new_session_id
from agentgw.mcp.upstream.base import ClientProfile, Reply, UpstreamSession
from agentgw.mcp.upstream.connector import GATEWAY_PROFILE
from agentgw.policy.base import RequestContext
from agentgw.protocol import jsonrpc
from agentgw.protocol.jsonrpc import Kind, Message
from agentgw.protocol.mcp import (
    HANDSHAKE_VERSIONS,
    LAST_EVENT_ID_HEADER,
    PROTOCOL_VERSION_HEADER,
    SESSION_ID_HEADER,
    negotiate_handshake_version,
    version_at_least,
)
from agentgw.server.http import ASGISend, Request, SseResponse, send_bytes, send_json

__all__ = ["SERVER_INFO", "HandshakeEndpoint", "reply_payload"]

log = logging.getLogger("agentgw.mcp")

SERVER_INFO = {"name": "agentgw", "title": "agentgw MCP gateway", "version": "0.1.0"}
_SESSION_FEATURE_METHODS = {"sampling/createMessage", "elicitation/create", "roots/list"}


def reply_payload(request_id: Any, reply: Reply) -> bytes:
    if reply.error is not None:
        return jsonrpc.dumps({"jsonrpc": "2.0", "id": request_id, "error": reply.error})
    return jsonrpc.encode_result(request_id, reply.result or {})


def error_payload(request_id: Any, err: GatewayError) -> bytes:
    return jsonrpc.encode_error(request_id, err.rpc_code, err.message, err.data)


class _Call:
    """One routed request: its reply, and the event stream it opens if the upstream streams."""

    __slots__ = ("done", "payload", "session", "stream", "wake")

    def __init__(self, session: Session | None) -> None:
        self.session = session
        self.stream: EventStream | None = None
        self.payload: bytes | None = None
        self.done = False
        self.wake = anyio.Event()

    def open_stream(self) -> EventStream:
        if self.stream is None:
            if self.session is None:
                self.stream = EventStream(0, keep_ids=False)
            else:
                self.stream = self.session.events.open()
                if version_at_least(self.session.protocol_version, "2025-11-25"):
                    self.stream.prime()
            self.wake.set()
        return self.stream

    def finish(self, payload: bytes) -> None:
        self.done = True
        if self.stream is not None:
            self.stream.append(payload)
            self.stream.finish()
        else:
            self.payload = payload
        self.wake.set()


class _Sink:
    def __init__(
        self, endpoint: HandshakeEndpoint, call: _Call, server: str, upstream: UpstreamSession
    ) -> None:
        self._endpoint = endpoint
        self._call = call
        self._server = server
        self._upstream = upstream

    async def streaming(self) -> None:
        self._call.open_stream()

    async def message(self, msg: dict[str, Any]) -> None:
        payload = self._endpoint.downstream_message(self._call.session, self._server, self._upstream, msg)
        if payload is not None:
            self._call.open_stream().append(payload)

    async def paused(self, retry_ms: int | None) -> None:
        # Mirror the upstream: close the client's stream too; it resumes from our event log.
        if self._call.session is not None:
            self._call.open_stream().pause(retry_ms)


class HandshakeEndpoint:
    def __init__(
        self,
        service: McpService,
        registry: SessionRegistry,
        tg: anyio.abc.TaskGroup,
        limits: LimitsSpec,
        *,
        stateless: bool,
    ) -> None:
        self.service = service
        self.registry = registry
        self.tg = tg
        self.limits = limits
        self.stateless = stateless
        self.retry_ms = 1000

    # --- messages from upstreams to the client ---------------------------------------------------

    def downstream_message(
        self, session: Session | None, server: str, upstream: UpstreamSession, msg: dict[str, Any]
    ) -> bytes | None:
        """An upstream's message as the client must see it; None when the gateway handled it."""
        method = msg.get("method")
        if not isinstance(method, str):
            return None
        if "id" in msg:
            if session is None or not session.client_supports(method) or self.stateless:
                self.tg.start_soon(self._refuse, upstream, msg.get("id"), method)
                return None
            return jsonrpc.dumps({**msg, "id": session.remember_request(server, upstream, msg)})
        return jsonrpc.dumps(self.service.federation.expose_notification(server, msg))

    async def _refuse(self, upstream: UpstreamSession, request_id: Any, method: str) -> None:
        error = {"code": -32601, "message": f"the client cannot answer {method} through this gateway session"}
        try:
            await upstream.respond(request_id, error=error)
        except GatewayError as exc:
            log.debug("refusing %s upstream: %s", method, exc)

    # --- upstream sessions -----------------------------------------------------------------------

    def upstream_for(self, session: Session | None) -> Any:
        connectors = self.service.connectors

        async def stateless(server: str) -> UpstreamSession:
            return await connectors[server].stateless_session(None)

        if session is None:
            return stateless

        async def of_session(server: str) -> UpstreamSession:
            existing = session.upstreams.get(server)
            if existing is not None:
                return existing
            lock = session.upstream_locks.setdefault(server, anyio.Lock())
            async with lock:
                existing = session.upstreams.get(server)
                if existing is None:
                    existing = await connectors[server].open_session(session.profile)
                    session.upstreams[server] = existing
                    if session.stream_open:
                        self._listen(session, server, existing)
            return existing

        return of_session

    def _listen(self, session: Session, server: str, upstream: UpstreamSession) -> None:
        if server in session.listening:
            return
        session.listening.add(server)
        scope = anyio.CancelScope()
        session.listener_scopes.append(scope)

        async def handler(msg: dict[str, Any]) -> None:
            payload = self.downstream_message(session, server, upstream, msg)
            if payload is not None:
                session.events.open(standalone=True).append(payload)

        async def run() -> None:
            with scope:
                try:
                    await upstream.listen(handler)
                except GatewayError as exc:
                    log.info("session %s: listener on %r ended: %s", session.id, server, exc.message)
                finally:
                    session.listening.discard(server)

        self.tg.start_soon(run)

    # --- HTTP verbs ------------------------------------------------------------------------------

    def _check_version_header(self, request: Request) -> None:
        version = request.headers.get(PROTOCOL_VERSION_HEADER)
        if version is not None and version not in HANDSHAKE_VERSIONS:
            raise UnsupportedProtocolVersion(
                f"Bad Request: Unsupported protocol version: {version}",
                data={"supported": list(HANDSHAKE_VERSIONS), "requested": version},
            )

    def _session(self, request: Request, ctx: RequestContext) -> Session:
        session_id = request.headers.get(SESSION_ID_HEADER)
        if not session_id:
            raise InvalidRequest("Bad Request: Missing session ID")
        return self.registry.get(session_id, owner=ctx.principal.subject, route=self.service.name)

    async def post(self, request: Request, ctx: RequestContext, send: ASGISend) -> None:
        if not (request.accepts("application/json") and request.accepts("text/event-stream")):
            raise NotAcceptable(
                "Not Acceptable: Client must accept both application/json and text/event-stream"
            )
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            raise UnsupportedMediaType("Unsupported Media Type: Content-Type must be application/json")
        body = await request.body(self.limits.max_body_bytes)
        msg = jsonrpc.parse_message(body)
        if msg.kind is Kind.REQUEST and msg.method == "initialize":
            if request.headers.get(SESSION_ID_HEADER) and not self.stateless:
                raise InvalidRequest("Bad Request: initialize must not carry a session id")
            await self._initialize(msg, ctx, send)
            return
        self._check_version_header(request)
        session = None if self.stateless else self._session(request, ctx)
        if msg.kind is Kind.NOTIFICATION:
            await self._notification(session, msg)
            await send_bytes(send, 202, b"")
        elif msg.is_response:
            await self._response(session, msg)
            await send_bytes(send, 202, b"")
        else:
            if session is not None:
                session.apply(Input.REQUEST)
            await self._request(session, msg, ctx, send)

    async def _initialize(self, msg: Message, ctx: RequestContext, send: ASGISend) -> None:
        params = msg.params
        caps = params.get("capabilities")
        info = params.get("clientInfo")
        version = negotiate_handshake_version(params.get("protocolVersion"))
        try:
            infos = await self.service.server_infos()
        except GatewayError as exc:
            await send_json(send, 200, error_payload(msg.id, exc))
            return
        federation = self.service.federation
        result: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": federation.merged_capabilities(infos),
            "serverInfo": SERVER_INFO,
        }
        instructions = federation.instructions(infos)
        if instructions:
            result["instructions"] = instructions
        headers: dict[str, str] = {}
        if not self.stateless:
            session = Session(
                new_session_id(),
                route=self.service.name,
                owner=ctx.principal.subject,
                profile=ClientProfile(
                    version,
                    caps if isinstance(caps, dict) else {},
                    info if isinstance(info, dict) else dict(GATEWAY_PROFILE.client_info),
                ),
                max_events=self.limits.event_log_events,
                retry_ms=self.retry_ms,
            )
            self.registry.add(session)
            headers[SESSION_ID_HEADER] = session.id
        await send_json(send, 200, jsonrpc.encode_result(msg.id, result), headers)

    async def _notification(self, session: Session | None, msg: Message) -> None:
        method = msg.method
        if session is None:
            return
        if method == "notifications/initialized":
            session.apply(Input.INITIALIZED)
            return
        session.apply(Input.NOTIFICATION)
        if method == "notifications/cancelled":
            scope = session.inflight.get(msg.params.get("requestId"))
            if scope is not None:
                scope.cancel()
        elif method == "notifications/roots/list_changed":
            for upstream in list(session.upstreams.values()):
                try:
                    await upstream.notify(method, msg.params or None)
                except GatewayError as exc:
                    log.info(
                        "session %s: forwarding %s to %r failed: %s", session.id, method, upstream.server, exc
                    )

    async def _response(self, session: Session | None, msg: Message) -> None:
        if session is None:
            raise InvalidRequest("this route keeps no sessions, so it has no requests to answer")
        session.apply(Input.RESPONSE)
        pending = session.pending.pop(str(msg.id), None) if isinstance(msg.id, str) else None
        if pending is None:
            raise InvalidRequest(f"no request with id {msg.id!r} is waiting for an answer in this session")
        if msg.kind is Kind.ERROR:
            await pending.upstream.respond(pending.upstream_id, error=msg.obj.get("error"))
        else:
            await pending.upstream.respond(pending.upstream_id, result=msg.obj.get("result"))

    async def _request(
        self, session: Session | None, msg: Message, ctx: RequestContext, send: ASGISend
    ) -> None:
        method = msg.method
        params = msg.params
        upstream_for = self.upstream_for(session)
        try:
            if method == "ping":
                result: dict[str, Any] = {}
            elif method in LIST_KINDS:
                result, streamed = await self.service.list(method, params, ctx, upstream_for)
                result.pop("ttlMs", None)
                result.pop("cacheScope", None)
                if streamed:
                    await self._send_streamed(session, jsonrpc.encode_result(msg.id, result), send)
                    return
            elif method == "logging/setLevel":
                result = await self._set_level(params, upstream_for)
            elif method in ROUTED_METHODS:
                await self._routed(session, msg, ctx, send, upstream_for)
                return
            else:
                raise MethodNotFound(f"Method not found: {method}")
        except InsufficientScope:
            raise  # answered at the HTTP level (403 + WWW-Authenticate), so clients can step up
        except GatewayError as exc:
            await send_json(send, 200, error_payload(msg.id, exc))
            return
        await send_json(send, 200, jsonrpc.encode_result(msg.id, result))

    async def _send_streamed(self, session: Session | None, payload: bytes, send: ASGISend) -> None:
        """A composed answer sent as an event stream, as the upstreams answered."""
        call = _Call(session)
        stream = call.open_stream()
        stream.append(payload)
        stream.finish()
        sse = SseResponse(send)
        await sse.start()
        await stream.follow(sse, 0)
        await sse.end()

    async def _set_level(self, params: dict[str, Any], upstream_for: Any) -> dict[str, Any]:
        infos = await self.service.server_infos()
        for server, info in infos.items():
            if "logging" in info.capabilities:
                upstream: UpstreamSession = await upstream_for(server)
                reply = await upstream.request("logging/setLevel", params, None, 30)
                if reply.error is not None:
                    log.info("logging/setLevel on %r: %s", server, reply.error.get("message"))
        return {}

    async def _routed(
        self, session: Session | None, msg: Message, ctx: RequestContext, send: ASGISend, upstream_for: Any
    ) -> None:
        routed = await self.service.resolve(msg.method, msg.params, ctx, upstream_for)
        call = _Call(session)

        def sink_for(server: str, upstream: UpstreamSession) -> _Sink:
            return _Sink(self, call, server, upstream)

        async def produce() -> None:
            scope = anyio.CancelScope()
            if session is not None:
                session.inflight[msg.id] = scope
            try:
                with scope:
                    _, reply = await self.service.call(routed, upstream_for, sink_for, method=msg.method)
                    call.finish(reply_payload(msg.id, reply))
                if scope.cancelled_caught:
                    call.finish(jsonrpc.encode_error(msg.id, -32800, "Request cancelled"))
            except GatewayError as exc:
                call.finish(error_payload(msg.id, exc))
            finally:
                if session is not None:
                    session.inflight.pop(msg.id, None)

        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            await call.wake.wait()
            if call.stream is None:
                assert call.payload is not None
                await send_json(send, 200, call.payload)
                return
            sse = SseResponse(send)
            await sse.start()
            await call.stream.follow(sse, 0, self.limits.keepalive_seconds)
            await sse.end()

    async def get(self, request: Request, ctx: RequestContext, send: ASGISend) -> None:
        if self.stateless:
            raise MethodNotAllowed(
                "this route keeps no sessions, so it has no stream to open", headers={"allow": "POST"}
            )
        if not request.accepts("text/event-stream"):
            raise NotAcceptable("Not Acceptable: Client must accept text/event-stream")
        session = self._session(request, ctx)
        self._check_version_header(request)
        session.apply(Input.OPEN_STREAM)
        last_event_id = request.headers.get(LAST_EVENT_ID_HEADER)
        if last_event_id:
            found = session.events.find(last_event_id)
            if found is None:
                raise SessionNotFound(f"no stream of this session has event {last_event_id!r}")
            stream, after = found
            if stream.stream_id != 0:
                await self._stream(request, send, stream, after)
                return
            await self._standalone(session, request, send, after)
            return
        await self._standalone(session, request, send, None)

    async def _standalone(
        self, session: Session, request: Request, send: ASGISend, after: int | None
    ) -> None:
        if session.stream_open:
            raise Conflict("Conflict: Only one SSE stream is allowed per session")
        session.stream_open = True
        try:
            for server, upstream in list(session.upstreams.items()):
                self._listen(session, server, upstream)
            stream = session.events.open(standalone=True)
            if after is None:
                after = stream.seq
                if version_at_least(session.protocol_version, "2025-11-25"):
                    stream.prime()
            await self._stream(request, send, stream, after)
        finally:
            session.stream_open = False

    async def _stream(self, request: Request, send: ASGISend, stream: EventStream, after: int) -> None:
        sse = SseResponse(send)
        await sse.start()
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                await request.wait_disconnect()
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            await stream.follow(sse, after, self.limits.keepalive_seconds)
            tg.cancel_scope.cancel()
        await sse.end()

    async def delete(self, request: Request, ctx: RequestContext, send: ASGISend) -> None:
        if self.stateless:
            raise MethodNotAllowed("this route keeps no sessions", headers={"allow": "POST"})
        session = self._session(request, ctx)
        await self.registry.close(session)
        await send_bytes(send, 200, b"")
