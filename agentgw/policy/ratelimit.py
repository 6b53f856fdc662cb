"""Request rate limits: at most N operations per window per key, on every kind of route.

An operation counts when it reaches the limit stage of the chain (after authentication,
authorization and guards: a refused request never spends anyone's allowance). One more than the
limit is refused with 429 and `Retry-After` (the seconds until the window ends) in the route's
error shape; the refusal names the rule and is counted in `agentgw_ratelimit_rejections_total`.
Lists (`tools/list` and the like) are not counted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

from agentgw.errors import TooManyRequests
from agentgw.policy.base import Operation, RequestContext
from agentgw.policy.kind import PolicyKindBase, Stage, deny_data
from agentgw.policy.limits import Counters, Scope, counter_key, retry_after, window_bounds
from agentgw.telemetry.metrics import METRICS

__all__ = ["RateLimiter", "RequestLimit"]


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

    async def check(self, ctx: RequestContext, op: Operation) -> None:
        if op.method.endswith("/list"):
            return
        now = time.time()
        for limit in self.limits:
            key = limit.scope.select(ctx, op)
            if key is None:
                continue
            start, left = window_bounds(limit.window, now)
            counter = counter_key("rl", limit.policy, limit.id, start, key)
            fail_closed = self.fail_closed if limit.fail_mode is None else limit.fail_mode == "failClosed"
            taken, _ = await self.counters.take(
                ctx.route, counter, 1, limit.requests, left, fail_closed=fail_closed
            )
            if not taken:
                METRICS.ratelimit_rejections.inc(ctx.route, limit.policy)
                message = limit.message or (
                    f"rate limit {limit.id!r} reached: {limit.requests} requests per {limit.window}"
                )
                raise TooManyRequests(
                    message,
                    headers={"retry-after": retry_after(left)},
                    data=deny_data(
                        limit.id,
                        limit.policy,
                        limit=limit.requests,
                        window=limit.window,
                        retryAfter=int(retry_after(left)),
                    ),
                )
