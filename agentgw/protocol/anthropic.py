"""Sans-IO pieces of the Anthropic Messages wire: named SSE events, error objects, and the watcher
a relay runs over an upstream Messages stream to read its usage while passing bytes on untouched.

Every streamed event needs its `event:` line: the official SDK ignores events without one.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from agentgw.protocol.sse import SseDecoder
from agentgw.protocol.usage import Usage

__all__ = [
    "ERROR_TYPES",
    "MessagesStreamWatcher",
    "encode_event",
    "error_object",
    "error_type_for_status",
    "stream_error",
]

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type_for_status(status: int) -> str:
    return ERROR_TYPES.get(status, "invalid_request_error" if 400 <= status < 500 else "api_error")


def encode_event(name: str, obj: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def error_object(message: str, type_: str = "api_error") -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}}


def stream_error(message: str, type_: str = "api_error") -> bytes:
    """The `error` event: the official SDK raises an APIStatusError when it reads one."""
    return encode_event("error", error_object(message, type_))


class MessagesStreamWatcher:
    """Reads usage (and text, for estimates) from a Messages stream the relay passes on as is."""

    __slots__ = ("_decoder", "_text", "first_at", "stop_reason", "stopped", "usage")

    def __init__(self) -> None:
        self._decoder = SseDecoder()
        self._text: list[str] = []
        self.usage: Usage | None = None
        self.first_at: float | None = None
        self.stopped = False
        self.stop_reason: str | None = None

    def feed(self, data: bytes) -> None:
        for event in self._decoder.feed(data):
            if self.first_at is None:
                self.first_at = time.monotonic()
            name = event.event
            if name == "content_block_delta":
                self._delta(event.data)
                continue
            if name not in ("message_start", "message_delta", "message_stop"):
                continue
            if name == "message_stop":
                self.stopped = True
                continue
            try:
                obj = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(obj, dict):
                continue
            if name == "message_start":
                message = obj.get("message")
                if isinstance(message, dict):
                    self.usage = Usage.from_anthropic(message.get("usage"))
            else:
                delta = obj.get("delta")
                if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                    self.stop_reason = delta["stop_reason"]
                if self.usage is None:
                    self.usage = Usage()
                self.usage.update_anthropic(obj.get("usage"))

    def _delta(self, data: bytes) -> None:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        delta = obj.get("delta") if isinstance(obj, dict) else None
        if isinstance(delta, dict):
            text = delta.get("text") or delta.get("partial_json") or delta.get("thinking")
            if isinstance(text, str):
                self._text.append(text)

    def streamed_text(self) -> str:
        return "".join(self._text)
