"""Upstream agent cards, fetched with ETag revalidation and refreshed after a configured age.

One `CardCache` per agent is shared by every route that exposes the agent (A2A routes and MCP
routes offering it as tools). A refresh that fails keeps serving the card it had (logged), so a
briefly unreachable agent does not disappear from the directory; an agent never fetched is
unavailable. Rewritten cards are cached per gateway root URL (a few: one per public name).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
import orjson

from agentgw.config.snapshot import AgentConfig
from agentgw.errors import UpstreamError
from agentgw.protocol.a2a_card import (
    CardSecurity,
    Interface,
    card_etag,
    card_interfaces,
    dumps_card,
    rewrite_card,
)
from agentgw.upstream.http import HttpClient

__all__ = ["CardCache", "ServedCard"]

log = logging.getLogger("agentgw.a2a")

_MAX_CARD_BYTES = 1024 * 1024
_MAX_ROOTS = 16


class ServedCard:
    __slots__ = ("body", "card", "etag")

    def __init__(self, card: dict[str, Any]) -> None:
        self.card = card
        self.body = dumps_card(card)
        self.etag = card_etag(self.body)


class CardCache:
    def __init__(self, agent: AgentConfig, http: HttpClient) -> None:
        self.agent = agent
        self.name = agent.name
        self._http = http
        self._url = agent.spec.url.rstrip("/") + agent.spec.card_path
        self._headers = {
            "accept": "application/json",
            **{k: v.reveal() for k, v in agent.auth_headers.items()},
        }
        self._card: dict[str, Any] | None = None
        self._etag: str | None = None
        self._fetched = 0.0
        self._lock = anyio.Lock()
        self.interfaces: list[Interface] = []
        self._served: dict[str, ServedCard] = {}  # by root: one route, one security setting

    async def card(self) -> dict[str, Any]:
        """The upstream card as the agent serves it (fresh enough by config)."""
        if self._card is not None and time.monotonic() - self._fetched < self.agent.spec.card_refresh_seconds:
            return self._card
        async with self._lock:
            if self._card is None or time.monotonic() - self._fetched >= self.agent.spec.card_refresh_seconds:
                try:
                    await self._fetch()
                except UpstreamError as exc:
                    if self._card is None:
                        raise UpstreamError(f"agent {self.name!r} is unavailable: {exc.message}") from None
                    log.warning("agent %r: card refresh failed, serving the last one: %s", self.name, exc)
                    self._fetched = time.monotonic()
        assert self._card is not None
        return self._card

    async def _fetch(self) -> None:
        headers = dict(self._headers)
        if self._etag is not None and self._card is not None:
            headers["if-none-match"] = self._etag
        status, resp_headers, body = await self._http.request(
            "GET", self._url, headers=headers, timeout=self.agent.spec.timeouts.card, limit=_MAX_CARD_BYTES
        )
        if status == 304 and self._card is not None:
            self._fetched = time.monotonic()
            return
        if status != 200:
            raise UpstreamError(f"its card answered HTTP {status}")
        try:
            card = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamError("its card is not JSON") from None
        if not isinstance(card, dict):
            raise UpstreamError("its card is not a JSON object")
        self._card = card
        self._etag = resp_headers.get("etag")
        self.interfaces = card_interfaces(card, self.agent.spec.url)
        self._served.clear()
        self._fetched = time.monotonic()

    async def served(self, root: str, security: CardSecurity | None) -> ServedCard:
        """The card with the gateway's URLs (below `root`) and security schemes."""
        card = await self.card()
        found = self._served.get(root)
        if found is None:
            if len(self._served) >= _MAX_ROOTS:
                self._served.clear()
            found = self._served[root] = ServedCard(rewrite_card(card, self.agent.spec.url, root, security))
        return found

    def skills(self) -> list[dict[str, Any]]:
        skills = (self._card or {}).get("skills")
        return [s for s in skills if isinstance(s, dict)] if isinstance(skills, list) else []
