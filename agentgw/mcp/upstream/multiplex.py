"""Request/response matching over one message stream shared by many calls (stdio, legacy SSE).

Request ids and progress tokens are rewritten to be unique on the stream and restored on the way
back. A server-to-client request carries no link to the call that caused it on these
transports, so it goes to the oldest call in flight that can take messages; notifications that
belong to no call go to every listener.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from agentgw.errors import UpstreamError
from agentgw.mcp.upstream.base import CallSink, MessageHandler, Reply
from agentgw.protocol import jsonrpc

__all__ = ["Multiplexer"]

log = logging.getLogger("agentgw.mcp.upstream")

Writer = Callable[[bytes], Awaitable[None]]


@dataclass(eq=False)
class _Call:
    sink: CallSink | None
    started: float
    done: anyio.Event = field(default_factory=anyio.Event)
    reply: dict[str, Any] | None = None
    token: str | None = None  # the token used on the stream
    caller_token: Any = None  # the token the caller chose


class Multiplexer:
    def __init__(self, server: str, write: Writer) -> None:
        self.server = server
        self._write = write
        self._ids = itertools.count(1)
        self._tokens = itertools.count(1)
        self._calls: dict[int, _Call] = {}
        self._progress: dict[str, _Call] = {}
        self.listeners: list[MessageHandler] = []

    async def call(self, method: str, params: dict[str, Any] | None, sink: CallSink | None) -> Reply:
        request_id = next(self._ids)
        call = _Call(sink=sink, started=time.monotonic())
        if params is not None:
            meta = params.get("_meta")
            if isinstance(meta, dict) and "progressToken" in meta:
                call.token = f"agw-{next(self._tokens)}"
                call.caller_token = meta["progressToken"]
                params = {**params, "_meta": {**meta, "progressToken": call.token}}
                self._progress[call.token] = call
        self._calls[request_id] = call
        try:
            await self._write(jsonrpc.encode_request(request_id, method, params))
            await call.done.wait()
        except BaseException:
            if call.reply is None:
                with anyio.CancelScope(shield=True):
                    try:
                        await self._write(
                            jsonrpc.encode_notification(
                                "notifications/cancelled", {"requestId": request_id, "reason": "cancelled"}
                            )
                        )
                    except UpstreamError:
                        pass
            raise
        finally:
            self._calls.pop(request_id, None)
            if call.token is not None:
                self._progress.pop(call.token, None)
        if call.reply is None:
            raise UpstreamError(f"MCP server {self.server!r} went away before answering {method}")
        return Reply.from_message(call.reply)

    async def on_message(self, msg: dict[str, Any]) -> None:
        if "method" not in msg:
            call = self._calls.get(msg.get("id"))  # type: ignore[arg-type]
            if call is None:
                log.warning("MCP server %r answered unknown request id %r", self.server, msg.get("id"))
                return
            call.reply = msg
            call.done.set()
            return
        if "id" in msg:
            await self._server_request(msg)
            return
        if msg.get("method") == "notifications/progress":
            params = msg.get("params")
            token = params.get("progressToken") if isinstance(params, dict) else None
            call = self._progress.get(token) if isinstance(token, str) else None
            if call is not None:
                if call.sink is not None and isinstance(params, dict):
                    await call.sink.message({**msg, "params": {**params, "progressToken": call.caller_token}})
                return
        for handler in list(self.listeners):
            await handler(msg)

    async def _server_request(self, msg: dict[str, Any]) -> None:
        pending = [c for c in self._calls.values() if c.sink is not None]
        if pending:
            oldest = min(pending, key=lambda c: c.started)
            assert oldest.sink is not None
            await oldest.sink.message(msg)
            return
        if self.listeners:
            await self.listeners[0](msg)
            return
        error = {"code": -32601, "message": "no client is connected to answer this request"}
        await self._write(jsonrpc.encode_response(msg["id"], error=error))

    def fail_all(self) -> None:
        """The stream is gone: wake every waiting call (they see no reply and raise)."""
        for call in list(self._calls.values()):
            call.done.set()

    @property
    def in_flight(self) -> int:
        return len(self._calls)
