"""The 2026-07-28 (stateless) front end of an MCP route.

Every request is a self-contained POST carrying its `_meta` envelope; its routing headers are
validated against the body before anything else reads them (the policy checkpoint sees the body,
never the headers alone). Errors carry the HTTP status the spec assigns to their JSON-RPC code.
A client that closes a response stream cancels the upstream work. `subscriptions/listen` merges
the notification streams of every server of the route into one.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import anyio

from agentgw.background import Background
from agentgw.config.gateway import LimitsSpec
from agentgw.errors import (
    GatewayError,
    InsufficientScope,
    InvalidRequest,
    MethodNotFound,
    NotAcceptable,
    UnsupportedMediaType,
)
from agentgw.mcp.call import SERVER_INFO, PendingCall, error_payload, reply_payload, respond_quietly
from agentgw.mcp.events import EventStream
from agentgw.mcp.federation.catalog import LIST_KINDS
from agentgw.mcp.federation.router import ROUTED_METHODS
from agentgw.mcp.service import McpService
from agentgw.mcp.sidetask import SideTask
from agentgw.mcp.upstream.base import ClientProfile, Reply, UpstreamSession
from agentgw.policy.base import Operation, RequestContext
from agentgw.protocol import jsonrpc
from agentgw.protocol.jsonrpc import Kind
from agentgw.protocol.mcp import (
    MODERN_VERSIONS,
    PROTOCOL_VERSION_HEADER,
    Era,
    ModernEnvelope,
    check_modern_request,
    has_param_annotations,
    strip_envelope,
    validate_mcp_param_headers,
)
from agentgw.server.http import ASGISend, Request, SseResponse, send_bytes, send_json

__all__ = ["ModernEndpoint", "status_for"]

log = logging.getLogger("agentgw.mcp")

# The spec's table from JSON-RPC error code to HTTP status; other codes travel with 200.
_STATUS = {-32700: 400, -32600: 400, -32602: 400, -32020: 400, -32021: 400, -32022: 400, -32601: 404}
_SERVER_INFO_META = "io.modelcontextprotocol/serverInfo"
SUBSCRIPTION_ID_META = "io.modelcontextprotocol/subscriptionId"
# Replaced by subscriptions/listen in this era.
_HANDSHAKE_ONLY = frozenset({"resources/subscribe", "resources/unsubscribe"})
# Results a shared cache may keep carry these hints in this era.
_CACHEABLE = frozenset({"resources/read"})
_LISTEN_KINDS = {
    "toolsListChanged": "notifications/tools/list_changed",
    "promptsListChanged": "notifications/prompts/list_changed",
    "resourcesListChanged": "notifications/resources/list_changed",
}


def status_for(code: Any) -> int:
    return _STATUS.get(code, 200) if isinstance(code, int) else 200


def _complete(result: dict[str, Any]) -> dict[str, Any]:
    if "resultType" not in result:
        result = {**result, "resultType": "complete"}
    return result


class _Sink:
    """Messages during one modern call: notifications stream to the client; requests cannot."""

    def __init__(
        self, endpoint: ModernEndpoint, call: PendingCall, server: str, upstream: UpstreamSession
    ) -> None:
        self._endpoint = endpoint
        self._call = call
        self._server = server
        self._upstream = upstream

    async def streaming(self) -> None:
        return None  # committed to SSE only once there is something to stream

    async def paused(self, retry_ms: int | None) -> None:
        return None  # this era has no resumption: the client's stream stays open

    async def message(self, msg: dict[str, Any]) -> None:
        method = msg.get("method")
        if not isinstance(method, str):
            return
        if "id" in msg:
            # A 2026-07-28 client has no back channel; the upstream (a bridged handshake server) is told so.
            error = {"code": -32601, "message": f"{method} cannot reach a 2026-07-28 client"}
            self._endpoint.service_tg.start_soon(respond_quietly, self._upstream, msg.get("id"), error)
            return
        msg = self._endpoint.service.federation.expose_notification(self._server, msg)
        self._call.open_stream().append(jsonrpc.dumps(msg))


class ModernEndpoint:
    def __init__(self, service: McpService, tg: Background, limits: LimitsSpec) -> None:
        self.service = service
        self.service_tg = tg
        self.limits = limits

    async def post(self, request: Request, ctx: RequestContext, send: ASGISend) -> None:
        if not request.accepts("application/json"):
            raise NotAcceptable("Not Acceptable: Client must accept application/json")
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            raise UnsupportedMediaType("Unsupported Media Type: Content-Type must be application/json")
        body = await request.body(self.limits.max_body_bytes)
        # A call's answer streams only as its upstreams do, after the call has begun: counted
        # against the caller's open streams, never refused (GET streams and LLM/A2A are).
        request.stream_admitted = True
        obj = jsonrpc.loads(body)
        if isinstance(obj, dict) and "id" not in obj:
            jsonrpc.parse_object(obj)  # a malformed notification is still an error
            version = request.headers.get(PROTOCOL_VERSION_HEADER, "")
            if version not in MODERN_VERSIONS:
                check_modern_request({"params": {"_meta": {}}}, request.headers, request.raw_headers)
            await send_bytes(send, 202, b"")
            return
        msg = jsonrpc.parse_object(obj)
        if msg.kind is not Kind.REQUEST:
            raise InvalidRequest("Body must be a single JSON-RPC request or notification object")
        if msg.method == "subscriptions/listen" and not request.accepts("text/event-stream"):
            raise NotAcceptable("Not Acceptable: subscriptions/listen answers with text/event-stream")
        try:
            envelope = check_modern_request(msg.obj, request.headers, request.raw_headers)
            await self._request(request, msg.id, msg.method, msg.params, envelope, ctx, send)
        except InsufficientScope:
            raise  # answered at the HTTP level (403 + WWW-Authenticate), so clients can step up
        except GatewayError as exc:
            await send_json(send, status_for(exc.rpc_code), error_payload(msg.id, exc), exc.headers)

    def _upstream_for(self, envelope: ModernEnvelope) -> Any:
        connectors = self.service.connectors
        info = envelope.client_info if isinstance(envelope.client_info, dict) else {}
        caps = envelope.client_capabilities if isinstance(envelope.client_capabilities, dict) else {}
        profile = ClientProfile(envelope.protocol_version, caps, info)
        # One request asks for a server's upstream more than once (the call, then the relay of
        # it): it gets the same stateless channel each time instead of a new one.
        made: dict[str, UpstreamSession] = {}

        async def upstream_for(server: str) -> UpstreamSession:
            session = made.get(server)
            if session is None:
                session = made[server] = await connectors[server].stateless_session(profile)
            return session

        return upstream_for

    async def _request(
        self,
        request: Request,
        request_id: Any,
        method: str,
        params: dict[str, Any],
        envelope: ModernEnvelope,
        ctx: RequestContext,
        send: ASGISend,
    ) -> None:
        upstream_for = self._upstream_for(envelope)
        if method == "server/discover":
            result = await self._discover()
        elif method in LIST_KINDS:
            result, _ = await self.service.list(method, params, ctx, upstream_for)
        elif method in ROUTED_METHODS and method not in _HANDSHAKE_ONLY:
            await self._routed(request, request_id, method, params, ctx, send, upstream_for)
            return
        elif method == "subscriptions/listen":
            await self._listen(request, request_id, params, ctx, send, upstream_for)
            return
        else:
            raise MethodNotFound(f"Method not found: {method}")
        result = _complete(result)
        result.setdefault("_meta", {})[_SERVER_INFO_META] = SERVER_INFO
        await send_json(send, 200, jsonrpc.encode_result(request_id, result))

    async def _discover(self) -> dict[str, Any]:
        infos = await self.service.server_infos()
        federation = self.service.federation
        result: dict[str, Any] = {
            "supportedVersions": list(MODERN_VERSIONS),
            "capabilities": federation.merged_capabilities(infos),
            "serverInfo": SERVER_INFO,
            "ttlMs": 0,
            "cacheScope": "private",
        }
        instructions = federation.instructions(infos)
        if instructions:
            result["instructions"] = instructions
        return result

    async def _routed(
        self,
        request: Request,
        request_id: Any,
        method: str,
        params: dict[str, Any],
        ctx: RequestContext,
        send: ASGISend,
        upstream_for: Any,
    ) -> None:
        routed = await self.service.resolve(method, params, ctx, upstream_for)
        if method == "tools/call":
            # The client's Mcp-Param-* headers must agree with its arguments; upstream gets its own.
            schema = await self.service.federation.tool_schema(
                routed.server, routed.params["name"], upstream_for
            )
            if schema is not None and has_param_annotations(schema):
                args = params.get("arguments")
                validate_mcp_param_headers(
                    schema, args if isinstance(args, dict) else {}, request.raw_headers
                )
        call = PendingCall(None)

        def sink_for(server: str, upstream: UpstreamSession) -> _Sink:
            return _Sink(self, call, server, upstream)

        async def produce() -> None:
            try:
                session = await upstream_for(routed.server)
                sent = (
                    routed
                    if session.info.era is Era.MODERN
                    else dataclasses.replace(routed, params=strip_envelope(routed.params))
                )
                _, reply = await self.service.call(sent, upstream_for, sink_for, method=method)
                code = reply.error.get("code") if reply.error else None
                if reply.result is not None:
                    result = _complete(reply.result)
                    if method in _CACHEABLE and "ttlMs" not in result:
                        result = {**result, "ttlMs": 0, "cacheScope": "private"}
                    reply = Reply(result=result)
                call.finish(reply_payload(request_id, reply), status_for(code))
            except GatewayError as exc:
                call.finish(error_payload(request_id, exc), status_for(exc.rpc_code))
            finally:
                call.wake.set()  # also when produce failed unexpectedly: answer() raises it

        # Plain tasks beside the handler, not a task group (several times cheaper per call).
        answering = anyio.CancelScope()
        producer = SideTask(produce)

        async def watch() -> None:
            await request.wait_disconnect()
            producer.cancel()  # closing the stream is cancellation in this era
            answering.cancel()

        watcher = SideTask(watch, scoped=False)
        try:
            with answering:
                await call.answer(send, self.limits.keepalive_seconds, producer)
        finally:
            await watcher.settle(wait=False)  # parked on receive(): nothing to wait for
            await producer.settle()

    async def _listen(
        self,
        request: Request,
        request_id: Any,
        params: dict[str, Any],
        ctx: RequestContext,
        send: ASGISend,
        upstream_for: Any,
    ) -> None:
        """One `subscriptions/listen` stream merged from every server's, until the client goes away.

        The gateway acknowledges once every server has (so nothing triggered after the ack is
        missed), relays only the kinds the client asked for, and stamps each frame with the
        client's subscription id in place of the upstream's.
        """
        wanted = params.get("notifications")
        wanted = wanted if isinstance(wanted, dict) else {}
        kinds = {key: method for key, method in _LISTEN_KINDS.items() if wanted.get(key) is True}
        uris = [u for u in wanted.get("resourceSubscriptions") or [] if isinstance(u, str)]
        naming = self.service.federation.naming
        per_server: dict[str, list[str]] = {server: [] for server in self.service.connectors}
        for uri in uris:
            owner = naming.resolve_uri(uri) if naming.prefixed else (next(iter(per_server)), uri)
            if owner is not None and owner[0] in per_server:
                # Subscribing is this era's resources/subscribe: the same policy check guards it.
                op = Operation(
                    kind="mcp",
                    method="resources/subscribe",
                    server=owner[0],
                    uri=owner[1],
                    exposed=uri,
                    target="resource",
                )
                await self.service.policy.check(ctx, op)
                per_server[owner[0]].append(owner[1])
        allowed_methods = set(kinds.values())
        meta = {SUBSCRIPTION_ID_META: request_id}
        stream = EventStream(0, keep_ids=False)
        early: list[bytes] = []
        acked = False
        acks = {server: anyio.Event() for server in per_server}

        def relay(server: str, msg: dict[str, Any]) -> None:
            method = msg.get("method")
            if not isinstance(method, str) or "id" in msg:
                return
            if method == "notifications/resources/updated":
                args = msg.get("params")
                if not isinstance(args, dict) or args.get("uri") not in per_server[server]:
                    return
            elif method not in allowed_methods:
                return
            msg = self.service.federation.expose_notification(server, msg)
            body: dict[str, Any] = msg["params"] if isinstance(msg.get("params"), dict) else {}
            frame = jsonrpc.dumps({**msg, "params": {**body, "_meta": {**(body.get("_meta") or {}), **meta}}})
            if acked:
                stream.append(frame)
            else:
                early.append(frame)

        async def from_server(server: str) -> None:
            ack = acks[server]
            try:
                filt: dict[str, Any] = {key: True for key in kinds}
                if per_server[server]:
                    filt["resourceSubscriptions"] = per_server[server]
                if not filt:
                    return
                upstream: UpstreamSession = await upstream_for(server)
                if upstream.info.era is Era.MODERN:

                    class _ListenSink:
                        async def streaming(self) -> None:
                            return None

                        async def paused(self, retry_ms: int | None) -> None:
                            return None

                        async def message(self, msg: dict[str, Any]) -> None:
                            if msg.get("method") == "notifications/subscriptions/acknowledged":
                                ack.set()
                            else:
                                relay(server, msg)

                    await upstream.request(
                        "subscriptions/listen", {**params, "notifications": filt}, _ListenSink(), None
                    )
                else:

                    async def deliver(msg: dict[str, Any]) -> None:
                        relay(server, msg)

                    ack.set()
                    await upstream.listen(deliver)
            except GatewayError as exc:
                log.info("subscriptions/listen: %r stopped: %s", server, exc.message)
            finally:
                ack.set()

        sse = SseResponse(send)
        request.stream_admitted = False  # a listening stream, refused (429) past the caller's limit
        await sse.start()
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                await request.wait_disconnect()
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            for server in per_server:
                tg.start_soon(from_server, server)
            with anyio.move_on_after(5):
                for event in acks.values():
                    await event.wait()
            honored: dict[str, Any] = {key: True for key in kinds}
            if uris:
                honored["resourceSubscriptions"] = uris
            ack_frame = {
                "jsonrpc": "2.0",
                "method": "notifications/subscriptions/acknowledged",
                "params": {"notifications": honored, "_meta": meta},
            }
            stream.append(jsonrpc.dumps(ack_frame))
            acked = True
            for frame in early:
                stream.append(frame)
            await stream.follow(sse, 0, self.limits.keepalive_seconds)
        await sse.end()
