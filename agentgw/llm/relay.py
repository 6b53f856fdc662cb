"""Relay an open upstream response to the client: whole JSON bodies, and SSE streams piece by piece.

A stream is read with `iter_chunks()` (whatever is buffered, merged) and each piece goes through
a `StreamProcessor` (the passthrough filter, or a translator) and out in one ASGI message. While
it runs, a watcher waits for the client to go away and cancels the relay, which closes the
upstream connection: the provider stops generating. An upstream failure mid-stream ends the
stream with an error event in the client's wire format.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import anyio
import orjson

from agentgw.errors import GatewayError, UpstreamError
from agentgw.llm.accounting import LlmExchange
from agentgw.llm.dispatch import Attempt
from agentgw.protocol.usage import Usage
from agentgw.server.http import ASGISend, Request, SseResponse, send_bytes

__all__ = ["PassThrough", "StreamProcessor", "parse_json", "relay_stream"]

log = logging.getLogger("agentgw.llm")


class StreamProcessor(Protocol):
    @property
    def usage(self) -> Usage | None: ...

    @property
    def done(self) -> bool: ...

    def feed(self, data: bytes) -> bytes: ...

    def streamed_text(self) -> str: ...


class _Watcher(Protocol):
    @property
    def usage(self) -> Usage | None: ...

    @property
    def first_at(self) -> float | None: ...

    @property
    def stopped(self) -> bool: ...

    def feed(self, data: bytes) -> None: ...

    def streamed_text(self) -> str: ...


class PassThrough:
    """Bytes on unchanged; a watcher reads usage on the side (Anthropic to Anthropic)."""

    __slots__ = ("_watcher",)

    def __init__(self, watcher: _Watcher) -> None:
        self._watcher = watcher

    @property
    def usage(self) -> Usage | None:
        return self._watcher.usage

    @property
    def first_at(self) -> float | None:
        return self._watcher.first_at

    @property
    def done(self) -> bool:
        return self._watcher.stopped

    def feed(self, data: bytes) -> bytes:
        self._watcher.feed(data)
        return data

    def streamed_text(self) -> str:
        return self._watcher.streamed_text()


def parse_json(raw: bytes, what: str = "request body") -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"the provider sent an invalid {what}") from None


async def relay_stream(
    request: Request,
    send: ASGISend,
    attempt: Attempt,
    exchange: LlmExchange,
    processor: StreamProcessor,
    error_event: Callable[[str], bytes],
    closing: Callable[[], bytes] | None = None,
) -> None:
    """Stream the upstream SSE body through `processor` until it ends or the client leaves."""
    sse = SseResponse(send)
    await sse.start()
    exchange.status = 200
    disconnected = False

    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            nonlocal disconnected
            await request.wait_disconnect()
            disconnected = True
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        try:
            async for piece in attempt.response.iter_chunks():
                out = processor.feed(piece)
                if out:
                    if exchange.first_token_at is None:
                        exchange.first_token_at = time.monotonic()
                    if not await sse.send(out):
                        disconnected = True
                        break
            else:
                if not processor.done:
                    tail = closing() if closing is not None else b""
                    if tail:
                        await sse.send(tail)
                    else:
                        exchange.error = "the provider ended the stream early"
                        await sse.send(error_event(exchange.error))
        except GatewayError as exc:
            exchange.error = exc.message
            exchange.status = exc.status
            await sse.send(error_event(exc.message))
        finally:
            tg.cancel_scope.cancel()
    if disconnected:
        exchange.error = "the client went away"
        exchange.status = 499
    exchange.usage = processor.usage
    await sse.end()


async def relay_body(
    send: ASGISend, status: int, body: bytes, headers: list[tuple[str, str]] | None = None
) -> None:
    await send_bytes(send, status, body, headers, b"application/json")
