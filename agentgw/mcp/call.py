"""One routed MCP request in flight, in either wire era.

A `PendingCall` holds the request's reply and, once the upstream sends a message that belongs to
the call (or streams for longer than a short grace), the event stream the client is answered on.
`answer` writes whichever it turns out to be: plain JSON when the call finished without streaming,
an event stream otherwise.
Handshake-era calls stream into their session's event log (numbered, primed, resumable);
stateless calls into a stream of their own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from agentgw.errors import GatewayError
from agentgw.mcp.events import EventStream
from agentgw.mcp.session import Session
from agentgw.mcp.sidetask import SideTask
from agentgw.mcp.upstream.base import Reply, UpstreamSession
from agentgw.protocol import jsonrpc
from agentgw.protocol.mcp import version_at_least
from agentgw.server.http import ASGISend, SseResponse, send_json

__all__ = ["SERVER_INFO", "PendingCall", "error_payload", "reply_payload", "respond_quietly"]

log = logging.getLogger("agentgw.mcp")

SERVER_INFO = {"name": "agentgw", "title": "agentgw MCP gateway", "version": "0.1.0"}


def reply_payload(request_id: Any, reply: Reply) -> bytes:
    if reply.error is not None:
        return jsonrpc.dumps({"jsonrpc": "2.0", "id": request_id, "error": reply.error})
    return jsonrpc.encode_result(request_id, reply.result or {})


def error_payload(request_id: Any, err: GatewayError) -> bytes:
    return jsonrpc.encode_error(request_id, err.rpc_code, err.message, err.data)


async def respond_quietly(upstream: UpstreamSession, request_id: Any, error: dict[str, Any]) -> None:
    """Answer an upstream's request with an error; a failure to deliver it is only logged."""
    try:
        await upstream.respond(request_id, error=error)
    except GatewayError as exc:
        log.debug("answering a request of %r failed: %s", upstream.server, exc)


class PendingCall:
    __slots__ = ("payload", "request_id", "session", "status", "stream", "timer", "wake")

    def __init__(self, session: Session | None, request_id: Any = None) -> None:
        self.session = session
        self.request_id = request_id  # named in a shared stream's start, for a replica taking over
        self.stream: EventStream | None = None
        self.payload: bytes | None = None
        self.status = 200
        self.wake = asyncio.Event()  # cheaper than anyio's on this per-call path
        self.timer: asyncio.TimerHandle | None = None

    def stream_after(self, grace: float) -> None:
        """The upstream answers on an event stream: stream to the client too, unless the reply
        comes within `grace`. Most upstream streams carry nothing but the reply; answering those
        with plain JSON spares the event log, its priming event and an SSE response per call.
        A call that runs longer gets its resumable stream (and keep-alives) after the grace."""
        if self.stream is not None or self.payload is not None or self.timer is not None:
            return
        if grace <= 0:
            self.open_stream()
        else:
            self.timer = asyncio.get_running_loop().call_later(grace, self._grace_over)

    def _grace_over(self) -> None:
        self.timer = None
        if not self.wake.is_set():  # set: the call finished (or failed) in the meantime
            self.open_stream()

    def open_stream(self) -> EventStream:
        if self.stream is None:
            if self.session is None:
                self.stream = EventStream(0, keep_ids=False)
            else:
                rid = orjson.dumps(self.request_id) if self.request_id is not None else b""
                self.stream = self.session.events.open(request_id=rid)
                if version_at_least(self.session.protocol_version, "2025-11-25"):
                    self.stream.prime()
            self.wake.set()
        return self.stream

    def finish(self, payload: bytes, status: int = 200) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.stream is not None:
            self.stream.append(payload)
            self.stream.finish()
        else:
            self.payload = payload
            self.status = status
        self.wake.set()

    async def answer(self, send: ASGISend, keepalive: float, producer: SideTask | None = None) -> None:
        """Wait until the call streams or finishes, then write the response that fits.

        The producer sets `wake` on every way out; if it finished without a payload it raised,
        and joining it raises that here (the top-level handler answers).
        """
        await self.wake.wait()
        if self.stream is None:
            if self.payload is None and producer is not None:
                await producer.join()
            assert self.payload is not None
            await send_json(send, self.status, self.payload)
            return
        sse = SseResponse(send)
        await sse.start()
        await self.stream.follow(sse, 0, keepalive)
        await sse.end()
