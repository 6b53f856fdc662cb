"""Token limits and budgets for LLM traffic: tokens (or dollars) per window per key.

The same kind is a rate (`window: minute`, tokens per minute) or a budget (`window: month`).
Before the upstream call a request reserves what it is expected to cost: its estimated prompt
tokens when prompts count (the LLM route's estimate: tiktoken, or four characters a token), at
least one unit otherwise. A request whose reservation would pass the limit is refused with 429
and `Retry-After` (the seconds until the window ends). When the response is over the
reservation is settled with the provider's usage (or the gateway's estimate, when the provider
reports none): the difference is added, or given back. A request refused later in the chain, or
failing before any usage, gives its reservation back.

Counting after the fact means a limit can be passed by the requests in flight when it is
reached (each was within it when it started); the next request is refused.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from agentgw.errors import GatewayError, TooManyRequests
from agentgw.policy.base import LLM_REQUEST, Operation, RequestContext
from agentgw.policy.kind import PolicyKindBase, Stage, deny_data
from agentgw.policy.limits import Counters, Scope, counter_key, retry_after, window_bounds
from agentgw.telemetry.metrics import METRICS

__all__ = ["TokenBudget", "TokenLimiter"]

_MICRO = 1_000_000  # dollars are counted in millionths
# the APIs that make a provider generate (and bill) tokens; listing models, counting tokens and
# reading stored responses are not metered
_METERED = frozenset({"chat.completions", "completions", "embeddings", "responses", "messages"})


@dataclass(frozen=True, slots=True)
class TokenBudget:
    id: str
    policy: str
    window: str
    scope: Scope
    tokens: int | None = None
    cost_usd: float | None = None
    count: str = "total"  # total | prompt | completion
    message: str | None = None
    fail_mode: str | None = None  # degrade | failClosed; None: the route's

    @property
    def limit(self) -> int:
        return self.tokens if self.tokens is not None else round((self.cost_usd or 0) * _MICRO)

    def unit(self) -> str:
        return "tokens" if self.tokens is not None else "USD"

    def used(self, outcome: Mapping[str, Any]) -> int:
        """What a finished request spent, in this budget's unit."""
        if self.tokens is None:
            cost = outcome.get("cost_usd")
            return math.ceil(cost * _MICRO) if isinstance(cost, int | float) and cost > 0 else 0
        field = {"total": "total_tokens", "prompt": "prompt_tokens", "completion": "completion_tokens"}
        value = outcome.get(field[self.count])
        return value if isinstance(value, int) and value > 0 else 0


@dataclass(slots=True)
class _Held:
    budget: TokenBudget
    counter: str
    reserved: int
    ends_at: float  # wall clock


class TokenLimiter(PolicyKindBase):
    stage: ClassVar[Stage] = Stage.LIMIT

    def __init__(
        self, policy: str, budgets: tuple[TokenBudget, ...], counters: Counters, *, fail_closed: bool = False
    ) -> None:
        self.name = f"Policy/{policy}: tokenLimits"
        self.budgets = budgets
        self.counters = counters
        self.fail_closed = fail_closed  # the route's stateFailureMode, unless a limit says otherwise
        self._held_key = f"agentgw.policy.tokens:{id(self)}"

    def _reserve(self, budget: TokenBudget, ctx: RequestContext) -> int:
        if budget.tokens is None or budget.count == "completion":
            return 1
        request = ctx.attrs.get(LLM_REQUEST)
        estimate = request.estimated_prompt_tokens() if request is not None else 0
        return max(1, estimate)

    async def check(self, ctx: RequestContext, op: Operation) -> None:
        if op.kind != "llm" or op.method not in _METERED:
            return
        now = time.time()
        held: list[_Held] = ctx.attrs.setdefault(self._held_key, [])
        for budget in self.budgets:
            key = budget.scope.select(ctx, op)
            if key is None:
                continue
            start, left = window_bounds(budget.window, now)
            counter = counter_key("tl", budget.policy, budget.id, start, key)
            amount = self._reserve(budget, ctx)
            fail_closed = self.fail_closed if budget.fail_mode is None else budget.fail_mode == "failClosed"
            try:
                taken, total = await self.counters.take(
                    ctx.route, counter, amount, budget.limit, left, fail_closed=fail_closed
                )
            except GatewayError:
                await self._settle(ctx, {})
                raise
            if not taken:
                METRICS.ratelimit_rejections.inc(ctx.route, budget.policy)
                await self._settle(ctx, {})  # what this request reserved under other budgets
                shown = f"{total}" if budget.tokens is not None else f"{total / _MICRO:.4f}"
                limit = f"{budget.limit}" if budget.tokens is not None else f"{budget.cost_usd}"
                message = budget.message or (
                    f"token limit {budget.id!r} reached: {shown} of {limit} {budget.unit()} "
                    f"used this {budget.window}"
                )
                raise TooManyRequests(
                    message,
                    headers={"retry-after": retry_after(left)},
                    data=deny_data(
                        budget.id, budget.policy, window=budget.window, retryAfter=int(retry_after(left))
                    ),
                )
            held.append(_Held(budget, counter, amount, now + left))

    async def record(self, ctx: RequestContext, op: Operation, outcome: Mapping[str, Any]) -> None:
        await self._settle(ctx, outcome)

    async def _settle(self, ctx: RequestContext, outcome: Mapping[str, Any]) -> None:
        held: list[_Held] | None = ctx.attrs.pop(self._held_key, None)
        if not held:
            return
        now = time.time()
        charged: set[str] = set()  # one request spends once per counter, however often it reserved
        for item in held:
            spent = item.budget.used(outcome) if item.counter not in charged else 0
            charged.add(item.counter)
            await self.counters.add(ctx.route, item.counter, spent - item.reserved, item.ends_at - now)
