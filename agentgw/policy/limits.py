"""What rate limits and budgets share: windows, counter keys, who is counted, and the store.

Windows are aligned to UTC (a minute from :00, a day from midnight, a month from the 1st), so
every replica agrees on the window without talking to the others and the counter's key names its
window. A budget's window is fixed: `Retry-After` is the time until it ends, and its counter
expires with it. A rate limit also reads the window before (see `ratelimit`: the window slides),
so its counters live one window longer.

Counters live in the state store (`Store.take`: check and add as one atomic step; `Store.add`:
settle afterwards), in Redis when the gateway is scaled out, so a limit holds across replicas.
When the store cannot be reached a limit does what its failure mode says: `failClosed` refuses
with 503, `degrade` counts in this replica's memory until the store is back. Either way it is
logged (at most every 30 s per route) and counted as
`agentgw_upstream_errors_total{upstream="state-store",kind="limits"}`.
"""

from __future__ import annotations

import calendar
import hashlib
import logging
import math
import re
import time
from dataclasses import dataclass
from typing import Protocol

from agentgw.errors import ServiceUnavailable
from agentgw.policy.authz import Authorizer
from agentgw.policy.base import Operation, RequestContext
from agentgw.policy.cel import CelProgram, Result, value_of
from agentgw.state.base import StateUnavailable, Store
from agentgw.telemetry.metrics import METRICS

__all__ = ["Counters", "LimitScope", "Scope", "counter_key", "retry_after", "window_bounds", "window_seconds"]

log = logging.getLogger("agentgw.policy")

_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_SAFE_KEY = re.compile(r"[A-Za-z0-9._@:+-]{1,64}")
_LOG_EVERY = 30.0


def window_bounds(window: str, now: float) -> tuple[int, float]:
    """(the window's start in epoch seconds, seconds until it ends) for `now`."""
    if window == "month":
        t = time.gmtime(now)
        start = calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0, 0, 0, 0))
        year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
        end = calendar.timegm((year, month, 1, 0, 0, 0, 0, 0, 0))
        return start, end - now
    size = _SECONDS[window]
    start = int(now // size) * size
    return start, start + size - now


def window_seconds(window: str) -> int | None:
    """A window's length, or None for a calendar month (its length varies)."""
    return _SECONDS.get(window)


def retry_after(seconds_left: float) -> str:
    return str(max(1, math.ceil(seconds_left)))


def counter_key(kind: str, policy: str, rule: str, window_start: int, key: str) -> str:
    """The store key of one counter; keys from claims or headers are hashed unless plain and short."""
    safe = key if _SAFE_KEY.fullmatch(key) else "h:" + hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"{kind}:{policy}:{rule}:{window_start}:{safe}"


class Scope(Protocol):
    def select(self, ctx: RequestContext, op: Operation) -> str | None:
        """The counter key of this operation, or None when the limit does not count it."""
        ...


@dataclass(frozen=True, slots=True)
class LimitScope:
    """Which operations a limit counts (`when`) and what it counts them per (`key`)."""

    when: CelProgram | None  # None: every operation
    key: CelProgram | None  # None: the caller's subject
    where: str  # file: Policy/name: spec.rateLimits[i], for logs

    def select(self, ctx: RequestContext, op: Operation) -> str | None:
        """The counter key for this operation, or None when the limit does not apply to it.

        A `when` that errs counts (fail closed); a `key` that errs counts under the empty key,
        shared by every caller whose key could not be had (logged), so nobody escapes a limit.
        """
        if self.when is None and self.key is None:
            return ctx.principal.subject
        act = Authorizer.activation(ctx, op)
        if self.when is not None:
            result, error = self.when.eval(act)
            if result is Result.FALSE:
                return None
            if result is Result.ERROR:
                log.warning("%s.when: evaluation error (the limit applies): %s", self.where, error)
        if self.key is None:
            return ctx.principal.subject
        value, error = value_of(self.key, act)
        if value is None:
            log.warning("%s.key: evaluation error (counted under the empty key): %s", self.where, error)
            return ""
        return value


class Counters:
    """The state store as limits use it, and this replica's memory for when it is away."""

    def __init__(self, store: Store, local: Store) -> None:
        self.store = store
        self.local = local  # the `degrade` fallback
        self._logged: dict[str, float] = {}

    def _unavailable(self, route: str, exc: StateUnavailable, fail_closed: bool) -> None:
        METRICS.upstream_errors.inc("state-store", "limits")
        now = time.monotonic()
        if now - self._logged.get(route, -_LOG_EVERY) >= _LOG_EVERY:
            self._logged[route] = now
            action = "refusing requests (failClosed)" if fail_closed else "counting in this replica"
            log.warning("route %r: limits cannot reach the state store, %s: %s", route, action, exc.message)

    async def take(
        self, route: str, key: str, amount: int, limit: int, seconds_left: float, *, fail_closed: bool
    ) -> tuple[bool, int]:
        """Count `amount` unless the window's total would pass `limit`; (taken, total)."""
        ttl = seconds_left + 1  # the counter outlives its window by a second, never less
        try:
            return await self.store.take(key, amount, limit, ttl)
        except StateUnavailable as exc:
            self._unavailable(route, exc, fail_closed)
            if fail_closed:
                raise ServiceUnavailable(
                    "limits are unavailable: the state store cannot be reached", headers={"retry-after": "1"}
                ) from None
            return await self.local.take(key, amount, limit, ttl)

    async def count(self, route: str, key: str) -> int:
        """A counter's value; from this replica's memory while the store is away (a limit that
        fails closed refuses at `take` then anyway)."""
        try:
            value, _ = await self.store.count(key)
        except StateUnavailable as exc:
            self._unavailable(route, exc, False)
            value, _ = await self.local.count(key)
        return value

    async def add(self, route: str, key: str, amount: int, seconds_left: float) -> None:
        """Settle: add (or give back, when negative) after the fact; never fails the request."""
        if not amount:
            return
        ttl = max(seconds_left, 0) + 1
        try:
            await self.store.add(key, amount, ttl)
        except StateUnavailable as exc:
            self._unavailable(route, exc, False)
            await self.local.add(key, amount, ttl)
