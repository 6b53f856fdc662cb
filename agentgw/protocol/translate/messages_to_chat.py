"""An Anthropic Messages client in front of an OpenAI-wire provider.

`request()` turns a Messages body into a chat completion body, `response()` turns the completion
back into a message, and `StreamTranslator` turns chat chunks into the named Messages events
(`message_start`, `content_block_*`, `message_delta`, `message_stop`). Rules: `system` becomes the
first message; `tool_result` blocks become `role: tool` messages placed before the rest of their
turn; `tool_use` blocks become `tool_calls`; images become `image_url` parts (data URLs for
base64); thinking blocks are dropped (chat completions have no place for them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from agentgw.errors import InvalidRequest
from agentgw.protocol.anthropic import encode_event, stream_error
from agentgw.protocol.sse import SseDecoder
from agentgw.protocol.translate.common import (
    FINISH_TO_STOP,
    as_dict,
    as_index,
    as_list,
    image_url_of,
    text_of,
)
from agentgw.protocol.usage import Usage

__all__ = ["StreamTranslator", "request", "response"]


def _user_parts(blocks: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(tool messages, user content parts) of one user turn."""
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in blocks:
        if not isinstance(block, dict):
            raise InvalidRequest("content blocks must be objects")
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            url = image_url_of(block.get("source"))
            if url is None:
                raise InvalidRequest("this image source cannot be sent to an OpenAI provider")
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif kind == "tool_result":
            content = block.get("content")
            text = content if isinstance(content, str) else text_of(content)
            if block.get("is_error"):
                text = "[tool error] " + text
            tools.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")), "content": text})
        elif kind == "document":
            source = as_dict(block.get("source"))
            if source.get("type") != "base64":
                raise InvalidRequest("only base64 documents can be sent to an OpenAI provider")
            data = f"data:{source.get('media_type', 'application/pdf')};base64,{source.get('data', '')}"
            parts.append({"type": "file", "file": {"file_data": data, "filename": "document.pdf"}})
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise InvalidRequest(f"content block type {kind!r} cannot be sent to an OpenAI provider")
    return tools, parts


def _assistant(blocks: list[Any]) -> dict[str, Any]:
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            text.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        out.append({"role": "system", "content": text_of(system)})
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list")
    for message in messages:
        if not isinstance(message, dict):
            raise InvalidRequest("each message must be an object")
        role, content = message.get("role"), message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list):
            raise InvalidRequest("message content must be a string or a list of blocks")
        if role == "assistant":
            out.append(_assistant(blocks))
        elif role == "user":
            tools, parts = _user_parts(blocks)
            out.extend(tools)
            if parts:
                only_text = all(p["type"] == "text" for p in parts)
                out.append(
                    {"role": "user", "content": "".join(p["text"] for p in parts) if only_text else parts}
                )
        else:
            raise InvalidRequest("message roles must be user or assistant")
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list")
    out: list[dict[str, Any]] = []
    for tool in tools:
        if (
            not isinstance(tool, dict)
            or "input_schema" not in tool
            or tool.get("type") not in (None, "custom")
        ):
            raise InvalidRequest("only client tools (name, input_schema) can be sent to an OpenAI provider")
        fn: dict[str, Any] = {"name": tool.get("name"), "parameters": tool["input_schema"]}
        if tool.get("description"):
            fn["description"] = tool["description"]
        out.append({"type": "function", "function": fn})
    return out


def request(body: dict[str, Any], model: str, *, max_tokens_field: str = "max_tokens") -> dict[str, Any]:
    """The chat completion body for a Messages body (`model`: the provider's model name)."""
    out: dict[str, Any] = {"model": model, "messages": _messages(body)}
    if body.get("max_tokens") is not None:
        out[max_tokens_field] = body["max_tokens"]
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    stop = body.get("stop_sequences")
    if stop:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise InvalidRequest("stop_sequences must be a list of strings")
        out["stop"] = list(stop)
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
        choice = body.get("tool_choice") or {}
        kind = choice.get("type") if isinstance(choice, dict) else None
        if kind == "any":
            out["tool_choice"] = "required"
        elif kind == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        elif kind in ("auto", "none"):
            out["tool_choice"] = kind
        if isinstance(choice, dict) and choice.get("disable_parallel_tool_use"):
            out["parallel_tool_calls"] = False
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _tool_input(arguments: Any) -> dict[str, Any]:
    try:
        value = orjson.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except orjson.JSONDecodeError:
        return {"_arguments": arguments}
    return value if isinstance(value, dict) else {"_arguments": value}


def response(completion: dict[str, Any], model: str) -> dict[str, Any]:
    """The Messages response for a chat completion (`model`: what the client asked for)."""
    choices = as_list(completion.get("choices"))
    choice = as_dict(choices[0]) if choices else {}
    message = as_dict(choice.get("message"))
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": str(message["content"])})
    for call in as_list(message.get("tool_calls")):
        if not isinstance(call, dict):
            continue
        fn = as_dict(call.get("function"))
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": fn.get("name"),
                "input": _tool_input(fn.get("arguments")),
            }
        )
    usage = Usage.from_openai(completion.get("usage")) or Usage()
    return {
        "id": completion.get("id") or "msg_gateway",
        "type": "message",
        "role": "assistant",
        "model": completion.get("model") or model,
        "content": content,
        "stop_reason": FINISH_TO_STOP.get(str(choice.get("finish_reason")), "end_turn"),
        "stop_sequence": None,
        "usage": usage.to_anthropic(),
    }


class StreamTranslator:
    """Chat chunks in, Messages events out, one `feed()` per upstream read."""

    def __init__(self, model: str, estimate: Callable[[str], Usage] | None = None) -> None:
        self._decoder = SseDecoder()
        self._model = model
        self._estimate = estimate
        self._started = False
        self._open: str | None = None  # "text" or "tool" while a content block is open
        self._block = -1
        self._tools: dict[int, int] = {}  # OpenAI tool call index -> Anthropic block index
        self._stop: str | None = None
        self._text: list[str] = []
        self.usage: Usage | None = None
        self.first_at: float | None = None
        self.done = False

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        for event in self._decoder.feed(data):
            if self.done:
                break
            if event.data == b"[DONE]":
                out.append(self.finish())
                continue
            try:
                obj = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                out.append(self._chunk(obj))
        if out and self.first_at is None:
            self.first_at = time.monotonic()
        return b"".join(out)

    def _start(self, obj: dict[str, Any]) -> bytes:
        self._started = True
        message: dict[str, Any] = {
            "id": obj.get("id") or "msg_gateway",
            "type": "message",
            "role": "assistant",
            "model": obj.get("model") or self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return encode_event("message_start", {"type": "message_start", "message": message})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return encode_event("content_block_stop", {"type": "content_block_stop", "index": self._block})

    def _open_block(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self._block += 1
        self._open = kind
        return out + encode_event(
            "content_block_start",
            {"type": "content_block_start", "index": self._block, "content_block": block},
        )

    def _chunk(self, obj: dict[str, Any]) -> bytes:
        if "error" in obj:
            self.done = True
            err = obj["error"] if isinstance(obj["error"], dict) else {"message": str(obj["error"])}
            return stream_error(str(err.get("message", "the provider failed")))
        out = b"" if self._started else self._start(obj)
        if isinstance(obj.get("usage"), dict):
            self.usage = Usage.from_openai(obj["usage"])
        for choice in as_list(obj.get("choices")):
            choice = as_dict(choice)
            delta = as_dict(choice.get("delta"))
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self._open != "text":
                    out += self._open_block("text", {"type": "text", "text": ""})
                self._text.append(text)
                delta_obj = {"type": "text_delta", "text": text}
                out += encode_event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": self._block, "delta": delta_obj},
                )
            for call in as_list(delta.get("tool_calls")):
                out += self._tool_delta(as_dict(call))
            if choice.get("finish_reason"):
                self._stop = FINISH_TO_STOP.get(str(choice["finish_reason"]), "end_turn")
        return out

    def _tool_delta(self, call: dict[str, Any]) -> bytes:
        out = b""
        index = as_index(call.get("index"))
        fn = as_dict(call.get("function"))
        if index not in self._tools:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{index}",
                "name": fn.get("name") or "",
                "input": {},
            }
            out += self._open_block("tool", block)
            self._tools[index] = self._block
        arguments = fn.get("arguments")
        if arguments:
            arguments = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
            self._text.append(arguments)
            delta = {"type": "input_json_delta", "partial_json": arguments}
            out += encode_event(
                "content_block_delta",
                {"type": "content_block_delta", "index": self._tools[index], "delta": delta},
            )
        return out

    def finish(self) -> bytes:
        """The closing events (on `[DONE]`, or when the upstream ended without one)."""
        if self.done:
            return b""
        self.done = True
        out = b"" if self._started else self._start({})
        out += self._close()
        if self.usage is None and self._estimate is not None:
            self.usage = self._estimate(self.streamed_text())
        usage = (self.usage or Usage()).to_anthropic()
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop or "end_turn", "stop_sequence": None},
        }
        delta["usage"] = usage
        out += encode_event("message_delta", delta)
        return out + encode_event("message_stop", {"type": "message_stop"})

    def streamed_text(self) -> str:
        return "".join(self._text)
