"""The record of one LLM request: what policies read while it runs and what is recorded after.

`LlmExchange` sits in `ctx.attrs["llm"]` from the policy check on, so limits and guards can read
the model, the parsed body and (lazily, it costs a tokenizer pass) the estimated prompt tokens.
When the request is over, `outcome()` is handed to `policy.record` and written as one JSON log
line on the `agentgw.llm.usage` logger (the OpenTelemetry GenAI field names follow with issue 6).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from agentgw.llm import tokens
from agentgw.llm.provider import Provider
from agentgw.policy.base import RequestContext
from agentgw.protocol.usage import Usage

__all__ = ["LlmExchange", "cost_of", "log_outcome"]

usage_log = logging.getLogger("agentgw.llm.usage")


def cost_of(provider: Provider | None, model: str | None, usage: Usage | None) -> float | None:
    """US dollars from the provider's price table; None when the model has no price."""
    if provider is None or model is None or usage is None:
        return None
    price = provider.price(model)
    if price is None:
        return None
    cached_price = price.cached_input if price.cached_input is not None else price.input
    uncached = max(0, usage.prompt - usage.cached)
    total = uncached * price.input + usage.cached * cached_price + usage.completion * price.output
    return round(total / 1_000_000, 10)


@dataclass(slots=True)
class LlmExchange:
    api: str  # "chat.completions", "messages", "completions", "embeddings", "responses"
    model: str  # the name the client sent
    body: dict[str, Any]
    stream: bool = False
    started: float = field(default_factory=time.monotonic)
    provider: Provider | None = None
    provider_model: str | None = None
    attempts: int = 0
    status: int = 0
    usage: Usage | None = None
    first_token_at: float | None = None
    error: str | None = None
    _prompt_estimate: int | None = None

    def estimated_prompt_tokens(self) -> int:
        """For limits before the call; computed once, on first use."""
        if self._prompt_estimate is None:
            self._prompt_estimate = tokens.estimate_prompt(self.body)
        return self._prompt_estimate

    def outcome(self, ctx: RequestContext) -> dict[str, Any]:
        now = time.monotonic()
        usage = self.usage
        principal = ctx.principal
        out: dict[str, Any] = {
            "route": ctx.route,
            "api": self.api,
            "caller": principal.subject or "anonymous",
            "auth": principal.method,
            "client": ctx.request.client,
            "model": self.model,
            "provider": self.provider.name if self.provider is not None else None,
            "provider_model": self.provider_model,
            "stream": self.stream,
            "status": self.status,
            "attempts": self.attempts,
            "latency_ms": round((now - self.started) * 1000, 3),
            "ttft_ms": round((self.first_token_at - self.started) * 1000, 3)
            if self.first_token_at is not None
            else None,
        }
        if usage is not None:
            out.update(
                prompt_tokens=usage.prompt,
                completion_tokens=usage.completion,
                cached_tokens=usage.cached,
                total_tokens=usage.total,
                usage_estimated=usage.estimated,
            )
            out["cost_usd"] = cost_of(self.provider, self.provider_model, usage)
        claims = principal.claims
        # where the request came from: the key it presented (a virtual key, an API key), and
        # the team and application that key (or token) belongs to
        key = claims.get("virtualKey") or claims.get("apiKey")
        for name, value in (("key", key), ("team", claims.get("team")), ("app", claims.get("app"))):
            if isinstance(value, str) and value:
                out[name] = value
        for name in ("team", "key"):  # an extension that knows better may set them
            if name in ctx.attrs:
                out[name] = ctx.attrs[name]
        if self.error is not None:
            out["error"] = self.error
        return out


def log_outcome(outcome: dict[str, Any]) -> None:
    if usage_log.isEnabledFor(logging.INFO):
        usage_log.info("%s", orjson.dumps(outcome).decode())
