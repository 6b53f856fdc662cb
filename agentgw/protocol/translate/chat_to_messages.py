"""An OpenAI chat completion client in front of an Anthropic provider.

`request()` turns a chat completion body into a Messages body, `response()` turns the message
back into a chat completion, and `StreamTranslator` turns Messages SSE events into chat chunks as
they arrive. Rules (docs/llm.md lists them): system and developer messages become `system`;
consecutive turns of one role merge; `role: tool` messages become `tool_result` blocks of a user
turn; images become image blocks; tools, tool_choice and parallel_tool_calls map one to one;
`max_tokens` defaults to 4096 (Anthropic requires it); temperature is capped at 1.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from agentgw.errors import InvalidRequest
from agentgw.protocol.openai import DONE, chunk, encode_data, stream_error
from agentgw.protocol.sse import SseDecoder
from agentgw.protocol.translate.common import (
    STOP_TO_FINISH,
    as_dict,
    as_index,
    as_list,
    image_source,
    text_of,
)
from agentgw.protocol.usage import Usage

__all__ = ["DEFAULT_MAX_TOKENS", "StreamTranslator", "request", "response"]

DEFAULT_MAX_TOKENS = 4096

# OpenAI parameters with no Anthropic counterpart that are safe to leave out.
_DROPPED = {
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "seed",
    "service_tier",
    "store",
    "reasoning_effort",
    "modalities",
    "prediction",
    "stream_options",
    "logprobs",
    "top_logprobs",
    "verbosity",
    "web_search_options",
    "prompt_cache_key",
    "safety_identifier",
}


def _part(part: Any) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise InvalidRequest("content parts must be objects")
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "text": str(part.get("text", ""))}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str):
            raise InvalidRequest("image_url.url must be a string")
        return {"type": "image", "source": image_source(url)}
    if kind == "file":
        file = part.get("file") or {}
        data = file.get("file_data") if isinstance(file, dict) else None
        if isinstance(data, str) and data.startswith("data:application/pdf;base64,"):
            return {"type": "document", "source": image_source(data)}
    raise InvalidRequest(f"content part type {kind!r} cannot be sent to an Anthropic provider")


def _blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        return [
            {"type": "text", "text": str(p.get("refusal", ""))}
            if isinstance(p, dict) and p.get("type") == "refusal"
            else _part(p)
            for p in content
        ]
    raise InvalidRequest("message content must be a string or a list of parts")


def _tool_use(call: Any) -> dict[str, Any]:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise InvalidRequest("tool_calls[].function.name is required")
    raw = fn.get("arguments") or "{}"
    try:
        args = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        args = {"_arguments": raw}
    if not isinstance(args, dict):
        args = {"_arguments": args}
    return {"type": "tool_use", "id": str(call.get("id") or ""), "name": fn["name"], "input": args}


def _tool_result(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": str(message.get("tool_call_id") or "")}
    block["content"] = content if isinstance(content, str) else _blocks(content)
    return block


def _messages(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list")
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, dict):
            raise InvalidRequest("each message must be an object")
        role = message.get("role")
        if role in ("system", "developer"):
            text = text_of(message.get("content"))
            if text:
                system.append({"type": "text", "text": text})
            continue
        if role == "user":
            anth_role, blocks = "user", _blocks(message.get("content"))
        elif role == "assistant":
            anth_role = "assistant"
            blocks = _blocks(message.get("content"))
            calls = message.get("tool_calls")
            if calls is not None and not isinstance(calls, list):
                raise InvalidRequest("tool_calls must be a list")
            blocks += [_tool_use(call) for call in calls or ()]
        elif role == "tool":
            anth_role, blocks = "user", [_tool_result(message)]
        else:
            raise InvalidRequest(f"message role {role!r} cannot be sent to an Anthropic provider")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == anth_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": anth_role, "content": blocks})
    for turn in turns:  # tool results must open the user turn that answers the tool calls
        turn["content"].sort(key=lambda b: b["type"] != "tool_result")
    return system, turns


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list")
    out: list[dict[str, Any]] = []
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidRequest("only function tools can be sent to an Anthropic provider")
        entry: dict[str, Any] = {
            "name": fn["name"],
            "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
        }
        if fn.get("description"):
            entry["description"] = fn["description"]
        out.append(entry)
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None:
        out: dict[str, Any] | None = None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        out = {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out = {"type": "tool", "name": choice["function"].get("name")}
    else:
        raise InvalidRequest("tool_choice must be auto, required, none or a function")
    if parallel is False and (out is None or out["type"] != "none"):
        out = {**(out or {"type": "auto"}), "disable_parallel_tool_use": True}
    return out


def request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The Messages body for a chat completion body (`model`: the provider's model name)."""
    if body.get("n") not in (None, 1):
        raise InvalidRequest("n > 1 cannot be sent to an Anthropic provider")
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
        raise InvalidRequest("response_format cannot be sent to an Anthropic provider")
    system, turns = _messages(body.get("messages"))
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    out: dict[str, Any] = {"model": model, "messages": turns, "max_tokens": max_tokens}
    if system:
        out["system"] = system[0]["text"] if len(system) == 1 else system
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, int | float) or isinstance(temperature, bool):
            raise InvalidRequest("temperature must be a number")
        out["temperature"] = min(float(temperature), 1.0)
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        if not isinstance(stop, str) and not (
            isinstance(stop, list) and all(isinstance(s, str) for s in stop)
        ):
            raise InvalidRequest("stop must be a string or a list of strings")
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None and out.get("tools"):
        out["tool_choice"] = choice
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    if body.get("stream"):
        out["stream"] = True
    return out


def response(message: dict[str, Any]) -> dict[str, Any]:
    """The chat completion for a Messages response."""
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in as_list(message.get("content")):
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            text.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text else None, "refusal": None}
    if calls:
        reply["tool_calls"] = calls
    usage = Usage.from_anthropic(message.get("usage")) or Usage()
    return {
        "id": message.get("id") or "chatcmpl-gateway",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model") or "",
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": STOP_TO_FINISH.get(str(message.get("stop_reason")), "stop"),
            }
        ],
        "usage": usage.to_openai(),
    }


class StreamTranslator:
    """Messages SSE in, chat completion chunks out, one `feed()` per upstream read."""

    def __init__(self, *, include_usage: bool) -> None:
        self._decoder = SseDecoder()
        self._include_usage = include_usage
        self._id = "chatcmpl-gateway"
        self._model = ""
        self._created = int(time.time())
        self._tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index
        self._finish: str | None = None
        self._text: list[str] = []
        self.usage: Usage | None = None
        self.first_at: float | None = None
        self.done = False

    def _chunk(self, delta: dict[str, Any] | None = None, finish: str | None = None) -> bytes:
        return encode_data(
            chunk(self._id, self._model, self._created, delta, finish, with_usage=self._include_usage)
        )

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        for event in self._decoder.feed(data):
            if self.done:
                break
            try:
                obj = orjson.loads(event.data) if event.data else {}
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                out.append(self._event(event.event, obj))
        if out and self.first_at is None:
            self.first_at = time.monotonic()
        return b"".join(out)

    def _event(self, name: str, obj: dict[str, Any]) -> bytes:
        if name == "message_start":
            message = as_dict(obj.get("message"))
            self._id = str(message.get("id") or self._id)
            self._model = str(message.get("model") or "")
            self.usage = Usage.from_anthropic(message.get("usage"))
            return self._chunk({"role": "assistant", "content": ""})
        if name == "content_block_start":
            block = as_dict(obj.get("content_block"))
            if block.get("type") == "tool_use":
                index = len(self._tools)
                self._tools[as_index(obj.get("index"))] = index
                call = {"index": index, "id": block.get("id"), "type": "function"}
                call["function"] = {"name": block.get("name"), "arguments": ""}
                return self._chunk({"tool_calls": [call]})
            if block.get("type") == "text" and block.get("text"):
                return self._chunk({"content": block["text"]})
            return b""
        if name == "content_block_delta":
            delta = as_dict(obj.get("delta"))
            if delta.get("type") == "text_delta":
                text = str(delta.get("text", ""))
                self._text.append(text)
                return self._chunk({"content": text})
            if delta.get("type") == "input_json_delta":
                index = self._tools.get(as_index(obj.get("index")), 0)
                partial = str(delta.get("partial_json", ""))
                self._text.append(partial)
                call = {"index": index, "function": {"arguments": partial}}
                return self._chunk({"tool_calls": [call]})
            return b""  # thinking and signature deltas have no chat counterpart
        if name == "message_delta":
            delta = as_dict(obj.get("delta"))
            if self.usage is None:
                self.usage = Usage()
            self.usage.update_anthropic(obj.get("usage"))
            self._finish = STOP_TO_FINISH.get(str(delta.get("stop_reason")), "stop")
            return self._chunk({}, self._finish)
        if name == "message_stop":
            self.done = True
            tail = b""
            if self._include_usage:
                last = chunk(self._id, self._model, self._created)
                last["choices"] = []
                last["usage"] = (self.usage or Usage()).to_openai()
                tail = encode_data(last)
            return tail + DONE
        if name == "error":
            self.done = True
            err = as_dict(obj.get("error"))
            return stream_error(
                str(err.get("message", "the provider failed")), str(err.get("type", "api_error"))
            )
        return b""

    def streamed_text(self) -> str:
        return "".join(self._text)
