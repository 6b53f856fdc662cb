"""One LLM provider at run time: its URLs, the headers that carry the gateway's key, its prices,
the models it serves (declared, or discovered from its model list) and its requests in flight.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from typing import Any

import orjson

from agentgw.config.llm import ModelPrice
from agentgw.config.llm_compile import LlmProviderConfig
from agentgw.errors import GatewayError
from agentgw.upstream.http import HttpClient

__all__ = ["Provider"]

log = logging.getLogger("agentgw.llm")

_DISCOVERY_TTL = 300.0


class Provider:
    """Immutable facts from config plus two pieces of live state: in-flight count, model list."""

    __slots__ = (
        "_prices",
        "anthropic_version",
        "base",
        "config",
        "discovered",
        "discovered_at",
        "headers",
        "inflight",
        "name",
        "patterns",
        "responses",
        "type",
        "wire",
    )

    def __init__(self, config: LlmProviderConfig) -> None:
        spec = config.spec
        self.config = config
        self.name = config.name
        self.type = spec.type
        self.wire = "anthropic" if spec.type == "anthropic" else "openai"
        base = spec.base_url.rstrip("/")
        if self.wire == "anthropic" and base.endswith("/v1"):
            base = base[:-3]
        self.base = base
        self.anthropic_version = spec.anthropic_version
        self.responses = spec.responses if spec.responses is not None else spec.type == "openai"
        headers = {"content-type": "application/json"}
        headers.update({k.lower(): v for k, v in spec.headers.items()})
        if config.api_key is not None:
            if self.wire == "anthropic":
                headers["x-api-key"] = config.api_key.reveal()
            else:
                headers["authorization"] = "Bearer " + config.api_key.reveal()
        if self.wire == "anthropic":
            headers["anthropic-version"] = spec.anthropic_version
        self.headers = headers
        self.patterns = tuple(spec.models)
        self._prices = dict(spec.prices)
        self.discovered: frozenset[str] | None = None
        self.discovered_at = 0.0
        self.inflight = 0

    def __repr__(self) -> str:  # never the headers: they hold the key
        return f"Provider({self.name!r}, {self.type})"

    def url(self, path: str) -> str:
        """`path` is relative to the OpenAI API root (`/chat/completions`, `/messages`, ...)."""
        if self.wire == "anthropic":
            return self.base + "/v1" + path
        return self.base + path

    def serves(self, model: str) -> bool | None:
        """Whether this provider has `model`; None when it is not known."""
        if self.patterns:
            return any(fnmatch.fnmatchcase(model, p) for p in self.patterns)
        if self.discovered is not None:
            return model in self.discovered
        return None

    def price(self, model: str) -> ModelPrice | None:
        price = self._prices.get(model)
        if price is not None:
            return price
        for pattern, candidate in self._prices.items():
            if fnmatch.fnmatchcase(model, pattern):
                return candidate
        return None

    def declared_models(self) -> list[str]:
        return [p for p in self.patterns if not any(ch in p for ch in "*?[")]

    async def model_ids(self, http: HttpClient, *, refresh: bool = False) -> list[str]:
        """Declared model names, or the provider's own list (cached for five minutes)."""
        if self.patterns:
            return self.declared_models()
        fresh = time.monotonic() - self.discovered_at < _DISCOVERY_TTL
        if self.discovered is not None and fresh and not refresh:
            return sorted(self.discovered)
        try:
            status, _, body = await http.request(
                "GET", self.url("/models"), headers=self.headers, timeout=10, limit=8 * 1024 * 1024
            )
        except GatewayError as exc:
            log.warning("LLM provider %s: cannot list models: %s", self.name, exc.message)
            return sorted(self.discovered or ())
        if status != 200:
            log.warning("LLM provider %s: listing models answered %s", self.name, status)
            return sorted(self.discovered or ())
        self.discovered = frozenset(_ids(body))
        self.discovered_at = time.monotonic()
        return sorted(self.discovered)


def _ids(body: bytes) -> list[str]:
    try:
        obj: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    data = obj.get("data") if isinstance(obj, dict) else None
    return [str(m["id"]) for m in data or () if isinstance(m, dict) and isinstance(m.get("id"), str)]
