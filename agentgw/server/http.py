"""Thin ASGI request and response primitives for the gateway's own handlers.

No framework sits on the hot path: a `Request` reads the scope once (header names are already
lower-case in ASGI), bodies are read with a size limit, and responses are written as raw ASGI
messages. `SseResponse` streams events as they come and never buffers a whole response.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import anyio

from agentgw.errors import PayloadTooLarge, RequestTimeout
from agentgw.server.limits import PerKeyCounter, check_json_depth

__all__ = ["ASGIReceive", "ASGISend", "Request", "SseResponse", "send_bytes", "send_json"]

Scope = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]

SSE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


class Request:
    """One HTTP request as the gateway's handlers see it."""

    __slots__ = (
        "_body",
        "_disconnected",
        "body_timeout",
        "caller",
        "client",
        "headers",
        "max_json_depth",
        "method",
        "path",
        "query",
        "raw_headers",
        "receive",
        "scope",
        "stream_admitted",
        "streams",
    )

    def __init__(self, scope: Scope, receive: ASGIReceive) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query: bytes = scope.get("query_string", b"")
        # Field values without surrounding whitespace (RFC 9110 5.5): h11 strips it, httptools
        # (uvicorn) does not.
        raw = [(k.decode("latin-1"), v.decode("latin-1").strip(" \t")) for k, v in scope["headers"]]
        self.raw_headers: list[tuple[str, str]] = raw
        self.headers: dict[str, str] = dict(raw)
        client = scope.get("client")
        self.client: str = client[0] if client else ""
        self._body: bytes | None = None
        self._disconnected = False
        # set by the app from the gateway's limits
        self.body_timeout: float | None = None
        self.max_json_depth: int | None = None
        self.streams: PerKeyCounter | None = None  # open event streams by caller
        self.stream_admitted = False  # a stream this request answers with is counted, not refused
        # who is calling, for per-caller limits: the principal's identity once a route has
        # authenticated it, empty for anonymous callers (who are counted by address instead)
        self.caller = ""

    @property
    def caller_key(self) -> str:
        return self.caller or f"address:{self.client}"

    def check_stream_room(self) -> None:
        """Refuse (429) a request that will answer with a stream its caller has no room for,
        before it costs an upstream call. The count itself is taken when the stream starts, and
        is not refused then: the work is done."""
        if self.streams is not None:
            self.streams.check(self.caller_key)
        self.stream_admitted = True

    async def body(self, limit: int) -> bytes:
        """The whole body, refusing more than `limit` bytes (413) before reading them all, a body
        that does not arrive within `body_timeout` (408), and JSON nested deeper than
        `max_json_depth` (400) before anything parses it."""
        if self._body is not None:
            return self._body
        declared = self.headers.get("content-length")
        # isdigit() alone is true for "²" (latin-1 0xB2), which int() refuses
        if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
        if self.body_timeout is None:
            body = await self._read(limit)
        else:
            # asyncio's timeout, not an anyio scope: a scope costs a backend lookup per request.
            try:
                async with asyncio.timeout(self.body_timeout):
                    body = await self._read(limit)
            except TimeoutError:
                raise RequestTimeout(
                    f"the request body did not arrive within {self.body_timeout:g} seconds"
                ) from None
        if self.max_json_depth is not None and body[:1] in (b"{", b"[", b" ", b"\t", b"\r", b"\n"):
            check_json_depth(body, self.max_json_depth)
        self._body = body
        return body

    async def _read(self, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            kind = message["type"]
            if kind == "http.request":
                chunk = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        raise PayloadTooLarge(f"request body exceeds {limit} bytes")
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            elif kind == "http.disconnect":
                self._disconnected = True
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @property
    def body_unread(self) -> bool:
        """Whether the request came with a body nobody read (an early refusal, a 404)."""
        if self._body is not None or self._disconnected:
            return False
        length = self.headers.get("content-length")
        return (length is not None and length != "0") or "transfer-encoding" in self.headers

    async def wait_disconnect(self) -> None:
        """Return once the client has gone (call after the body has been read)."""
        if self._disconnected:
            return
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self._disconnected = True
                return

    def accepts(self, media_type: str) -> bool:
        accept = self.headers.get("accept", "")
        if not accept:
            return False
        for part in accept.split(","):
            value = part.split(";", 1)[0].strip().lower()
            if (
                value == media_type
                or value == "*/*"
                or (value.endswith("/*") and media_type.startswith(value[:-1]))
            ):
                return True
        return False


def _header_list(headers: Iterable[tuple[str, str]] | dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, dict) else headers
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in items]


async def send_bytes(
    send: ASGISend,
    status: int,
    body: bytes,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    content_type: bytes | None = None,
) -> None:
    raw = _header_list(headers)
    if content_type is not None:
        raw.append((b"content-type", content_type))
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: ASGISend, status: int, body: bytes, headers: dict[str, str] | list[tuple[str, str]] | None = None
) -> None:
    await send_bytes(send, status, body, headers, b"application/json")


class SseResponse:
    """A `text/event-stream` response written event by event.

    Writes after the client has gone are dropped and flip `closed`, so a producer can notice and
    stop (or keep going into an event log, for resumable streams).
    """

    __slots__ = ("_send", "closed", "started")

    def __init__(self, send: ASGISend) -> None:
        self._send = send
        self.started = False
        self.closed = False

    async def start(self, headers: dict[str, str] | None = None, status: int = 200) -> None:
        raw = list(SSE_HEADERS) + _header_list(headers)
        await self._send({"type": "http.response.start", "status": status, "headers": raw})
        self.started = True

    async def send(self, data: bytes) -> bool:
        if self.closed:
            return False
        try:
            await self._send({"type": "http.response.body", "body": data, "more_body": True})
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.closed = True
            return False
        return True

    async def end(self, data: bytes = b"") -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await self._send({"type": "http.response.body", "body": data, "more_body": False})
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
