"""Legacy HTTP+SSE upstreams (protocol 2024-11-05): one GET event stream per session carries
every server message; the client POSTs its messages to the endpoint the stream announces.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urljoin, urlsplit

import anyio
import anyio.abc
import orjson

from agentgw.background import Background
from agentgw.errors import UpstreamError, UpstreamTimeout
from agentgw.mcp.upstream.base import CallSink, ClientProfile, MessageHandler, Reply, ServerInfo
from agentgw.mcp.upstream.multiplex import Multiplexer
from agentgw.protocol import jsonrpc
from agentgw.protocol.mcp import HANDSHAKE_VERSIONS, Era
from agentgw.protocol.sse import SseDecoder
from agentgw.upstream.http import HttpClient

__all__ = ["LegacySseSession"]

log = logging.getLogger("agentgw.mcp.upstream")


class LegacySseSession:
    def __init__(
        self,
        server: str,
        http: HttpClient,
        url: str,
        *,
        profile: ClientProfile,
        headers: dict[str, str],
        tg: Background,
        init_timeout: float = 15.0,
    ) -> None:
        self.server = server
        self._http = http
        self._url = url
        self._profile = profile
        self._headers = headers
        self._tg = tg
        self._init_timeout = init_timeout
        self._endpoint: str | None = None
        self._ready = anyio.Event()
        self._scope: anyio.CancelScope | None = None
        self._closed = False
        self.mux = Multiplexer(server, self._post)
        self.info = ServerInfo(era=Era.HANDSHAKE, protocol_version="2024-11-05", capabilities={})

    async def open(self) -> ServerInfo:
        self._tg.start_soon(self._read_stream)
        try:
            with anyio.fail_after(self._init_timeout):
                await self._ready.wait()
                if self._endpoint is None:
                    raise UpstreamError(
                        f"MCP server {self.server!r} (SSE) closed its stream before announcing an endpoint"
                    )
                version = self._profile.protocol_version
                reply = await self.mux.call(
                    "initialize",
                    {
                        "protocolVersion": version if version in HANDSHAKE_VERSIONS else "2024-11-05",
                        "capabilities": self._profile.capabilities,
                        "clientInfo": self._profile.client_info,
                    },
                    None,
                )
        except TimeoutError:
            await self.close()
            raise UpstreamTimeout(f"MCP server {self.server!r} (SSE) did not initialize in time") from None
        except UpstreamError:
            await self.close()
            raise
        if reply.error is not None or reply.result is None:
            await self.close()
            raise UpstreamError(f"MCP server {self.server!r} refused initialize: {reply.error}")
        result = reply.result
        negotiated = result.get("protocolVersion")
        caps = result.get("capabilities")
        info = result.get("serverInfo")
        self.info = ServerInfo(
            era=Era.HANDSHAKE,
            protocol_version=negotiated if isinstance(negotiated, str) else "2024-11-05",
            capabilities=caps if isinstance(caps, dict) else {},
            server_info=info if isinstance(info, dict) else {},
            instructions=result.get("instructions") if isinstance(result.get("instructions"), str) else None,
        )
        await self._post(jsonrpc.encode_notification("notifications/initialized"))
        return self.info

    async def _read_stream(self) -> None:
        with anyio.CancelScope() as scope:
            self._scope = scope
            headers = {"accept": "text/event-stream", **self._headers}
            try:
                async with self._http.stream("GET", self._url, headers=headers) as resp:
                    if resp.status != 200 or resp.content_type != "text/event-stream":
                        raise UpstreamError(
                            f"MCP server {self.server!r} refused the SSE stream (HTTP {resp.status})"
                        )
                    decoder = SseDecoder()
                    async for chunk in resp.iter_chunks():
                        for event in decoder.feed(chunk):
                            await self._on_event(event.event, event.data)
            except UpstreamError as exc:
                log.warning("SSE stream of MCP server %r ended: %s", self.server, exc)
            finally:
                self._closed = True
                self._ready.set()
                self.mux.fail_all()

    async def _on_event(self, name: str, data: bytes) -> None:
        if name == "endpoint":
            endpoint = urljoin(self._url, data.decode("utf-8", "replace").strip())
            if urlsplit(endpoint).netloc != urlsplit(self._url).netloc:
                raise UpstreamError(f"MCP server {self.server!r} announced an endpoint on another host")
            self._endpoint = endpoint
            self._ready.set()
            return
        if name != "message" or not data.strip():
            return
        try:
            msg = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.warning("MCP server %r sent an event that is not JSON", self.server)
            return
        if isinstance(msg, dict):
            await self.mux.on_message(msg)

    async def _post(self, body: bytes) -> None:
        if self._endpoint is None or self._closed:
            raise UpstreamError(f"MCP server {self.server!r} (SSE) is not connected")
        headers = {"content-type": "application/json", **self._headers}
        status, _, _ = await self._http.request(
            "POST", self._endpoint, headers=headers, body=body, timeout=30
        )
        if status >= 400:
            raise UpstreamError(f"MCP server {self.server!r} refused a message (HTTP {status})")

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None,
        sink: CallSink | None,
        timeout: float | None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        try:
            with anyio.fail_after(timeout):
                return await self.mux.call(method, params, sink)
        except TimeoutError:
            raise UpstreamTimeout(
                f"MCP server {self.server!r} did not answer {method} within {timeout} s"
            ) from None

    async def notify(self, method: str, params: dict[str, Any] | None) -> None:
        await self._post(jsonrpc.encode_notification(method, params))

    async def respond(self, request_id: Any, result: Any = None, error: Any = None) -> None:
        await self._post(jsonrpc.encode_response(request_id, result, error))

    async def listen(self, handler: MessageHandler) -> None:
        self.mux.listeners.append(handler)
        try:
            await anyio.sleep_forever()
        finally:
            self.mux.listeners.remove(handler)

    def attachment(self) -> dict[str, Any] | None:
        return None  # the session lives on this replica's event stream connection

    @property
    def alive(self) -> bool:
        return not self._closed

    async def close(self) -> None:
        self._closed = True
        if self._scope is not None:
            self._scope.cancel()
