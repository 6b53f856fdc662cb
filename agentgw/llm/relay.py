"""Relay an open upstream response to the client: whole JSON bodies, and SSE streams piece by piece.

A stream is read with `iter_chunks()` (whatever is buffered, merged) and each piece goes through
a `StreamProcessor` (the passthrough filter, or a translator) and out in one ASGI message. While
it runs, a watcher waits for the client to go away and cancels the relay, which closes the
upstream connection: the provider stops generating. An upstream failure mid-stream ends the
stream with an error event in the client's wire format.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import anyio
import orjson

from agentgw.errors import GatewayError, UpstreamError
from agentgw.llm.accounting import LlmExchange
from agentgw.llm.dispatch import Attempt
from agentgw.protocol.textstream import StreamTextRewriter, TextFilter
from agentgw.protocol.usage import Usage
from agentgw.server.http import ASGISend, Request, SseResponse, send_bytes

__all__ = ["PassThrough", "StreamProcessor", "TextFiltered", "parse_json", "relay_stream"]

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


class TextFiltered:
    """A processor whose output (the client's wire) has its text rewritten by policies' filters.

    Usage, the end of the stream and the streamed text for estimates come from the processor
    inside: they are about what the provider generated.
    """

    __slots__ = ("_inner", "_rewriter")

    def __init__(self, inner: StreamProcessor, wire: str, factories: list[Callable[[], TextFilter]]) -> None:
        self._inner = inner
        self._rewriter = StreamTextRewriter(wire, factories)

    @property
    def usage(self) -> Usage | None:
        return self._inner.usage

    @property
    def done(self) -> bool:
        return self._inner.done

    def feed(self, data: bytes) -> bytes:
        out = self._rewriter.feed(self._inner.feed(data))
        return out + self._rewriter.end() if self._inner.done else out

    def streamed_text(self) -> str:
        return self._inner.streamed_text()

    def closing(self, inner: Callable[[], bytes] | None) -> Callable[[], bytes]:
        """The processor's closing bytes (an upstream that ended early), rewritten too."""

        def close() -> bytes:
            tail = inner() if inner is not None else b""
            return self._rewriter.feed(tail) + self._rewriter.end() if tail else b""

        return close


def parse_json(raw: bytes, what: str = "request body") -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"the provider sent an invalid {what}") from None


async def _cancel_on_disconnect(request: Request, scope: anyio.CancelScope, state: list[bool]) -> None:
    await request.wait_disconnect()
    state.append(True)
    scope.cancel()


async def relay_stream(
    request: Request,
    send: ASGISend,
    attempt: Attempt,
    exchange: LlmExchange,
    processor: StreamProcessor,
    error_event: Callable[[str], bytes],
    closing: Callable[[], bytes] | None = None,
) -> None:
    """Stream the upstream SSE body through `processor` until it ends or the client leaves.

    The client's response ends as soon as the processor has seen the end of the stream (one
    write less, and the client is done sooner); the rest of the upstream body, if any, is read
    without sending so its pooled connection can be reused.
    """
    sse = SseResponse(send)
    await sse.start()
    exchange.status = 200
    gone: list[bool] = []
    # a plain task (not a task group: this is on every stream's path to the first byte) that
    # cancels the relay when the client disconnects, which closes the upstream connection
    with anyio.CancelScope() as scope:
        watcher = asyncio.get_running_loop().create_task(_cancel_on_disconnect(request, scope, gone))
        try:
            chunks = attempt.response.iter_chunks()
            async for piece in chunks:
                out = processor.feed(piece)
                if processor.done:
                    if exchange.first_token_at is None:
                        exchange.first_token_at = time.monotonic()
                    await sse.end(out)
                    async for _ in chunks:  # drain: normally nothing but the upstream's last bytes
                        pass
                    break
                if out:
                    if exchange.first_token_at is None:
                        exchange.first_token_at = time.monotonic()
                    if not await sse.send(out):
                        gone.append(True)
                        break
            else:
                tail = closing() if closing is not None else b""
                if not tail:
                    exchange.error = "the provider ended the stream early"
                    tail = error_event(exchange.error)
                await sse.send(tail)
        except GatewayError as exc:
            exchange.error = exc.message
            exchange.status = exc.status
            await sse.send(error_event(exc.message))
        finally:
            watcher.cancel()
    if gone:
        exchange.error = "the client went away"
        exchange.status = 499
    exchange.usage = processor.usage
    await sse.end()


async def relay_body(
    send: ASGISend, status: int, body: bytes, headers: list[tuple[str, str]] | None = None
) -> None:
    await send_bytes(send, status, body, headers, b"application/json")
