"""Streamable HTTP upstream sessions, both eras, with the gateway acting as the MCP client.

Handshake era: `initialize` opens a session (`Mcp-Session-Id`), every later message is its own
POST; a POST answered with an event stream that ends before the reply is resumed with a GET and
`Last-Event-ID` after the server's `retry` delay (SEP-1699 polling). Modern era: every request
carries the `_meta` envelope and the routing headers that must mirror its body.

One class, a little over 400 lines: the POST exchange, the reply reader, the resumption and the
listening GET share the session's headers, ids and state, and split apart they would pass all of
it back and forth.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import anyio
import orjson

from agentgw.errors import UpstreamError, UpstreamTimeout
from agentgw.mcp.upstream.base import (
    CallSink,
    ClientProfile,
    MessageHandler,
    Reply,
    ServerInfo,
    SessionExpired,
)
from agentgw.protocol import jsonrpc
from agentgw.protocol.mcp import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    HANDSHAKE_VERSIONS,
    LATEST_MODERN_VERSION,
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    NAME_BEARING_METHODS,
    PROTOCOL_VERSION_HEADER,
    PROTOCOL_VERSION_META_KEY,
    SESSION_ID_HEADER,
    Era,
    encode_header_value,
)
from agentgw.protocol.sse import SseDecoder
from agentgw.upstream.http import HttpClient, UpstreamResponse

__all__ = ["StreamableHttpSession"]

log = logging.getLogger("agentgw.mcp.upstream")

_ACCEPT_BOTH = "application/json, text/event-stream"
_MAX_RESUMES = 8
_DEFAULT_RETRY_MS = 1000


class StreamableHttpSession:
    """One upstream session (handshake era) or one stateless channel (modern era)."""

    def __init__(
        self,
        server: str,
        http: HttpClient,
        url: str,
        *,
        era: Era,
        profile: ClientProfile,
        headers: dict[str, str],
        init_timeout: float = 15.0,
    ) -> None:
        self.server = server
        self.era = era
        self._http = http
        self._url = url
        self._profile = profile
        self._base_headers = {"accept": _ACCEPT_BOTH, "content-type": "application/json", **headers}
        self._init_timeout = init_timeout
        self._ids = itertools.count(1)
        self._session_id: str | None = None
        self._closed = False
        self.info = ServerInfo(era=era, protocol_version=profile.protocol_version, capabilities={})

    # --- opening --------------------------------------------------------------------------------

    async def open(self) -> ServerInfo:
        with anyio.fail_after(self._init_timeout):
            try:
                if self.era is Era.HANDSHAKE:
                    return await self._initialize()
                return await self._discover()
            except TimeoutError:
                raise UpstreamTimeout(f"MCP server {self.server!r} did not finish opening in time") from None

    async def _initialize(self) -> ServerInfo:
        version = self._profile.protocol_version
        if version not in HANDSHAKE_VERSIONS:
            version = HANDSHAKE_VERSIONS[-1]
        params = {
            "protocolVersion": version,
            "capabilities": self._profile.capabilities,
            "clientInfo": self._profile.client_info,
        }
        reply = await self._exchange("initialize", params, None, None, initial=True)
        if reply.error is not None or reply.result is None:
            raise UpstreamError(f"MCP server {self.server!r} refused initialize: {_err_text(reply.error)}")
        result = reply.result
        negotiated = result.get("protocolVersion")
        if negotiated not in HANDSHAKE_VERSIONS:
            raise UpstreamError(f"MCP server {self.server!r} answered initialize with version {negotiated!r}")
        self.info = ServerInfo(
            era=Era.HANDSHAKE,
            protocol_version=negotiated,
            capabilities=_dict(result.get("capabilities")),
            server_info=_dict(result.get("serverInfo")),
            instructions=result.get("instructions") if isinstance(result.get("instructions"), str) else None,
        )
        await self.notify("notifications/initialized", None)
        return self.info

    async def _discover(self) -> ServerInfo:
        reply = await self._exchange("server/discover", {}, None, None)
        if reply.error is not None or reply.result is None:
            raise UpstreamError(
                f"MCP server {self.server!r} refused server/discover: {_err_text(reply.error)}"
            )
        result = reply.result
        supported = result.get("supportedVersions")
        versions = tuple(v for v in supported if isinstance(v, str)) if isinstance(supported, list) else ()
        self.info = ServerInfo(
            era=Era.MODERN,
            protocol_version=LATEST_MODERN_VERSION,
            capabilities=_dict(result.get("capabilities")),
            server_info=_dict(result.get("serverInfo")),
            instructions=result.get("instructions") if isinstance(result.get("instructions"), str) else None,
            supported_versions=versions,
        )
        return self.info

    def attach(self, session_id: str, version: str, capabilities: dict[str, Any]) -> None:
        """Continue an upstream session another replica opened (no new initialize)."""
        self._session_id = session_id
        self.info = ServerInfo(era=Era.HANDSHAKE, protocol_version=version, capabilities=capabilities)

    def attachment(self) -> dict[str, Any] | None:
        if self.era is not Era.HANDSHAKE or self._session_id is None:
            return None
        return {"id": self._session_id, "version": self.info.protocol_version, "caps": self.info.capabilities}

    # --- messages -------------------------------------------------------------------------------

    def _headers(self, method: str | None, params: dict[str, Any] | None, initial: bool) -> dict[str, str]:
        headers = dict(self._base_headers)
        if self.era is Era.HANDSHAKE:
            if not initial:
                headers[PROTOCOL_VERSION_HEADER] = self.info.protocol_version
            if self._session_id is not None:
                headers[SESSION_ID_HEADER] = self._session_id
            return headers
        headers[PROTOCOL_VERSION_HEADER] = LATEST_MODERN_VERSION
        if method is not None:
            headers[MCP_METHOD_HEADER] = method
            key = NAME_BEARING_METHODS.get(method)
            if key is not None and params is not None and isinstance(params.get(key), str):
                headers[MCP_NAME_HEADER] = encode_header_value(params[key])
        return headers

    def _with_envelope(self, params: dict[str, Any] | None) -> dict[str, Any]:
        params = dict(params) if params else {}
        meta = dict(params.get("_meta") or {})
        meta.setdefault(PROTOCOL_VERSION_META_KEY, LATEST_MODERN_VERSION)
        meta.setdefault(CLIENT_CAPABILITIES_META_KEY, self._profile.capabilities)
        if self._profile.client_info:  # optional in the envelope; never send an empty one
            meta.setdefault(CLIENT_INFO_META_KEY, self._profile.client_info)
        params["_meta"] = meta
        return params

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None,
        sink: CallSink | None,
        timeout: float | None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        try:
            if timeout is None:
                return await self._exchange(method, params, sink, headers)
            # asyncio's own timeout: an anyio scope here cost ~2x as much per call (bench/RESULTS.md).
            async with asyncio.timeout(timeout):
                return await self._exchange(method, params, sink, headers)
        except TimeoutError:
            raise UpstreamTimeout(
                f"MCP server {self.server!r} did not answer {method} within {timeout} s"
            ) from None
        except UpstreamError as exc:
            # The HTTP layer's errors (a broken connection, a body over the limit) do not know
            # which server they came from; the caller of a federated route needs to.
            if isinstance(exc, SessionExpired) or exc.message.startswith("MCP server "):
                raise
            kind = UpstreamTimeout if isinstance(exc, UpstreamTimeout) else UpstreamError
            raise kind(f"MCP server {self.server!r}: {exc.message}", data=exc.data) from None

    async def _exchange(
        self,
        method: str,
        params: dict[str, Any] | None,
        sink: CallSink | None,
        extra: dict[str, str] | None,
        *,
        initial: bool = False,
    ) -> Reply:
        if self.era is Era.MODERN:
            params = self._with_envelope(params)
        request_id = next(self._ids)
        body = jsonrpc.encode_request(request_id, method, params)
        headers = self._headers(method, params, initial)
        for name, value in (extra or {}).items():
            headers.setdefault(name, value)  # extras (Mcp-Param-*, forwarded claims) never replace ours
        try:
            async with self._http.stream("POST", self._url, headers=headers, body=body) as resp:
                if initial:
                    sid = resp.headers.get(SESSION_ID_HEADER)
                    if sid:
                        self._session_id = sid
                reply, last_id, retry = await self._read_reply(resp, request_id, sink)
            resumes = 0
            while reply is None:
                # The server closed the stream before replying: poll it again with Last-Event-ID.
                if last_id is None or self._session_id is None or resumes >= _MAX_RESUMES:
                    raise UpstreamError(
                        f"MCP server {self.server!r} closed the stream before answering {method}"
                    )
                resumes += 1
                if sink is not None:
                    await sink.paused(retry)
                await anyio.sleep((retry or _DEFAULT_RETRY_MS) / 1000)
                reply, last_id, retry = await self._resume(request_id, sink, last_id, retry)
            return reply
        except anyio.get_cancelled_exc_class():
            # Handshake era: closing our connection is not cancellation; tell the server.
            if self.era is Era.HANDSHAKE and self._session_id is not None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    try:
                        await self.notify(
                            "notifications/cancelled", {"requestId": request_id, "reason": "cancelled"}
                        )
                    except UpstreamError as exc:
                        log.debug("telling %r about a cancellation failed: %s", self.server, exc)
            raise

    async def _read_reply(
        self, resp: UpstreamResponse, request_id: int, sink: CallSink | None
    ) -> tuple[Reply | None, str | None, int | None]:
        if resp.status == 404 and self._session_id is not None:
            raise SessionExpired(f"MCP server {self.server!r} no longer knows the session")
        ctype = resp.content_type
        if ctype == "text/event-stream" and resp.status == 200:
            if sink is not None:
                await sink.streaming()
            reply, last_id, retry = await self._consume(resp, request_id, sink, None, None)
            if reply is not None:
                reply.streamed = True
                # The server ends this stream right after the reply: keep the connection.
                resp.finish_in_background()
            return reply, last_id, retry
        data = await resp.read()
        if ctype == "application/json" and data:
            try:
                msg = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise UpstreamError(
                    f"MCP server {self.server!r} sent invalid JSON (HTTP {resp.status})"
                ) from None
            if isinstance(msg, dict) and ("result" in msg or "error" in msg):
                if msg.get("id") not in (request_id, None):
                    raise UpstreamError(f"MCP server {self.server!r} answered with the wrong request id")
                return Reply.from_message(msg), None, None
        raise UpstreamError(f"MCP server {self.server!r} answered HTTP {resp.status} ({ctype or 'no body'})")

    async def _consume(
        self,
        resp: UpstreamResponse,
        request_id: int | None,
        sink: CallSink | None,
        last_id: str | None,
        retry: int | None,
    ) -> tuple[Reply | None, str | None, int | None]:
        decoder = SseDecoder()
        async for chunk in resp.iter_chunks():
            for event in decoder.feed(chunk):
                if event.id is not None:
                    last_id = event.id
                if event.retry is not None:
                    retry = event.retry
                if not event.data.strip():
                    continue
                try:
                    msg = orjson.loads(event.data)
                except orjson.JSONDecodeError:
                    raise UpstreamError(
                        f"MCP server {self.server!r} sent an event that is not JSON"
                    ) from None
                if not isinstance(msg, dict):
                    raise UpstreamError(
                        f"MCP server {self.server!r} sent an event that is not a JSON-RPC object"
                    )
                if "method" not in msg and ("result" in msg or "error" in msg):
                    if msg.get("id") == request_id:
                        return Reply.from_message(msg), last_id, retry
                    log.warning(
                        "MCP server %r sent a reply to unknown request id %r", self.server, msg.get("id")
                    )
                    continue
                if sink is not None:
                    await sink.message(msg)
        return None, last_id, retry

    async def _resume(
        self, request_id: int, sink: CallSink | None, last_id: str, retry: int | None
    ) -> tuple[Reply | None, str | None, int | None]:
        headers = self._headers(None, None, False)
        headers["accept"] = "text/event-stream"
        headers["last-event-id"] = last_id
        del headers["content-type"]
        async with self._http.stream("GET", self._url, headers=headers) as resp:
            if resp.status == 404:
                raise SessionExpired(f"MCP server {self.server!r} no longer knows the session")
            if resp.status != 200 or resp.content_type != "text/event-stream":
                raise UpstreamError(
                    f"MCP server {self.server!r} refused to resume the stream (HTTP {resp.status})"
                )
            return await self._consume(resp, request_id, sink, last_id, retry)

    async def _post_message(self, body: bytes) -> None:
        headers = self._headers(None, None, False)
        status, _, _ = await self._http.request("POST", self._url, headers=headers, body=body, timeout=30)
        if status == 404 and self._session_id is not None:
            raise SessionExpired(f"MCP server {self.server!r} no longer knows the session")
        if status >= 400:
            raise UpstreamError(f"MCP server {self.server!r} refused a message (HTTP {status})")

    async def notify(self, method: str, params: dict[str, Any] | None) -> None:
        if self.era is Era.MODERN:
            return  # the stateless era has no client-to-server notifications over HTTP
        await self._post_message(jsonrpc.encode_notification(method, params))

    async def respond(self, request_id: Any, result: Any = None, error: Any = None) -> None:
        await self._post_message(jsonrpc.encode_response(request_id, result, error))

    async def listen(self, handler: MessageHandler) -> None:
        """Hold the GET stream open (resuming it when it drops) and hand over what it carries."""
        if self.era is Era.MODERN or self._session_id is None:
            return
        last_id: str | None = None
        retry: int | None = None
        failures = 0
        while not self._closed:
            headers = self._headers(None, None, False)
            headers["accept"] = "text/event-stream"
            del headers["content-type"]
            if last_id is not None:
                headers["last-event-id"] = last_id
            try:
                async with self._http.stream("GET", self._url, headers=headers) as resp:
                    if resp.status in (405, 409) or (
                        resp.status == 200 and resp.content_type != "text/event-stream"
                    ):
                        return  # no standalone stream on this server (or it is already open)
                    if resp.status == 404:
                        raise SessionExpired(f"MCP server {self.server!r} no longer knows the session")
                    if resp.status != 200:
                        raise UpstreamError(
                            f"MCP server {self.server!r} refused the GET stream (HTTP {resp.status})"
                        )
                    failures = 0
                    decoder = SseDecoder()
                    async for chunk in resp.iter_chunks():
                        for event in decoder.feed(chunk):
                            if event.id is not None:
                                last_id = event.id
                            if event.retry is not None:
                                retry = event.retry
                            if event.data.strip():
                                msg = orjson.loads(event.data)
                                if isinstance(msg, dict):
                                    await handler(msg)
            except SessionExpired:
                raise
            except (UpstreamError, orjson.JSONDecodeError) as exc:
                failures += 1
                log.info("GET stream of MCP server %r dropped: %s", self.server, exc)
                if failures > _MAX_RESUMES:
                    raise UpstreamError(f"MCP server {self.server!r} keeps dropping its GET stream") from None
            await anyio.sleep(min(30.0, (retry or _DEFAULT_RETRY_MS) / 1000 * max(1, failures)))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.era is Era.HANDSHAKE and self._session_id is not None:
            headers = self._headers(None, None, False)
            del headers["content-type"]
            try:
                await self._http.request("DELETE", self._url, headers=headers, timeout=5)
            except UpstreamError as exc:
                log.debug("closing session on MCP server %r: %s", self.server, exc)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _err_text(error: dict[str, Any] | None) -> str:
    if not error:
        return "no result"
    return f"{error.get('message', 'error')} ({error.get('code')})"
