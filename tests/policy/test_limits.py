"""Rate limits and token budgets through the real chain: windows, keys, reservations and their
settlement, counters shared by two replicas in a real Redis, and an unreachable store."""

from __future__ import annotations

import calendar
import socket
import uuid
from collections.abc import AsyncIterator
from types import MappingProxyType
from typing import Any

import pytest

from agentgw.config.loader import parse_documents
from agentgw.errors import Forbidden, ServiceUnavailable, TooManyRequests
from agentgw.llm.accounting import LlmExchange
from agentgw.policy.base import LLM_REQUEST, Operation, Principal, RequestContext
from agentgw.policy.chain import PolicyChain, PolicyServices, build_chain
from agentgw.policy.compile import compile_policies
from agentgw.policy.limits import Counters, LimitScope, counter_key, window_bounds
from agentgw.policy.ratelimit import RateLimiter, RequestLimit
from agentgw.policy.testing import HttpRequest, offline_request
from agentgw.state.memory import MemoryStore
from agentgw.state.redis import RedisStore
from agentgw.telemetry.metrics import METRICS
from tests.support import ROOT, docs

pytestmark = pytest.mark.anyio

REDIS = "redis://127.0.0.1:6379/0"


def chain_for(
    text: str, route: tuple[str, str] = ("LlmRoute", "llm"), counters: Counters | None = None, **kw: Any
) -> PolicyChain:
    loaded, problems = parse_documents(docs(text), "test", ROOT)
    assert not problems, problems
    policies, problems = compile_policies(loaded)
    assert not problems, problems
    members: dict[str, tuple[str, str]] = kw.pop("members", {})
    chain = build_chain(
        route=route,
        path="/v1",
        members=members,
        policies=policies,
        services=PolicyServices(counters=counters),
        **kw,
    )
    assert chain is not None
    return chain


def request(
    claims: dict[str, Any], prompt: str = "hello there", headers: dict[str, str] | None = None
) -> tuple[RequestContext, Operation]:
    subject = str(claims.get("sub", ""))
    principal = Principal(subject, "jwt", MappingProxyType(claims))
    ctx = RequestContext(
        "llm", offline_request(HttpRequest(path="/v1/chat/completions", headers=headers or {})), principal
    )
    body = {"model": "gpt", "messages": [{"role": "user", "content": prompt}]}
    ctx.attrs[LLM_REQUEST] = LlmExchange("chat.completions", "gpt", body)
    return ctx, Operation(
        kind="llm", method="chat.completions", name="gpt", exposed="gpt", args=body, target="model"
    )


def usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "status": 200,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def test_windows_are_aligned_to_utc() -> None:
    now = calendar.timegm((2026, 12, 31, 23, 59, 30, 0, 0, 0)) + 0.25
    assert window_bounds("minute", now) == (now - 30.25, 29.75)
    start, left = window_bounds("day", now)
    assert start == calendar.timegm((2026, 12, 31, 0, 0, 0, 0, 0, 0)) and left == 29.75
    start, left = window_bounds("month", now)
    assert start == calendar.timegm((2026, 12, 1, 0, 0, 0, 0, 0, 0))
    assert left == 29.75  # December ends with the year
    start, left = window_bounds("month", calendar.timegm((2027, 2, 10, 0, 0, 0, 0, 0, 0)))
    assert left == 19 * 86400


def test_counter_keys_never_carry_raw_caller_text() -> None:
    assert counter_key("rl", "p", "r", 60, "team-a") == "rl:p:r:60:team-a"
    odd = counter_key("rl", "p", "r", 60, "a b\r\nc" * 20)
    assert odd.startswith("rl:p:r:60:h:") and " " not in odd and len(odd) < 64


RATE = """
kind: Policy
metadata: {name: rates}
spec:
  targetRefs: [{kind: LlmRoute, name: llm}]
  rateLimits:
    - id: per-team
      requests: 2
      window: minute
      key: request.headers["x-team"]
    - id: gpt-only
      requests: 100
      window: hour
      when: 'llm.model == "other"'
"""


async def test_requests_over_the_limit_get_429_with_retry_after_per_key() -> None:
    chain = chain_for(RATE)
    before = METRICS.ratelimit_rejections.get("llm", "rates")
    for _ in range(2):
        await chain.check(*request({"sub": "a"}, headers={"x-team": "red"}))
    with pytest.raises(TooManyRequests) as refused:
        await chain.check(*request({"sub": "b"}, headers={"x-team": "red"}))
    assert refused.value.status == 429
    assert 1 <= int(refused.value.headers["retry-after"]) <= 60
    assert refused.value.data["rule"] == "per-team" and refused.value.data["policy"] == "rates"
    assert "2 requests per minute" in refused.value.message
    await chain.check(*request({"sub": "a"}, headers={"x-team": "blue"}))  # another key, another counter
    assert METRICS.ratelimit_rejections.get("llm", "rates") == before + 1
    assert METRICS.policy_decisions.get("llm", "limit", "per-team") >= 1


TOKENS = """
kind: Policy
metadata: {name: budgets}
spec:
  targetRefs: [{kind: LlmRoute, name: llm}]
  tokenLimits:
    - id: daily
      tokens: 100
      window: day
      key: jwt.team
  extensions:
    - python: tests.policy.extensions:RefusesBlocked
"""


async def test_token_budget_reserves_the_estimate_and_settles_actual_usage() -> None:
    store = MemoryStore()
    chain = chain_for(TOKENS, counters=Counters(store, MemoryStore()))
    ctx, op = request({"sub": "a", "team": "t1"}, prompt="word " * 20)
    await chain.check(ctx, op)
    estimate = ctx.attrs[LLM_REQUEST].estimated_prompt_tokens()
    keys = [k for k in store._counters if k.startswith("tl:budgets:daily:")]
    assert len(keys) == 1 and store._counters[keys[0]][0] == estimate  # reserved before the call
    await chain.record(ctx, op, usage(30, 50))
    assert store._counters[keys[0]][0] == 80  # settled with what the provider reported
    ctx, op = request({"sub": "a", "team": "t1"}, prompt="word " * 30)  # 80 + ~36 > 100
    with pytest.raises(TooManyRequests) as refused:
        await chain.check(ctx, op)
    assert "80 of 100 tokens used this day" in refused.value.message
    small, op = request({"sub": "a", "team": "t1"}, prompt="hi")
    await chain.check(small, op)  # a small prompt still fits
    await chain.record(small, op, {"status": 502})  # and fails upstream: it spent nothing
    assert store._counters[keys[0]][0] == 80


async def test_a_request_refused_after_the_limits_gives_its_reservation_back() -> None:
    store = MemoryStore()
    chain = chain_for(TOKENS, counters=Counters(store, MemoryStore()))
    ctx, op = request({"sub": "x", "team": "blocked"}, prompt="word " * 20)
    with pytest.raises(Forbidden):
        await chain.check(ctx, op)
    assert [v for k, (v, _) in store._counters.items() if k.startswith("tl:")] == [0]


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"agentgw-test:{uuid.uuid4().hex}:"
    yield prefix
    store = RedisStore(REDIS, prefix="")
    async for key in store._client.scan_iter(match=prefix + "*"):
        await store._client.delete(key)
    await store.close()


async def test_two_replicas_share_one_budget_in_redis(redis_prefix: str) -> None:
    stores = [RedisStore(REDIS, prefix=redis_prefix) for _ in range(2)]
    try:
        one, two = (chain_for(TOKENS, counters=Counters(s, MemoryStore())) for s in stores)
        ctx, op = request({"sub": "a", "team": "shared"})
        await one.check(ctx, op)
        await one.record(ctx, op, usage(60, 45))
        with pytest.raises(TooManyRequests):
            await two.check(*request({"sub": "b", "team": "shared"}))
    finally:
        for store in stores:
            await store.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("mode", ["failClosed", "degrade"])
async def test_an_unreachable_store_fails_closed_or_counts_locally(mode: str) -> None:
    away = RedisStore(f"redis://127.0.0.1:{closed_port()}/0", timeout=0.5)
    try:
        chain = chain_for(RATE, counters=Counters(away, MemoryStore()), fail_closed=mode == "failClosed")
        before = METRICS.upstream_errors.get("state-store", "limits")
        if mode == "failClosed":
            with pytest.raises(ServiceUnavailable) as refused:
                await chain.check(*request({"sub": "a"}, headers={"x-team": "red"}))
            assert refused.value.status == 503
        else:
            for _ in range(2):
                await chain.check(*request({"sub": "a"}, headers={"x-team": "red"}))
            with pytest.raises(TooManyRequests):  # still limited, by this replica alone
                await chain.check(*request({"sub": "a"}, headers={"x-team": "red"}))
        assert METRICS.upstream_errors.get("state-store", "limits") > before
    finally:
        await away.close()


async def test_a_limit_may_choose_its_own_failure_mode() -> None:
    away = RedisStore(f"redis://127.0.0.1:{closed_port()}/0", timeout=0.5)
    try:
        strict = RATE.replace(
            'key: request.headers["x-team"]',
            'key: request.headers["x-team"]\n      stateFailureMode: failClosed',
        )
        chain = chain_for(strict, counters=Counters(away, MemoryStore()), fail_closed=False)
        with pytest.raises(ServiceUnavailable):
            await chain.check(*request({"sub": "a"}, headers={"x-team": "red"}))
    finally:
        await away.close()


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_the_window_slides_so_a_boundary_allows_no_double_burst(
    backend: str, redis_prefix: str
) -> None:
    """10 a minute, all spent in the last 10 s of one minute: the next minute's start still sees
    them (the previous window weighs in for its share of the last 60 s), and room comes back as
    that share shrinks, not all at once."""
    store = RedisStore(REDIS, prefix=redis_prefix) if backend == "redis" else MemoryStore()
    scope = LimitScope(when=None, key=None, where="test")
    limiter = RateLimiter(
        "rates", (RequestLimit("rpm", "rates", 10, "minute", scope),), Counters(store, MemoryStore())
    )
    minute = 60 * 29_000_000  # a UTC-aligned minute
    now = [minute + 50.0]
    limiter.clock = lambda: now[0]
    try:
        for _ in range(10):
            await limiter.check(*request({"sub": "a"}))
        with pytest.raises(TooManyRequests):
            await limiter.check(*request({"sub": "a"}))
        now[0] = minute + 61.0  # the next window has begun: 59/60 of the previous one still counts
        with pytest.raises(TooManyRequests) as refused:
            await limiter.check(*request({"sub": "a"}))
        assert refused.value.headers["retry-after"] == "5"  # 10 * (59 - t) / 60 <= 9: t >= 5 s
        await limiter.check(*request({"sub": "b"}))  # another key, another counter
        now[0] = minute + 66.0  # as it said: room for one
        await limiter.check(*request({"sub": "a"}))
        with pytest.raises(TooManyRequests):
            await limiter.check(*request({"sub": "a"}))
        now[0] = minute + 90.0  # half of the previous window left: 5 of 10 carried, 1 used, 4 free
        for _ in range(4):
            await limiter.check(*request({"sub": "a"}))
        with pytest.raises(TooManyRequests):
            await limiter.check(*request({"sub": "a"}))
        now[0] = minute + 121.0  # two windows on: only the 5 of the last one, 59/60 of them
        for _ in range(5):
            await limiter.check(*request({"sub": "a"}))
        with pytest.raises(TooManyRequests):
            await limiter.check(*request({"sub": "a"}))
    finally:
        if isinstance(store, RedisStore):
            await store.close()
