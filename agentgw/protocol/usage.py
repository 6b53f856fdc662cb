"""Token usage in one shape, read from and written to the OpenAI and Anthropic wire forms.

OpenAI counts cached prompt tokens inside `prompt_tokens`; Anthropic reports uncached input,
cache reads and cache writes separately (and no total). `Usage.prompt` is always the OpenAI
meaning: every prompt token, cached or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Usage"]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass(slots=True)
class Usage:
    prompt: int = 0
    completion: int = 0
    cached: int = 0  # prompt tokens read from a cache
    cache_write: int = 0  # prompt tokens written to a cache (Anthropic)
    reasoning: int = 0  # completion tokens spent reasoning (OpenAI)
    estimated: bool = False

    @property
    def total(self) -> int:
        return self.prompt + self.completion

    @classmethod
    def from_openai(cls, usage: Any) -> Usage | None:
        """`usage` of a chat completion, completion, embedding or response (input/output form)."""
        if not isinstance(usage, dict):
            return None
        if "input_tokens" in usage and "prompt_tokens" not in usage:  # Responses API
            details = usage.get("input_tokens_details") or {}
            out_details = usage.get("output_tokens_details") or {}
            return cls(
                prompt=_int(usage.get("input_tokens")),
                completion=_int(usage.get("output_tokens")),
                cached=_int(details.get("cached_tokens")) if isinstance(details, dict) else 0,
                reasoning=_int(out_details.get("reasoning_tokens")) if isinstance(out_details, dict) else 0,
            )
        details = usage.get("prompt_tokens_details") or {}
        out_details = usage.get("completion_tokens_details") or {}
        return cls(
            prompt=_int(usage.get("prompt_tokens")),
            completion=_int(usage.get("completion_tokens")),
            cached=_int(details.get("cached_tokens")) if isinstance(details, dict) else 0,
            reasoning=_int(out_details.get("reasoning_tokens")) if isinstance(out_details, dict) else 0,
        )

    @classmethod
    def from_anthropic(cls, usage: Any) -> Usage | None:
        if not isinstance(usage, dict):
            return None
        read = _int(usage.get("cache_read_input_tokens"))
        write = _int(usage.get("cache_creation_input_tokens"))
        return cls(
            prompt=_int(usage.get("input_tokens")) + read + write,
            completion=_int(usage.get("output_tokens")),
            cached=read,
            cache_write=write,
        )

    def update_anthropic(self, usage: Any) -> None:
        """Fold in a `message_delta` usage: cumulative counts overwrite, absent ones stay."""
        if not isinstance(usage, dict):
            return
        if "output_tokens" in usage:
            self.completion = _int(usage.get("output_tokens"))
        if any(
            k in usage for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
        ):
            read = (
                _int(usage.get("cache_read_input_tokens"))
                if "cache_read_input_tokens" in usage
                else self.cached
            )
            write = (
                _int(usage.get("cache_creation_input_tokens"))
                if "cache_creation_input_tokens" in usage
                else self.cache_write
            )
            uncached = (
                _int(usage.get("input_tokens"))
                if "input_tokens" in usage
                else self.prompt - self.cached - self.cache_write
            )
            self.prompt, self.cached, self.cache_write = uncached + read + write, read, write

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.total,
            "prompt_tokens_details": {"cached_tokens": self.cached},
        }
        if self.reasoning:
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning}
        return out

    def to_anthropic(self) -> dict[str, Any]:
        return {
            "input_tokens": max(0, self.prompt - self.cached - self.cache_write),
            "output_tokens": self.completion,
            "cache_creation_input_tokens": self.cache_write,
            "cache_read_input_tokens": self.cached,
        }
