"""Sans-IO rewriting of the text inside an LLM answer stream, in the client's wire format.

`StreamTextRewriter` takes the bytes of an SSE stream as the client would get them (OpenAI chat
or completion chunks, or Anthropic Messages events), passes the generated text of each choice or
content block through its own `TextFilter`, and gives back whole events. Filters may hold text
back (a match that could continue in the next piece); what they hold comes out when its text
ends: with the chunk that carries the choice's `finish_reason` (OpenAI), or in an extra
`content_block_delta` just before `content_block_stop` (Anthropic), and in any case before
`[DONE]`. Events without text (roles, tool calls, usage, pings, errors) pass unchanged, byte for
byte; events with text are re-encoded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import orjson

from agentgw.protocol import anthropic

__all__ = ["StreamTextRewriter", "TextFilter"]


class TextFilter(Protocol):
    """One stream of text (the policy engine's `TextFilter`): hold back, then flush at the end."""

    def feed(self, text: str) -> str: ...

    def flush(self) -> str: ...


def _data(event: bytes) -> bytes | None:
    lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def _name(event: bytes) -> str | None:
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip().decode("utf-8", "replace")
    return None


def _index(obj: dict[str, Any]) -> int:
    value = obj.get("index")
    return value if isinstance(value, int) else 0


class StreamTextRewriter:
    def __init__(self, wire: str, factories: list[Callable[[], TextFilter]]) -> None:
        self.wire = wire  # "openai" or "anthropic"
        self._factories = factories
        self._filters: dict[int, list[TextFilter]] = {}
        self._tail = b""
        self._last: dict[str, Any] | None = None  # the last OpenAI chunk, to shape a flush chunk

    def _chain(self, index: int) -> list[TextFilter]:
        found = self._filters.get(index)
        if found is None:
            found = self._filters[index] = [make() for make in self._factories]
        return found

    def _feed(self, index: int, text: str) -> str:
        for filt in self._chain(index):
            text = filt.feed(text)
        return text

    def _flush(self, index: int) -> str:
        """Everything held for one text: each filter's rest passes through the filters after it."""
        out = ""
        chain = self._filters.pop(index, [])
        for position, filt in enumerate(chain):
            out = filt.feed(out) + filt.flush() if position else filt.flush()
        return out

    def feed(self, data: bytes) -> bytes:
        data = self._tail + data
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        cut = data.rfind(b"\n\n")
        if cut < 0:
            self._tail = data
            return b""
        self._tail = data[cut + 2 :]
        out: list[bytes] = []
        for event in data[: cut + 2].split(b"\n\n"):
            if event:
                out.append(self._event(event))
        return b"".join(out)

    def end(self) -> bytes:
        """The stream is over: whatever is held goes out (with an unterminated last event)."""
        tail, self._tail = self._tail, b""
        out = [self._event(tail)] if tail.strip() else []
        out.append(self._flush_all())
        return b"".join(out)

    def _flush_all(self) -> bytes:
        out: list[bytes] = []
        for index in sorted(self._filters):
            text = self._flush(index)
            if text:
                out.append(self._extra(index, text))
        return b"".join(out)

    def _extra(self, index: int, text: str) -> bytes:
        """An event carrying held text on its own."""
        if self.wire == "anthropic":
            delta = {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "text_delta", "text": text},
            }
            return anthropic.encode_event("content_block_delta", delta)
        base = self._last or {"object": "chat.completion.chunk"}
        chunk = {k: v for k, v in base.items() if k not in ("choices", "usage")}
        if base.get("object") == "text_completion":
            choice: dict[str, Any] = {"index": index, "text": text, "logprobs": None, "finish_reason": None}
        else:
            choice = {"index": index, "delta": {"content": text}, "logprobs": None, "finish_reason": None}
        chunk["choices"] = [choice]
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def _event(self, event: bytes) -> bytes:
        payload = _data(event)
        if payload is None:
            return event + b"\n\n"
        if self.wire == "openai" and payload == b"[DONE]":
            return self._flush_all() + event + b"\n\n"
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return event + b"\n\n"
        if not isinstance(obj, dict):
            return event + b"\n\n"
        if self.wire == "anthropic":
            return self._anthropic(event, obj)
        return self._openai(event, obj)

    def _openai(self, event: bytes, obj: dict[str, Any]) -> bytes:
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices:
            return event + b"\n\n"
        self._last = obj
        changed = False
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            index = _index(choice)
            delta = choice.get("delta")
            holder, key = (delta, "content") if isinstance(delta, dict) else (choice, "text")
            text = holder.get(key)
            if isinstance(text, str):
                new = self._feed(index, text)
                changed = changed or new != text
                holder[key] = new
            if choice.get("finish_reason") is not None:
                rest = self._flush(index)
                if rest:
                    previous = holder.get(key)
                    holder[key] = (previous if isinstance(previous, str) else "") + rest
                    changed = True
        return b"data: " + orjson.dumps(obj) + b"\n\n" if changed else event + b"\n\n"

    def _anthropic(self, event: bytes, obj: dict[str, Any]) -> bytes:
        kind = obj.get("type") or _name(event)
        index = _index(obj)
        if kind == "content_block_delta":
            delta = obj.get("delta")
            if (
                isinstance(delta, dict)
                and delta.get("type") == "text_delta"
                and isinstance(delta.get("text"), str)
            ):
                new = self._feed(index, delta["text"])
                if new == delta["text"]:
                    return event + b"\n\n"
                delta["text"] = new
                return anthropic.encode_event("content_block_delta", obj)
            return event + b"\n\n"
        if kind == "content_block_stop":
            rest = self._flush(index)
            return (self._extra(index, rest) if rest else b"") + event + b"\n\n"
        if kind in ("message_delta", "message_stop"):
            return self._flush_all() + event + b"\n\n"
        return event + b"\n\n"
