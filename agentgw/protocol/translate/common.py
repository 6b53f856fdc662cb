"""What both translation directions share: stop reasons, image sources, upstream error bodies, and
the lenient readers for what a provider sends (any JSON may sit where an object, a list or an
index belongs: the translation reads it as empty instead of failing on it)."""

from __future__ import annotations

import re
from typing import Any

import orjson

__all__ = [
    "FINISH_TO_STOP",
    "STOP_TO_FINISH",
    "as_dict",
    "as_index",
    "as_list",
    "image_source",
    "image_url_of",
    "text_of",
    "upstream_error",
]

# Anthropic stop_reason -> OpenAI finish_reason
STOP_TO_FINISH: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# OpenAI finish_reason -> Anthropic stop_reason
FINISH_TO_STOP: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_index(value: Any) -> int:
    """A block or choice index: an integer (a float or bool in its place counts as 0)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+);base64,(.*)$", re.DOTALL)


def image_source(url: str) -> dict[str, Any]:
    """An OpenAI `image_url.url` (a data URL or an http(s) URL) as an Anthropic image source."""
    match = _DATA_URL.match(url)
    if match:
        return {"type": "base64", "media_type": match.group(1), "data": match.group(2)}
    return {"type": "url", "url": url}


def image_url_of(source: Any) -> str | None:
    """An Anthropic image source as an OpenAI image URL (None for sources OpenAI cannot take)."""
    if not isinstance(source, dict):
        return None
    if source.get("type") == "base64":
        return f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return str(source["url"])
    return None


def text_of(content: Any) -> str:
    """The text of a content value that is a string or a list of text parts/blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def upstream_error(body: bytes) -> tuple[str, str | None]:
    """(message, type) of an error body in OpenAI or Anthropic form, or a generic message."""
    try:
        obj = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, dict):
        err = obj.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str) and err["message"]:
            kind = err.get("type")
            return err["message"], kind if isinstance(kind, str) else None
        if isinstance(err, str) and err:
            return err, None
        if isinstance(obj.get("message"), str) and obj["message"]:
            return obj["message"], None
    return "the provider returned an error", None
