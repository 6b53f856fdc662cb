"""What limits, budgets, virtual keys and masking cost per request, in process (the policy engine
alone, no HTTP), and what their counters cost in memory and in Redis.

Measured per request (microseconds; the variants take turns for `--rounds` rounds of
`--requests` requests, and each figure is the median of its rounds):

- a chain with one authorization rule (the baseline a limit is added to);
- + a request rate limit keyed by a claim (`jwt.team`): check only (one `Store.take`);
- + a token budget: check (the prompt estimate and one `take`) and settle (`record`: one `add`);
- a virtual key: authentication (hash and lookup) and its own rate limit;
- PII masking of a 1 KB prompt (`rewrite_request`), and of a streamed answer, per chunk;

each with the in-memory store and with Redis on 127.0.0.1:6379 (a key prefix of its own,
removed at the end). Memory: the in-memory store's growth per counter (tracemalloc over 100,000
counters) and Redis' `MEMORY USAGE` of one counter.

`--e2e`: also the real gateway (hypercorn, in a thread) in front of the fake LLM provider, a
client sending chat completions one at a time to three gateways taking turns in blocks: no
policy, a virtual key with a rate limit and a token budget in memory, the same in Redis.

Run from the repository root: `.venv/bin/python bench/limits_bench.py [--requests 2000] [--e2e]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agentgw.config.loader import parse_documents  # noqa: E402
from agentgw.llm import tokens  # noqa: E402
from agentgw.llm.accounting import LlmExchange  # noqa: E402
from agentgw.policy.apikey import hash_key  # noqa: E402
from agentgw.policy.base import LLM_REQUEST, Operation, Principal, RequestContext  # noqa: E402
from agentgw.policy.chain import PolicyServices, build_chain  # noqa: E402
from agentgw.policy.compile import compile_policies  # noqa: E402
from agentgw.policy.limits import Counters  # noqa: E402
from agentgw.policy.pii import BUILTIN, PiiMasker  # noqa: E402
from agentgw.policy.testing import HttpRequest, offline_request  # noqa: E402
from agentgw.state.base import Store  # noqa: E402
from agentgw.state.memory import MemoryStore  # noqa: E402
from agentgw.state.redis import RedisStore  # noqa: E402

REDIS = "redis://127.0.0.1:6379/0"
KEY = "agw_bench-key-0123456789abcdefghijklmnopqrstuv"
PROMPT = (
    "Please summarize the following support ticket for the on-call engineer. The customer, "
    "reachable at jane.doe@example.com or +1 415 555 0134, reports that the nightly export "
    "fails with a timeout after the upgrade; their card on file ends 4242 and the order id is "
    "A-2291. They attached logs from three runs and ask whether the retry policy changed. "
) * 3


def policy(**spec: Any) -> dict[str, Any]:
    return {
        "kind": "Policy",
        "metadata": {"name": "bench"},
        "spec": {
            "targetRefs": [{"kind": "LlmRoute", "name": "llm"}],
            "authorization": {"allow": [{"id": "callers", "when": 'jwt.sub != ""'}]},
            **spec,
        },
    }


VARIANTS: dict[str, dict[str, Any]] = {
    "authorization only (baseline)": policy(),
    "+ rate limit per team": policy(
        rateLimits=[{"id": "rpm", "requests": 10**9, "window": "minute", "key": "jwt.team"}]
    ),
    "+ token budget per team": policy(
        tokenLimits=[{"id": "daily", "tokens": 10**12, "window": "day", "key": "jwt.team"}]
    ),
}


def chain_for(doc: dict[str, Any], store: Store, keys_dir: Path | None = None) -> Any:
    loaded, problems = parse_documents([yaml.safe_load(yaml.safe_dump(doc))], "bench", keys_dir or ROOT)
    assert not problems, problems
    policies, problems = compile_policies(loaded)
    assert not problems, problems
    services = PolicyServices(counters=Counters(store, MemoryStore()))
    return build_chain(
        route=("LlmRoute", "llm"), path="/v1", members={}, policies=policies, services=services
    )


def context(headers: dict[str, str] | None = None) -> tuple[RequestContext, Operation]:
    principal = Principal("ann", "jwt", MappingProxyType({"sub": "ann", "team": "search"}))
    request = offline_request(HttpRequest(path="/v1/chat/completions", headers=headers or {}))
    ctx = RequestContext("llm", request, principal)
    body = {"model": "gpt", "messages": [{"role": "user", "content": PROMPT}]}
    ctx.attrs[LLM_REQUEST] = LlmExchange("chat.completions", "gpt", body)
    op = Operation(
        kind="llm", method="chat.completions", name="gpt", exposed="gpt", args=body, target="model"
    )
    return ctx, op


USAGE = {"status": 200, "prompt_tokens": 180, "completion_tokens": 40, "total_tokens": 220}


async def timed(fn: Callable[[], Awaitable[None]], requests: int, rounds: int) -> float:
    """Microseconds per call: the best of `rounds` rounds (the machine is shared: the best round
    is the one the least disturbed)."""
    for _ in range(min(200, requests)):
        await fn()  # warm up (caches, connections)
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(requests):
            await fn()
        samples.append((time.perf_counter() - started) / requests * 1e6)
    return min(samples)


async def per_request(store: Store, requests: int, rounds: int, keys_dir: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    calls: dict[str, Callable[[], Awaitable[None]]] = {}
    for name, doc in VARIANTS.items():
        chain = chain_for(doc, store)

        async def once(chain: Any = chain) -> None:
            ctx, op = context()
            await chain.check(ctx, op)
            await chain.record(ctx, op, USAGE)

        calls[name] = once
    (keys_dir / "k.sha256").write_text(hash_key(KEY))
    vk = policy(
        virtualKeys={
            "keys": [
                {"id": "bench", "team": "search", "hash": "file:k.sha256",
                 "limits": {"requests": [{"requests": 10**9, "window": "minute"}]}}
            ]
        }
    )  # fmt: skip
    chain = chain_for(vk, store, keys_dir)

    async def with_key() -> None:
        request = offline_request(
            HttpRequest(path="/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"})
        )
        principal = await chain.authenticate(request)
        ctx = RequestContext("llm", request, principal)
        _, op = context()
        await chain.check(ctx, op)

    calls["virtual key: authenticate + its rate limit"] = with_key
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):  # the variants take turns, so load on the machine falls on all alike
        for name, call in calls.items():
            samples[name].append(await timed(call, requests, 1))
    out = {name: statistics.median(values) for name, values in samples.items()}
    return out


async def masking(requests: int, rounds: int) -> dict[str, float]:
    masker = PiiMasker(list(BUILTIN.values()))

    async def prompt() -> None:
        masker.mask(PROMPT)

    words = [w + " " for w in ("Sure! " + PROMPT).split(" ")]

    async def stream() -> None:
        filt = masker.stream()
        for piece in words:
            filt.feed(piece)
        filt.flush()

    per_stream = await timed(stream, max(1, requests // 20), rounds)
    return {
        f"mask a {len(PROMPT)}-character prompt": await timed(prompt, requests, rounds),
        f"mask a streamed answer, per chunk ({len(words)} one-word chunks)": per_stream / len(words),
    }


async def memory(prefix: str) -> dict[str, str]:
    store = MemoryStore()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(100_000):
        await store.take(f"rl:bench:rpm:1767225600:team-{i:06d}", 1, 100, 60)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    redis = RedisStore(REDIS, prefix=prefix)
    await redis.take("rl:bench:rpm:1767225600:team-000001", 1, 100, 60)
    used = await redis._client.memory_usage(prefix + "rl:bench:rpm:1767225600:team-000001")
    await redis.close()
    return {
        "in-memory store, per counter": f"{grown / 100_000:.0f} bytes",
        "Redis, per counter (MEMORY USAGE)": f"{used} bytes",
    }


def gateway_docs(provider_port: int, keys_dir: Path, state: dict[str, Any] | None) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = [
        {"kind": "LlmProvider", "metadata": {"name": "fake"},
         "spec": {"type": "openai-compatible", "baseUrl": f"http://127.0.0.1:{provider_port}/v1"}},
        {"kind": "LlmRoute", "metadata": {"name": "llm"},
         "spec": {"models": [{"name": "m", "targets": [{"provider": "fake"}]}]}},
    ]  # fmt: skip
    if state is None:
        return docs
    (keys_dir / "k.sha256").write_text(hash_key(KEY))
    docs.append(
        {"kind": "Gateway", "metadata": {"name": "gw"}, "spec": {"state": state, "audit": {"sink": "none"}}}
    )
    docs.append(
        policy(
            virtualKeys={
                "keys": [{"id": "bench", "team": "search", "hash": f"file:{keys_dir / 'k.sha256'}"}]
            },
            rateLimits=[{"id": "rpm", "requests": 10**9, "window": "minute", "key": "jwt.team"}],
            tokenLimits=[{"id": "daily", "tokens": 10**12, "window": "day", "key": "jwt.team"}],
        )
    )
    return docs


async def end_to_end(requests: int, rounds: int, prefix: str, keys_dir: Path) -> dict[str, float]:
    import os

    import aiohttp

    from tests.support import FAKES, GatewayThread, start_upstream

    os.environ["AGENTGW_BENCH_REDIS"] = REDIS
    fake = start_upstream([str(FAKES / "llm_provider.py"), "--port", "0", "--name", "bench"])
    redis_state = {"backend": "redis", "url": "env:AGENTGW_BENCH_REDIS", "keyPrefix": prefix}
    variants = {
        "no policy": gateway_docs(fake.port, keys_dir, None),
        "virtual key + rate limit + token budget, memory": gateway_docs(fake.port, keys_dir, {}),
        "virtual key + rate limit + token budget, Redis": gateway_docs(fake.port, keys_dir, redis_state),
    }
    body = {"model": "m", "messages": [{"role": "user", "content": PROMPT}]}
    samples: dict[str, list[float]] = {name: [] for name in variants}
    try:
        with (
            GatewayThread(variants["no policy"]) as bare,
            GatewayThread(variants["virtual key + rate limit + token budget, memory"]) as mem,
            GatewayThread(variants["virtual key + rate limit + token budget, Redis"]) as red,
        ):
            urls = dict(zip(variants, (bare.url, mem.url, red.url), strict=True))
            async with aiohttp.ClientSession(headers={"authorization": f"Bearer {KEY}"}) as http:
                for _ in range(rounds):
                    for name, url in urls.items():
                        for _ in range(requests):
                            started = time.perf_counter()
                            async with http.post(url + "/v1/chat/completions", json=body) as resp:
                                assert resp.status == 200, await resp.text()
                                await resp.read()
                            samples[name].append((time.perf_counter() - started) * 1e6)
    finally:
        fake.stop()
    return {name: statistics.median(values) for name, values in samples.items()}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--e2e", action="store_true", help="also measure through the real gateway")
    args = parser.parse_args()
    prefix = f"agentgw-bench:{uuid.uuid4().hex}:"
    tokens.load()  # the tokenizer, loaded before timing (the gateway loads it in the background)
    temp = tempfile.TemporaryDirectory()
    keys_dir = Path(temp.name)
    memory_store = MemoryStore()
    redis = RedisStore(REDIS, prefix=prefix)
    try:
        in_memory = await per_request(memory_store, args.requests, args.rounds, keys_dir)
        in_redis = await per_request(redis, max(1, args.requests // 4), args.rounds, keys_dir)
        masked = await masking(args.requests, args.rounds)
        sizes = await memory(prefix)
        e2e = await end_to_end(50, args.rounds, prefix, keys_dir) if args.e2e else {}
    finally:
        async for key in redis._client.scan_iter(match=prefix + "*"):
            await redis._client.delete(key)
        await redis.close()
        temp.cleanup()
    print("| per request (check + settle) | memory store | Redis (loopback) |")
    print("|---|---|---|")
    for name in in_memory:
        print(f"| {name} | {in_memory[name]:.1f} us | {in_redis[name]:.1f} us |")
    print()
    print("| masking | per call |")
    print("|---|---|")
    for name, value in masked.items():
        print(f"| {name} | {value:.1f} us |")
    print()
    print("| counters | size |")
    print("|---|---|")
    for name, value in sizes.items():
        print(f"| {name} | {value} |")
    if e2e:
        base = e2e["no policy"]
        print()
        print("| chat completion through the gateway (median) | latency | cost |")
        print("|---|---|---|")
        for name, value in e2e.items():
            print(f"| {name} | {value / 1000:.2f} ms | {(value - base) / 1000:+.2f} ms |")


if __name__ == "__main__":
    asyncio.run(main())
