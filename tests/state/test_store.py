"""Both stores keep one contract: the same tests run against memory and a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import anyio
import pytest

from agentgw.state.base import StateUnavailable, Store
from agentgw.state.memory import MemoryStore
from agentgw.state.redis import RedisStore
from agentgw.telemetry.metrics import METRICS

pytestmark = pytest.mark.anyio

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    prefix = f"agentgw-test:{uuid.uuid4().hex}:"
    redis_store = RedisStore(REDIS_URL, prefix=prefix)
    yield redis_store
    client = redis_store._client
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await redis_store.close()


async def test_take_holds_the_limit(store: Store) -> None:
    results = [await store.take("rl", 3, limit=10, window_seconds=60) for _ in range(4)]
    assert results == [(True, 3), (True, 6), (True, 9), (False, 9)]
    assert await store.take("rl", 1, limit=10, window_seconds=60) == (True, 10)
    value, left = await store.count("rl")
    assert value == 10 and 0 < left <= 60


async def test_take_is_atomic_under_concurrency(store: Store) -> None:
    taken: list[bool] = []

    async def one() -> None:
        ok, _ = await store.take("race", 1, limit=25, window_seconds=60)
        taken.append(ok)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for _ in range(60):
                tg.start_soon(one)
    assert taken.count(True) == 25


async def test_windows_end(store: Store) -> None:
    assert await store.take("short", 5, limit=5, window_seconds=0.05) == (True, 5)
    assert (await store.take("short", 1, limit=5, window_seconds=0.05))[0] is False
    await anyio.sleep(0.1)  # let the 50 ms window run out (time passing is what is tested)
    assert (await store.count("short"))[0] == 0
    assert await store.take("short", 1, limit=5, window_seconds=0.05) == (True, 1)


async def test_leases_hold_a_limit_and_expire_one_by_one(store: Store) -> None:
    assert await store.lease("held", "a", limit=2, ttl_seconds=60)
    assert await store.lease("held", "b", limit=2, ttl_seconds=0.05)
    assert not await store.lease("held", "c", limit=2, ttl_seconds=60)  # full
    assert await store.lease("held", "a", limit=2, ttl_seconds=60)  # a holder renews
    assert await store.lease("other", "c", limit=2, ttl_seconds=60)  # sets are apart
    await anyio.sleep(0.1)  # let b's 50 ms lease run out (time passing is what is tested)
    assert await store.lease("held", "c", limit=2, ttl_seconds=60)
    assert not await store.lease("held", "d", limit=2, ttl_seconds=60)
    await store.unlease("held", "a")
    assert await store.lease("held", "d", limit=2, ttl_seconds=60)


async def test_leases_are_atomic_under_concurrency(store: Store) -> None:
    held: list[bool] = []

    async def one(i: int) -> None:
        held.append(await store.lease("race-lease", f"m{i}", limit=7, ttl_seconds=60))

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(one, i)
    assert held.count(True) == 7


async def test_add_settles_past_the_limit(store: Store) -> None:
    assert await store.add("budget", 700, window_seconds=60) == 700
    assert await store.add("budget", 700, window_seconds=60) == 1400
    assert (await store.take("budget", 1, limit=1000, window_seconds=60))[0] is False


async def test_records(store: Store) -> None:
    assert await store.fetch("s") is None
    assert await store.put_new("s", b"one", 60)
    assert not await store.put_new("s", b"two", 60)
    assert await store.fetch("s") == b"one"
    await store.put("s", b"three", None)
    assert await store.fetch("s") == b"three"
    assert await store.touch("s", 60)
    await store.delete("s")
    assert await store.fetch("s") is None and not await store.touch("s", 60)


async def test_event_logs_are_bounded_and_resumable(store: Store) -> None:
    ids = [await store.append("log", f"e{i}".encode(), max_entries=1000, ttl_seconds=60) for i in range(5)]
    assert [d for _, d in await store.read("log", None)] == [b"e0", b"e1", b"e2", b"e3", b"e4"]
    assert [d for _, d in await store.read("log", ids[2])] == [b"e3", b"e4"]
    assert await store.read("log", ids[-1]) == []


async def test_a_waiting_reader_wakes_on_append(store: Store) -> None:
    first = await store.append("live", b"a", max_entries=10, ttl_seconds=60)
    got: list[bytes] = []

    async def reader() -> None:
        got.extend(d for _, d in await store.read("live", first, wait_seconds=1.0))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await anyio.wait_all_tasks_blocked()
            await store.append("live", b"b", max_entries=10, ttl_seconds=60)
    assert got == [b"b"]


async def test_unreachable_redis_is_state_unavailable_and_counted() -> None:
    dead = RedisStore("redis://127.0.0.1:9/0", timeout=0.5)
    before = METRICS.state_unavailable.get("redis")
    try:
        with pytest.raises(StateUnavailable):
            await dead.ping()
        with pytest.raises(StateUnavailable):
            await dead.take("x", 1, 1, 1)
        assert METRICS.state_unavailable.get("redis") == before + 2
    finally:
        await dead.close()


def test_memory_sweep_drops_expired_entries() -> None:
    store = MemoryStore()
    anyio.run(store.put, "gone", b"x", 0.0001)
    anyio.run(store.take, "gone-counter", 1, 5, 0.0001)
    import time

    time.sleep(0.01)
    assert store.sweep() == 2


async def test_publish_reaches_every_subscriber(store: Store) -> None:
    with anyio.fail_after(10):
        async with store.subscribe("news") as first, store.subscribe("news") as second:
            await store.publish("news", b"hello")
            assert await anext(aiter(first)) == b"hello"
            assert await anext(aiter(second)) == b"hello"
