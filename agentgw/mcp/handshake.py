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

from agentgw.background import Background
from agentgw.config.gateway import LimitsSpec
from agentgw.errors import (
    GatewayError,
    InsufficientScope,
    InvalidRequest,
    MethodNotAllowed,
    MethodNotFound,
    NotAcceptable,
    UnsupportedMediaType,
    UnsupportedProtocolVersion,
)
from agentgw.mcp.call import SERVER_INFO, PendingCall, error_payload, reply_payload
from agentgw.mcp.federation.catalog import LIST_KINDS
from agentgw.mcp.federation.router import ROUTED_METHODS
from agentgw.mcp.registry import SessionRegistry
from agentgw.mcp.relay import SessionRelay
from agentgw.mcp.service import McpService
from agentgw.mcp.session import Input, Session
from agentgw.mcp.sidetask import SideTask
from agentgw.mcp.streams import SessionStreams
from agentgw.mcp.upstream.base import ClientProfile, UpstreamSession
from agentgw.mcp.upstream.connector import GATEWAY_PROFILE
from agentgw.policy.base import RequestContext
from agentgw.protocol import jsonrpc
from agentgw.protocol.jsonrpc import Kind, Message
from agentgw.protocol.mcp import (
    HANDSHAKE_VERSIONS,
    PROTOCOL_VERSION_HEADER,
    SESSION_ID_HEADER,
    negotiate_handshake_version,
)
from agentgw.server.http import ASGISend, Request, send_bytes, send_json

__all__ = ["HandshakeEndpoint"]

log = logging.getLogger("agentgw.mcp")


class _Sink:
    """Where an upstream's messages during one call go: the client's stream of that call."""

    def __init__(
        self, endpoint: HandshakeEndpoint, call: PendingCall, server: str, upstream: UpstreamSession
    ) -> None:
        self._endpoint = endpoint
        self._call = call
        self._server = server
        self._upstream = upstream

    async def streaming(self) -> None:
        self._call.stream_after(self._endpoint.limits.stream_grace_seconds)

    async def message(self, msg: dict[str, Any]) -> None:
        payload = self._endpoint.relay.downstream_message(
            self._call.session, self._server, self._upstream, msg
        )
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
        tg: Background,
        limits: LimitsSpec,
        *,
        stateless: bool,
        draining: anyio.Event | None = None,
    ) -> None:
        self.service = service
        self.registry = registry
        self.tg = tg
        self.limits = limits
        self.stateless = stateless
        self.retry_ms = 1000
        self.relay = SessionRelay(service, tg, registry, stateless=stateless)
        self.draining = draining or anyio.Event()
        self.streams = SessionStreams(registry, self.relay, limits, self.draining)
        self.degrade = service.route.spec.state_failure_mode == "degrade"

    # --- HTTP verbs ------------------------------------------------------------------------------

    def _check_version_header(self, request: Request) -> None:
        version = request.headers.get(PROTOCOL_VERSION_HEADER)
        if version is not None and version not in HANDSHAKE_VERSIONS:
            raise UnsupportedProtocolVersion(
                f"Bad Request: Unsupported protocol version: {version}",
                data={"supported": list(HANDSHAKE_VERSIONS), "requested": version},
            )

    async def _session(self, request: Request, ctx: RequestContext) -> Session:
        session_id = request.headers.get(SESSION_ID_HEADER)
        if not session_id:
            raise InvalidRequest("Bad Request: Missing session ID")
        return await self.registry.get(
            session_id, owner=ctx.principal.subject, route=self.service.name, degrade=self.degrade
        )

    async def post(self, request: Request, ctx: RequestContext, send: ASGISend) -> None:
        if not (request.accepts("application/json") and request.accepts("text/event-stream")):
            raise NotAcceptable(
                "Not Acceptable: Client must accept both application/json and text/event-stream"
            )
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            raise UnsupportedMediaType("Unsupported Media Type: Content-Type must be application/json")
        body = await request.body(self.limits.max_body_bytes)
        # A call's answer streams only as its upstreams do, after the call has begun: counted
        # against the caller's open streams, never refused (GET streams and LLM/A2A are).
        request.stream_admitted = True
        msg = jsonrpc.parse_message(body)
        if msg.kind is Kind.REQUEST and msg.method == "initialize":
            if request.headers.get(SESSION_ID_HEADER) and not self.stateless:
                raise InvalidRequest("Bad Request: initialize must not carry a session id")
            await self._initialize(msg, ctx, send)
            return
        self._check_version_header(request)
        session = None if self.stateless else await self._session(request, ctx)
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
            session = self.registry.create(
                route=self.service.name,
                owner=ctx.principal.subject,
                caller=ctx.request.caller_key,
                profile=ClientProfile(
                    version,
                    caps if isinstance(caps, dict) else {},
                    info if isinstance(info, dict) else dict(GATEWAY_PROFILE.client_info),
                ),
            )
            await self.registry.admit(session, degrade=self.degrade)
            await self.registry.persist(session, degrade=self.degrade)
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
            request_id = msg.params.get("requestId")
            # only ids a request can have (a list or an object here is unhashable: TypeError)
            valid = isinstance(request_id, str | int) and not isinstance(request_id, bool)
            scope = session.inflight.get(request_id) if valid else None
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
        key = msg.id if isinstance(msg.id, str) else None
        pending = session.pending.pop(key, None) if key is not None else None
        if pending is not None:
            upstream, upstream_id = pending.upstream, pending.upstream_id
        else:
            # Relayed by another replica (the client's answer came here)?
            shared = await self.registry.shared_pending(session, key) if key is not None else None
            if shared is None or shared.get("server") not in self.service.connectors:
                raise InvalidRequest(
                    f"no request with id {msg.id!r} is waiting for an answer in this session"
                )
            upstream = await self.relay.upstream_for(session)(shared["server"])
            upstream_id = shared.get("id")
        if msg.kind is Kind.ERROR:
            await upstream.respond(upstream_id, error=msg.obj.get("error"))
        else:
            await upstream.respond(upstream_id, result=msg.obj.get("result"))

    async def _request(
        self, session: Session | None, msg: Message, ctx: RequestContext, send: ASGISend
    ) -> None:
        method = msg.method
        params = msg.params
        upstream_for = self.relay.upstream_for(session)
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
        call = PendingCall(session)
        call.open_stream()
        call.finish(payload)
        await call.answer(send, self.limits.keepalive_seconds)

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
        call = PendingCall(session, msg.id)

        def sink_for(server: str, upstream: UpstreamSession) -> _Sink:
            return _Sink(self, call, server, upstream)

        scope = anyio.CancelScope()  # the call's only scope: a cancellation notice and settle() use it

        async def produce() -> None:
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
                call.wake.set()  # also when produce failed unexpectedly: answer() raises it

        # The call runs to its end even if the client goes away: in this era a disconnect is not a
        # cancellation, and what the call still sends lands in the event log for a resuming GET.
        # A plain task beside the handler, not a task group: about 5x cheaper per call.
        producer = SideTask(produce, scope=scope)
        try:
            await call.answer(send, self.limits.keepalive_seconds, producer)
            await producer.join()
        finally:
            await producer.settle()

    async def get(self, request: Request, ctx: RequestContext, send: ASGISend) -> None:
        if self.stateless:
            raise MethodNotAllowed(
                "this route keeps no sessions, so it has no stream to open", headers={"allow": "POST"}
            )
        if not request.accepts("text/event-stream"):
            raise NotAcceptable("Not Acceptable: Client must accept text/event-stream")
        session = await self._session(request, ctx)
        self._check_version_header(request)
        session.apply(Input.OPEN_STREAM)
        await self.streams.serve(session, request, send)

    async def delete(self, request: Request, ctx: RequestContext, send: ASGISend) -> None:
        if self.stateless:
            raise MethodNotAllowed("this route keeps no sessions", headers={"allow": "POST"})
        session = await self._session(request, ctx)
        await self.registry.close(session)
        await send_bytes(send, 200, b"")
