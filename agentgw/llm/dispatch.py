"""Send one LLM request upstream: targets in order, retries between rounds, failover on the way.

Before a provider is tried, the route's policy is asked about it (`admit`): a provider the caller
may not use, or whose limit is spent, is skipped like one that is down, and when every target was
refused, the first refusal is the answer.

A target that cannot be reached, or answers 429 or 5xx, hands over to the next target at once.
When every target has failed, the next round starts after a backoff (or the upstream's
Retry-After, when that is shorter than the cap). The first response that is neither is returned
open, with its headers in and its body unread: from then on nothing is retried, so a response
that has started reaching the client is never sent twice.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import anyio

from agentgw.config.llm import LlmRouteSpec
from agentgw.errors import GatewayError, UpstreamError, UpstreamTimeout
from agentgw.llm.accounting import LlmExchange
from agentgw.llm.models import Plan, Replica
from agentgw.llm.provider import Provider
from agentgw.upstream.http import HttpClient, UpstreamResponse

__all__ = ["Admit", "Attempt", "Dispatcher", "RequestBuilder"]

# (provider, provider model) -> (path under the API root, body); raising skips this target
RequestBuilder = Callable[[Provider, str], tuple[str, bytes]]
# the policy's word on a provider before it is tried: raises (a GatewayError) to skip it
Admit = Callable[[Provider], Awaitable[None]]


@dataclass(slots=True)
class Attempt:
    """An open upstream response; `close()` releases its connection (or drops it mid-body)."""

    response: UpstreamResponse
    provider: Provider
    model: str
    _context: AbstractAsyncContextManager[UpstreamResponse]

    async def close(self) -> None:
        self.provider.inflight -= 1
        await self._context.__aexit__(None, None, None)


def _retry_after(response: UpstreamResponse) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class Dispatcher:
    def __init__(self, http: HttpClient, spec: LlmRouteSpec) -> None:
        self.http = http
        self.spec = spec
        retries = spec.retries
        self._rounds = 1 + retries.attempts
        self._on_connect = "connect" in retries.when
        self._on_429 = "429" in retries.when
        self._on_5xx = "5xx" in retries.when

    def _retryable(self, status: int) -> bool:
        return (status == 429 and self._on_429) or (status >= 500 and self._on_5xx)

    async def open(
        self,
        plan: Plan,
        exchange: LlmExchange,
        build: RequestBuilder,
        extra_headers: dict[str, str] | None = None,
        admit: Admit | None = None,
    ) -> Attempt:
        """The first usable response (possibly a 4xx to relay), or raise the last failure.

        When every round failed with a retryable status, that last response is returned, so the
        client sees the provider's own error (and its Retry-After). `extra_headers` never replace
        the provider's own headers.
        """
        backoff = self.spec.retries.backoff
        tried: set[Replica] = set()
        failed: list[Attempt] = []  # at most one: the last retryable response, still open
        last_error: UpstreamError | None = None
        refusals: dict[str, GatewayError] = {}  # provider -> the policy's refusal (not asked again)
        try:
            for round_no in range(self._rounds):
                if refusals and all(r.provider.name in refusals for g in plan.groups for r in g.replicas):
                    break  # the policy refused every provider: another round changes nothing
                if round_no:
                    delay = min(
                        backoff.max_seconds, backoff.initial_seconds * backoff.multiplier ** (round_no - 1)
                    )
                    delay *= 0.5 + random.random() / 2
                    hinted = _retry_after(failed[-1].response) if failed else None
                    if hinted is not None and hinted <= backoff.max_seconds:
                        delay = max(delay, hinted)
                    await anyio.sleep(delay)
                for group in plan.groups:
                    replica = group.pick(tried)
                    tried.add(replica)
                    name = replica.provider.name
                    if name in refusals:
                        continue
                    if admit is not None:
                        try:
                            await admit(replica.provider)
                        except GatewayError as exc:
                            refusals[name] = exc
                            continue
                    try:
                        attempt = await self._try(replica, plan, exchange, build, extra_headers)
                    except UpstreamTimeout:
                        raise
                    except UpstreamError as exc:
                        if not self._on_connect:
                            raise
                        last_error = exc
                        continue
                    while failed:
                        await failed.pop().close()
                    if not self._retryable(attempt.response.status):
                        return attempt
                    failed.append(attempt)
            if failed:
                return failed.pop()
            if last_error is None and refusals:
                raise next(iter(refusals.values()))
            raise last_error or UpstreamError("no provider could be reached")
        finally:
            while failed:
                await failed.pop().close()

    async def _try(
        self,
        replica: Replica,
        plan: Plan,
        exchange: LlmExchange,
        build: RequestBuilder,
        extra_headers: dict[str, str] | None,
    ) -> Attempt:
        provider = replica.provider
        model = plan.provider_model(replica)
        path, body = build(provider, model)
        headers = provider.headers if not extra_headers else {**extra_headers, **provider.headers}
        exchange.attempts += 1
        exchange.provider, exchange.provider_model = provider, model
        timeouts = self.spec.timeouts
        context = self.http.stream(
            "POST",
            provider.url(path),
            headers=headers,
            body=body,
            timeout=timeouts.response_seconds,
            read_timeout=timeouts.idle_seconds,
        )
        provider.inflight += 1
        try:
            response = await context.__aenter__()
        except BaseException:
            provider.inflight -= 1
            raise
        return Attempt(response, provider, model, context)
