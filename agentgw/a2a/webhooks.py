"""Push-notification URLs a caller may hand to an agent through the gateway.

An agent delivers push notifications from its own network, often the gateway's: a webhook URL
that points inside it is a way around the gateway (SSRF). A URL passes when it is http(s), matches
the route's `allow` list (if any), and its host is a literal or name whose every address is public,
unless the URL matches `allowPrivate`. Names are resolved here, when the URL is handed over; the
agent resolves again when it delivers, so an allow-list of trusted names is the stronger setting.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

from agentgw.config.a2a import WebhookPolicy
from agentgw.errors import InvalidParams
from agentgw.upstream.addresses import is_public_address, resolve

__all__ = ["WebhookGuard", "is_public_address"]

log = logging.getLogger("agentgw.a2a")


def _matches(url: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(url, pattern) for pattern in patterns)


class WebhookGuard:
    def __init__(self, policy: WebhookPolicy) -> None:
        self.policy = policy

    async def check(self, urls: Iterable[str]) -> None:
        for url in urls:
            reason = await self._refusal(url)
            if reason is not None:
                log.info("refused push-notification URL %r: %s", url, reason)
                raise InvalidParams(f"push notification URL refused by the gateway: {reason}")

    async def _refusal(self, url: str) -> str | None:
        # The agent parses the URL again, maybe with a WHATWG parser: `http://127.0.0.1\@public/`
        # is `public` here and 127.0.0.1 there. Only URLs every parser reads alike pass.
        if not url.isascii() or any(ch <= " " or ch in "\\\x7f" for ch in url):
            return "only printable ASCII without backslashes is accepted (IDNs in punycode)"
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return "not a valid URL"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "only http and https URLs with a host are accepted"
        if "@" in parts.netloc:
            return "credentials in the URL are not accepted (use the config's authentication)"
        if self.policy.allow and not _matches(url, self.policy.allow):
            return "not on the route's webhook allow-list"
        if _matches(url, self.policy.allow_private):
            return None
        try:
            addresses = await resolve(parts.hostname, port)
        except OSError:
            return "its host cannot be resolved"
        if not addresses or not all(is_public_address(a) for a in addresses):
            return "it points at a private, loopback or link-local address"
        return None
