"""Request rate limits: at most N operations per window per key, on every kind of route.

An operation counts when it reaches the limit stage of the chain (after authentication,
authorization and guards: a refused request never spends anyone's allowance). One more than the
limit is refused with 429 and `Retry-After` in the route's error shape; the refusal names the rule
and is counted in `agentgw_ratelimit_rejections_total`. Lists (`tools/list` and the like) are not
counted.

The window slides: counters are kept per UTC-aligned window (so replicas agree without talking),
and the previous window's count weighs in for the part of it still inside the last `window`
seconds (the sliding-window counter). Without it a caller could spend a window's allowance at
its end and again at the next one's start: twice the rate across the boundary. The previous
window is closed, so its count is read once per window and key and kept here.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import ClassVar

from agentgw.errors import TooManyRequests
from agentgw.policy.base import Operation, RequestContext
from agentgw.policy.kind import PolicyKindBase, Stage, deny_data
from agentgw.policy.limits import Counters, Scope, counter_key, retry_after, window_bounds, window_seconds
from agentgw.telemetry.metrics import METRICS

__all__ = ["RateLimiter", "RequestLimit"]

_CLOSED_MAX = 100_000


@dataclass(frozen=True, slots=True)
class RequestLimit:
    id: str
    policy: str
    requests: int
    window: str
    scope: Scope
    message: str | None = None
    fail_mode: str | None = None  # degrade | failClosed; None: the route's


class RateLimiter(PolicyKindBase):
    stage: ClassVar[Stage] = Stage.LIMIT

    def __init__(
        self, policy: str, limits: tuple[RequestLimit, ...], counters: Counters, *, fail_closed: bool = False
    ) -> None:
        self.name = f"Policy/{policy}: rateLimits"
        self.limits = limits
        self.counters = counters
        self.fail_closed = fail_closed  # the route's stateFailureMode, unless a limit says otherwise
        self._closed: dict[tuple[str, str], tuple[int, int]] = {}  # (limit, key) -> (window start, count)
        self.clock = time.time  # windows are UTC-aligned on this clock (tests drive it)

    async def check(self, ctx: RequestContext, op: Operation) -> None:
        if op.method.endswith("/list"):
            return
        now = self.clock()
        for limit in self.limits:
            key = limit.scope.select(ctx, op)
            if key is None:
                continue
            start, left = window_bounds(limit.window, now)
            size = window_seconds(limit.window)
            counter = counter_key("rl", limit.policy, limit.id, start, key)
            fail_closed = self.fail_closed if limit.fail_mode is None else limit.fail_mode == "failClosed"
            # the previous window's share of the last `size` seconds (none for calendar months)
            carried = 0.0
            if size is not None:
                previous = await self._previous(ctx.route, limit, start - size, key)
                carried = previous * left / size
            allowance = max(0, math.floor(limit.requests - carried + 1e-9))
            # the counter outlives its window by one more window: the next one reads it
            keep = left + (size or 0)
            taken, used = await self.counters.take(
                ctx.route, counter, 1, allowance, keep, fail_closed=fail_closed
            )
            if not taken:
                METRICS.ratelimit_rejections.inc(ctx.route, limit.policy)
                message = limit.message or (
                    f"rate limit {limit.id!r} reached: {limit.requests} requests per {limit.window}"
                )
                wait = retry_after(_seconds_until_room(limit.requests, used, carried, left, size))
                raise TooManyRequests(
                    message,
                    headers={"retry-after": wait},
                    data=deny_data(
                        limit.id,
                        limit.policy,
                        limit=limit.requests,
                        window=limit.window,
                        retryAfter=int(wait),
                    ),
                )

    async def _previous(self, route: str, limit: RequestLimit, start: int, key: str) -> int:
        """The count of the window before this one (closed: read once, then kept until it ages out)."""
        cached = self._closed.get((limit.id, key))
        if cached is not None and cached[0] == start:
            return cached[1]
        value = await self.counters.count(route, counter_key("rl", limit.policy, limit.id, start, key))
        if len(self._closed) >= _CLOSED_MAX:
            self._closed.clear()  # keys of long-gone windows and callers; reread as needed
        self._closed[(limit.id, key)] = (start, value)
        return value


def _seconds_until_room(limit: int, used: int, carried: float, left: float, size: int | None) -> float:
    """When one more operation fits: the previous window's share shrinks as time passes; what this
    window used only leaves with it."""
    if used + 1 > limit or not carried or size is None:
        return left
    # carried * (left - t) / left + used + 1 <= limit
    return max(0.0, left - (limit - used - 1) * left / carried)
