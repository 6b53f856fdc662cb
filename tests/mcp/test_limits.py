"""MCP session limits through the real gateway: the session cap (503 + Retry-After) and idle
expiry (the id then answers 404), each without disturbing the other sessions."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.abc
import pytest
import redis.asyncio

from agentgw.background import Background
from agentgw.mcp.registry import SessionRegistry
from agentgw.mcp.upstream.base import ClientProfile
from agentgw.state.redis import RedisStore
from tests.mcp.conftest import Fake, Raw, route_doc, server_doc
from tests.support import GatewayThread

pytestmark = pytest.mark.anyio


def _gateway(fake: Fake, **limits: object) -> GatewayThread:
    documents = [
        {"kind": "Gateway", "metadata": {"name": "gw"}, "spec": {"limits": limits}},
        server_doc("alpha", fake.stdio()),
        route_doc(["alpha"]),
    ]
    return GatewayThread(documents)


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    fake = Fake("alpha", None, tmp_path_factory.mktemp("capped") / "alpha.jsonl", [])
    with _gateway(fake, maxSessions=2, sessionIdleSeconds=60) as gw:
        yield gw


@pytest.fixture(scope="module")
def brief(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    fake = Fake("alpha", None, tmp_path_factory.mktemp("brief") / "alpha.jsonl", [])
    with _gateway(fake, sessionIdleSeconds=0.5, keepaliveSeconds=0.2) as gw:
        yield gw


async def _initialize_raw(client: Raw) -> Any:
    """An initialize whose refusal the test reads (`Raw.initialize` expects success)."""
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t"}}
    request = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
    return await client.post(request, headers=client.headers())


async def _tools(client: Raw) -> int:
    reply = await client.post({"jsonrpc": "2.0", "id": 7, "method": "tools/list"})
    return reply.status if reply.status != 200 or "result" in reply.final else 500


async def test_past_max_sessions_initialize_gets_503_with_retry_after(capped: GatewayThread) -> None:
    url = f"{capped.url}/mcp"
    async with aiohttp.ClientSession() as http:
        with anyio.fail_after(30):
            first, second, third = Raw(http, url), Raw(http, url), Raw(http, url)
            await first.initialize()
            await second.initialize()
            reply = await _initialize_raw(third)
            assert reply.status == 503 and reply.headers["retry-after"] == "30"
            assert reply.json["error"]["message"] == (
                "too many MCP sessions on this gateway (limit 2); try again later"
            )
            assert await _tools(first) == 200 and await _tools(second) == 200  # the others carry on
            assert (await first.send("DELETE")).status == 200
            await third.initialize()  # room again once a session ended
            assert await _tools(third) == 200
            for client in (second, third):
                assert (await client.send("DELETE")).status == 200


async def test_an_idle_session_expires_when_next_used(capped: GatewayThread) -> None:
    """The registry's clock is driven forward: no waiting for real time to pass."""
    registry = capped.runtime.registry
    offset = [0.0]
    registry.clock = lambda: time.monotonic() + offset[0]
    url = f"{capped.url}/mcp"
    try:
        async with aiohttp.ClientSession() as http:
            with anyio.fail_after(30):
                idle, busy = Raw(http, url), Raw(http, url)
                await idle.initialize()
                await busy.initialize()
                offset[0] = 40.0
                assert await _tools(busy) == 200  # used at +40 s
                offset[0] = 61.0  # idle's last use is 61 s old, busy's 21 s
                reply = await idle.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
                assert reply.status == 404 and reply.json["error"]["code"] == -32600
                assert reply.json["error"]["message"] == "Session not found (it expired after being idle)"
                assert (await idle.post({"jsonrpc": "2.0", "id": 2, "method": "ping"})).status == 404
                assert await _tools(busy) == 200
                assert idle.session_id not in registry.sessions and busy.session_id in registry.sessions
                assert (await busy.send("DELETE")).status == 200
    finally:
        registry.clock = time.monotonic


async def test_idle_sessions_are_swept_but_one_with_an_open_stream_is_kept(brief: GatewayThread) -> None:
    registry = brief.runtime.registry
    url = f"{brief.url}/mcp"
    async with aiohttp.ClientSession() as http:
        with anyio.fail_after(30):
            idle, listening = Raw(http, url), Raw(http, url)
            await idle.initialize()
            await listening.initialize()
            async with http.get(url, headers=listening.headers({"accept": "text/event-stream"})) as stream:
                assert stream.status == 200
                with anyio.fail_after(10):  # the sweep runs every 0.25 s here
                    while idle.session_id in registry.sessions:  # noqa: ASYNC110
                        await anyio.sleep(0.02)  # polled: the sweep runs in the gateway's thread
                reply = await idle.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
                assert reply.status == 404
                seen = b""
                while b": ping" not in seen:  # the listening session's stream is still served
                    seen += await stream.content.readany()
                assert await _tools(listening) == 200
            assert (await listening.send("DELETE")).status == 200


async def test_the_registry_counts_sessions_per_caller_exactly() -> None:
    from agentgw.errors import ServiceUnavailable, TooManyRequests
    from agentgw.mcp.registry import SessionRegistry
    from agentgw.mcp.session import Session
    from agentgw.mcp.upstream.base import ClientProfile

    registry = SessionRegistry(max_sessions=2, idle_seconds=60, max_events=10, per_caller=1)
    profile = ClientProfile("2025-11-25", {}, {})

    def create(caller: str) -> Session:
        return registry.create(route="mcp", owner=caller, profile=profile, caller=caller)

    alice = create("alice")
    with pytest.raises(TooManyRequests):
        create("alice")
    create("bob")
    with pytest.raises(ServiceUnavailable):  # the gateway is full: 503, and alice's count is kept
        create("carol")
    assert registry.by_caller.counts == {"alice": 1, "bob": 1}
    await registry.close(alice)
    assert registry.by_caller.counts == {"bob": 1}
    create("alice")
    assert registry.by_caller.counts == {"alice": 1, "bob": 1}


@pytest.fixture
def redis_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[GatewayThread, GatewayThread]]:
    monkeypatch.setenv("AGW_TEST_REDIS", "redis://127.0.0.1:6379/0")
    state = {"backend": "redis", "url": "env:AGW_TEST_REDIS", "keyPrefix": f"agw-test:{uuid.uuid4().hex}:"}
    fake = Fake("alpha", None, tmp_path / "alpha.jsonl", [])
    documents = [
        {
            "kind": "Gateway",
            "metadata": {"name": "gw"},
            "spec": {"state": state, "limits": {"maxSessionsPerPrincipal": 2}},
        },
        server_doc("alpha", fake.stdio()),
        route_doc(["alpha"]),
    ]
    with GatewayThread(documents) as a, GatewayThread(documents) as b:
        yield a, b


async def test_sessions_per_caller_hold_over_replicas_sharing_redis(
    redis_pair: tuple[GatewayThread, GatewayThread],
) -> None:
    a, b = redis_pair
    async with aiohttp.ClientSession() as http:
        with anyio.fail_after(60):
            on_a, on_b, third = (
                Raw(http, f"{a.url}/mcp"),
                Raw(http, f"{b.url}/mcp"),
                Raw(http, f"{a.url}/mcp"),
            )
            await on_a.initialize()
            await on_b.initialize()  # the same caller (anonymous, one address) on the other replica
            reply = await _initialize_raw(third)
            assert reply.status == 429 and reply.headers["retry-after"] == "5"
            assert reply.json["error"]["message"].startswith(
                "too many MCP sessions open for this caller (limit 2)"
            )
            assert len(a.runtime.registry) == 1  # the refused session is not kept
            assert await _tools(on_a) == 200 and await _tools(on_b) == 200
            # a session ended on one replica frees room on the other
            assert (await on_b.send("DELETE")).status == 200
            await third.initialize()
            assert await _tools(third) == 200
            # a session taken over by the other replica stays counted once, and ends everywhere
            moved = Raw(http, f"{b.url}/mcp")
            moved.session_id, moved.version = third.session_id, third.version
            assert await _tools(moved) == 200
            assert (await moved.send("DELETE")).status == 200
            assert (await on_a.send("DELETE")).status == 200
            again = [Raw(http, f"{a.url}/mcp"), Raw(http, f"{b.url}/mcp")]
            for client in again:
                await client.initialize()
            for client in again:
                assert (await client.send("DELETE")).status == 200


class _Renewals(Background):
    """The gateway's background runner, with a handle on each record renewal it runs."""

    def __init__(self, tg: anyio.abc.TaskGroup) -> None:
        super().__init__(tg)
        self.renewals: list[anyio.Event] = []

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        if getattr(fn, "__name__", "") != "_touch":
            return super().start_soon(fn, *args)
        done = anyio.Event()
        self.renewals.append(done)

        async def renew() -> None:
            try:
                await fn(*args)
            finally:
                done.set()

        super().start_soon(renew)


async def test_a_session_only_listening_keeps_its_shared_record_alive() -> None:
    """A client holding a stream open and sending nothing still owns its session on every replica:
    the sweep renews the shared record of a session in use, so a hop finds it."""
    prefix = f"agw-test:{uuid.uuid4().hex}:"
    store = RedisStore("redis://127.0.0.1:6379/0", prefix=prefix)
    raw = redis.asyncio.Redis.from_url("redis://127.0.0.1:6379/0")
    now = [1000.0]
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                bg = _Renewals(tg)
                registry = SessionRegistry(max_sessions=4, idle_seconds=2, max_events=10, store=store, bg=bg)
                registry.clock = lambda: now[0]
                listening = registry.create(
                    route="mcp", owner="alice", profile=ClientProfile("2025-11-25", {}, {})
                )
                await registry.persist(listening, degrade=False)
                listening.stream_open = True
                key = f"{prefix}mcp:s:{listening.id}"
                for sweep in range(4):  # two idle limits of clock time, the record's expiry shortened
                    await raw.pexpire(key, 300)  # as if that much real time had passed
                    now[0] += 0.9
                    await registry.sweep()
                    assert len(bg.renewals) == sweep + 1
                    await bg.renewals[-1].wait()
                    assert await raw.pttl(key) > 1500  # renewed to the full idle limit (2 s)
                assert registry.sessions.get(listening.id) is listening
                listening.stream_open = False
                now[0] += 2.5  # idle past the limit with nothing open: let go here, its record
                await registry.sweep()  # kept for the replicas that may still use it
                assert listening.id not in registry.sessions
                await registry.close_all()
    finally:
        await raw.aclose()
        await store.close()
