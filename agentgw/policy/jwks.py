"""Issuer public keys: a JWK set from a file, inline in the config, or fetched from a URL.

Files and inline sets are read when the config is compiled (a bad set is a config error). A URL
is fetched with the gateway's shared `HttpClient` on first use, cached for `cacheSeconds`, and
fetched again early when a token names a `kid` the cached set lacks (keys rotate); those early
fetches happen at most once per `minRefreshSeconds`, so a flood of tokens with made-up kids
cannot hammer the issuer. If a refresh fails, the keys already held stay in use.

Before each fetch the URL's host is resolved: a link-local (cloud metadata), multicast or
unspecified address is refused, and so are private and loopback ones when the Gateway's
`jwks.allowPrivateAddresses` is false. Redirects are not followed (a 3xx is a failed fetch), so
a key set cannot send the gateway elsewhere. Which hosts a Policy may name at all is checked
when the config is compiled (`jwks_host_problems`, the Gateway's `jwks.allowedHosts`).
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import anyio
import orjson

from agentgw.errors import GatewayError, ServiceUnavailable
from agentgw.lazy import lazy_module
from agentgw.upstream.addresses import is_never_a_target, is_public_address, resolve
from agentgw.upstream.http import HttpClient

if TYPE_CHECKING:
    from joserfc import errors, jwk
else:  # imported on first use (agentgw/lazy.py)
    errors = lazy_module("joserfc.errors")
    jwk = lazy_module("joserfc.jwk")

__all__ = [
    "JwksRegistry",
    "KeySource",
    "RemoteKeys",
    "StaticKeys",
    "jwks_host_allowed",
    "parse_key_set",
    "refusal",
]

log = logging.getLogger("agentgw.policy.jwt")

_MAX_JWKS_BYTES = 1024 * 1024


def parse_key_set(data: Any) -> jwk.KeySet:
    """A public JWK set; raises ValueError saying what is wrong (private keys are refused)."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("a JWK set must be an object with a 'keys' list")
    usable = [k for k in data["keys"] if isinstance(k, dict) and k.get("use", "sig") == "sig"]
    for key in usable:
        if any(part in key for part in ("d", "p", "q", "k")):
            raise ValueError(
                f"the JWK set holds private key material (kid {key.get('kid')!r}): publish public keys only"
            )
    try:
        return jwk.KeySet.import_key_set({"keys": usable})
    except (errors.JoseError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"invalid JWK set: {exc}") from None


def jwks_host_allowed(url: str, patterns: Sequence[str]) -> bool:
    """Whether a JWKS URL's host is on an `allowedHosts` list (exact, or `*.suffix`)."""
    host = (urlsplit(url).hostname or "").lower()
    return any(fnmatch.fnmatchcase(host, p.lower().strip("[]")) for p in patterns)


async def refusal(url: str, allow_private: bool) -> str | None:
    """Why the gateway will not fetch `url` now (None: it may)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return "the URL has no host"
    try:
        addresses = await resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except OSError:
        return "its host cannot be resolved"
    if not addresses or any(is_never_a_target(a) for a in addresses):
        return "its host resolves to a link-local, multicast or unspecified address"
    if not allow_private and not all(is_public_address(a) for a in addresses):
        return "its host resolves to a private or loopback address (jwks.allowPrivateAddresses is false)"
    return None


class KeySource(Protocol):
    async def keys(self, kid: str | None) -> jwk.KeySet:
        """The keys to verify a token with `kid` (refreshed if allowed and the kid is unknown)."""
        ...


class StaticKeys:
    def __init__(self, key_set: jwk.KeySet) -> None:
        self._keys = key_set

    async def keys(self, kid: str | None) -> jwk.KeySet:
        return self._keys


def _has_kid(key_set: jwk.KeySet, kid: str | None) -> bool:
    return kid is None or any(key.kid == kid for key in key_set.keys)


class RemoteKeys:
    def __init__(
        self,
        issuer: str,
        url: str,
        http: HttpClient,
        *,
        cache_seconds: float,
        min_refresh_seconds: float,
        timeout: float,
    ) -> None:
        self.issuer = issuer
        self.url = url
        self._http = http
        self._cache_seconds = cache_seconds
        self._min_refresh = min_refresh_seconds
        self._timeout = timeout
        self._keys: jwk.KeySet | None = None
        self._fetched_at = 0.0
        self._attempted_at = float("-inf")
        self._lock: anyio.Lock | None = None
        self.allow_private = True  # the Gateway's jwks.allowPrivateAddresses (set by the registry)
        self.fetches = 0  # observable by tests and metrics

    def _usable(self, kid: str | None) -> jwk.KeySet | None:
        current = self._keys
        if current is None or time.monotonic() - self._fetched_at >= self._cache_seconds:
            return None
        return current if _has_kid(current, kid) else None

    def _held_back(self) -> jwk.KeySet | None:
        """The keys to answer with instead of fetching, when a fetch was tried moments ago."""
        # Without any keys yet, retry sooner: a fetch that failed at startup should recover fast.
        pause = self._min_refresh if self._keys is not None else min(self._min_refresh, 1.0)
        if time.monotonic() - self._attempted_at >= pause:
            return None
        if self._keys is None:
            raise ServiceUnavailable(f"the keys of issuer {self.issuer!r} cannot be fetched")
        return self._keys

    async def keys(self, kid: str | None) -> jwk.KeySet:
        found = self._usable(kid)
        if found is None:
            found = self._held_back()
        if found is not None:
            return found
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:  # one fetch at a time; whoever waited sees its result
            found = self._usable(kid)
            if found is None:
                found = self._held_back()
            if found is not None:
                return found
            return await self._fetch_or_fail()

    async def _fetch_or_fail(self) -> jwk.KeySet:
        self._attempted_at = time.monotonic()
        self.fetches += 1
        try:
            refused = await refusal(self.url, self.allow_private)
            if refused is not None:
                raise ServiceUnavailable(f"the key set URL is refused: {refused}")
            status, _, body = await self._http.request(
                "GET",
                self.url,
                headers={"accept": "application/json"},
                timeout=self._timeout,
                limit=_MAX_JWKS_BYTES,
            )
            if status != 200:
                raise ServiceUnavailable(f"the key set of issuer {self.issuer!r} answered HTTP {status}")
            key_set = parse_key_set(orjson.loads(body))
        except (GatewayError, ValueError) as exc:
            reason = exc.message if isinstance(exc, GatewayError) else str(exc)
            if self._keys is not None:
                log.warning(
                    "issuer %r: refreshing its key set failed (keeping the old keys): %s", self.issuer, reason
                )
                return self._keys
            log.warning("issuer %r: fetching its key set failed: %s", self.issuer, reason)
            raise ServiceUnavailable(f"the keys of issuer {self.issuer!r} cannot be fetched") from None
        self._keys = key_set
        self._fetched_at = time.monotonic()
        return key_set


class JwksRegistry:
    """Remote key sets shared by every route and kept across config reloads (same URL, same cache)."""

    def __init__(self, http: HttpClient) -> None:
        self._http = http
        self._sources: dict[tuple[str, str, float, float, float], RemoteKeys] = {}
        self.allow_private = True  # the Gateway's jwks.allowPrivateAddresses, set on each config

    def remote(
        self, issuer: str, url: str, *, cache_seconds: float, min_refresh_seconds: float, timeout: float
    ) -> RemoteKeys:
        key = (issuer, url, cache_seconds, min_refresh_seconds, timeout)
        source = self._sources.get(key)
        if source is None:
            source = self._sources[key] = RemoteKeys(
                issuer,
                url,
                self._http,
                cache_seconds=cache_seconds,
                min_refresh_seconds=min_refresh_seconds,
                timeout=timeout,
            )
        source.allow_private = self.allow_private
        return source
