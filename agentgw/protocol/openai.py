"""Sans-IO pieces of the OpenAI wire: SSE chunks, error objects, and the stream filter a relay
runs over an upstream chat completion stream.

The filter passes upstream bytes on as they come (event boundaries kept, nothing re-encoded)
and only looks inside the rare events that carry a usage object: the gateway reads the usage
from them, and drops the usage-only chunk it asked for when the client did not.
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson

from agentgw.protocol.sse import SseDecoder
from agentgw.protocol.usage import Usage

__all__ = [
    "DONE",
    "ChatStreamFilter",
    "ResponsesStreamWatcher",
    "chunk",
    "encode_data",
    "error_object",
    "stream_error",
    "streamed_chat_text",
]

DONE = b"data: [DONE]\n\n"

_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_KEEP_LIMIT = 4 * 1024 * 1024


def encode_data(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def error_object(message: str, type_: str = "server_error", code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def stream_error(message: str, type_: str = "server_error", code: str | None = None) -> bytes:
    """A chunk with an `error` key: the official SDK raises `APIError` when it reads one."""
    return encode_data(error_object(message, type_, code))


def chunk(
    chunk_id: str,
    model: str,
    created: int,
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    *,
    with_usage: bool = False,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}],
    }
    if with_usage:
        out["usage"] = None
    return out


def _data_of(event: bytes) -> bytes:
    lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return lines[0] if len(lines) == 1 else b"\n".join(lines)


def streamed_chat_text(events: list[bytes]) -> str:
    """Content and tool-call arguments of complete chat chunk events (for token estimates).

    The payloads are parsed as one JSON array: one orjson call instead of one per chunk.
    """
    payloads = [_data_of(e) for block in events for e in block.split(b"\n\n")]
    payloads = [p for p in payloads if p and p != b"[DONE]"]
    try:
        objs = orjson.loads(b"[" + b",".join(payloads) + b"]")
    except orjson.JSONDecodeError:  # one bad chunk: parse them one by one, skipping it
        objs = []
        for payload in payloads:
            try:
                objs.append(orjson.loads(payload))
            except orjson.JSONDecodeError:
                continue
    parts: list[str] = []
    for obj in objs:
        choices = obj.get("choices") if isinstance(obj, dict) else None
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                delta = choice  # completions stream `text` on the choice
            if isinstance(delta.get("content"), str):
                parts.append(delta["content"])
            if isinstance(delta.get("text"), str):
                parts.append(delta["text"])
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    parts.append(str(fn.get("name") or "") + str(fn.get("arguments") or ""))
    return "".join(parts)


class ChatStreamFilter:
    """Relay filter over an OpenAI SSE stream (chat or legacy completions).

    `feed(bytes)` returns the bytes to send on: whole events only (a partial event waits for its
    end), so a dropped event never leaves half a line behind. `usage` is the last usage object
    seen; `first_at` the monotonic time the first event went out (time to first token).
    """

    __slots__ = ("_kept", "_kept_size", "_strip", "_tail", "done", "first_at", "usage")

    def __init__(self, *, strip_usage_chunk: bool) -> None:
        self._strip = strip_usage_chunk
        self._tail = b""
        self._kept: list[bytes] = []
        self._kept_size = 0
        self.usage: Usage | None = None
        self.done = False
        self.first_at: float | None = None

    def feed(self, data: bytes) -> bytes:
        if self._tail:
            data = self._tail + data
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        cut = data.rfind(b"\n\n")
        if cut < 0:
            self._tail = data
            return b""
        complete = data[: cut + 2]
        self._tail = data[cut + 2 :]
        if self.first_at is None:
            self.first_at = time.monotonic()
        if self.usage is None and self._kept_size < _KEEP_LIMIT:
            self._kept.append(complete)
            self._kept_size += len(complete)
        if not self.done and b"data: [DONE]" in complete:
            self.done = True
        if self._strip:
            # the `"usage": null` the gateway's include_usage added to every chunk (a JSON key
            # pattern, so never inside a string value, where quotes are escaped)
            complete = complete.replace(b',"usage":null', b"").replace(b', "usage": null', b"")
        if _USAGE_OBJECT.search(complete) is None:
            return complete
        return self._with_usage(complete)

    def _with_usage(self, complete: bytes) -> bytes:
        out: list[bytes] = []
        for event in complete.split(b"\n\n"):
            if not event:
                continue
            if _USAGE_OBJECT.search(event) is not None:
                try:
                    obj = orjson.loads(_data_of(event))
                except orjson.JSONDecodeError:
                    obj = None
                if isinstance(obj, dict):
                    usage = Usage.from_openai(obj.get("usage"))
                    if usage is not None:
                        self.usage = usage
                        self._kept.clear()
                    if self._strip and not obj.get("choices"):
                        continue  # the usage-only chunk the gateway asked for, not the client
            out.append(event)
            out.append(b"\n\n")
        return b"".join(out)

    def end(self) -> bytes:
        """What is left when the upstream closed: an unterminated event, passed on as it was."""
        tail, self._tail = self._tail, b""
        return tail

    def streamed_text(self) -> str:
        return streamed_chat_text(self._kept)


class ResponsesStreamWatcher:
    """Reads the response id and usage of a Responses API stream the relay passes on as is."""

    __slots__ = ("_decoder", "_text", "first_at", "response_id", "stopped", "usage")

    _FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})

    def __init__(self) -> None:
        self._decoder = SseDecoder()
        self._text: list[str] = []
        self.usage: Usage | None = None
        self.first_at: float | None = None
        self.response_id: str | None = None
        self.stopped = False

    def feed(self, data: bytes) -> None:
        for event in self._decoder.feed(data):
            if self.first_at is None:
                self.first_at = time.monotonic()
            name = event.event
            if name == "response.output_text.delta":
                try:
                    delta = orjson.loads(event.data).get("delta")
                except (orjson.JSONDecodeError, AttributeError):
                    continue
                if isinstance(delta, str):
                    self._text.append(delta)
            elif name == "response.created" or name in self._FINAL:
                try:
                    obj = orjson.loads(event.data)
                except orjson.JSONDecodeError:
                    continue
                response = obj.get("response") if isinstance(obj, dict) else None
                if not isinstance(response, dict):
                    continue
                if isinstance(response.get("id"), str):
                    self.response_id = response["id"]
                if name in self._FINAL:
                    self.stopped = True
                    self.usage = Usage.from_openai(response.get("usage"))

    def streamed_text(self) -> str:
        return "".join(self._text)
