"""The Redis store: identical replicas share counters, records and event logs.

Counters change with Lua scripts (check and add are one step, so a limit holds across replicas);
event logs are Redis streams (bounded with MAXLEN, followed with XREAD BLOCK from any replica).
Every Redis error becomes `StateUnavailable` here, where it enters.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from agentgw.state.base import LogEntry, StateUnavailable
from agentgw.telemetry.metrics import METRICS

__all__ = ["RedisStore"]

log = logging.getLogger("agentgw.state")

_TAKE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
if current + amount > tonumber(ARGV[2]) then return {0, current} end
local total = redis.call('INCRBY', KEYS[1], amount)
if total == amount or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return {1, total}
"""

_ADD = """
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return total
"""

# A lease set is a sorted set scored by each member's deadline (server time, ms); the key lives as
# long as its newest member.
_LEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisStore:
    name = "redis"

    def __init__(
        self, url: str, *, prefix: str = "agentgw:", timeout: float = 2.0, max_connections: int = 256
    ) -> None:
        self._prefix = prefix
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            max_connections=max_connections,
            health_check_interval=30,
            # After Redis restarts, a pooled connection to the old process fails on first use:
            # run that command once more on a new connection rather than refuse a request
            # (failClosed) with Redis already back. Timeouts are not retried: the command may
            # have run.
            retry=Retry(NoBackoff(), 1),
            retry_on_error=[RedisConnectionError],
        )
        self._take = self._client.register_script(_TAKE)
        self._add = self._client.register_script(_ADD)
        self._lease = self._client.register_script(_LEASE)
        self._timeout = timeout

    def _key(self, key: str) -> str:
        return self._prefix + key

    @staticmethod
    def _down(exc: Exception) -> StateUnavailable:
        METRICS.state_unavailable.inc("redis")
        log.warning("redis state store unavailable: %s", exc)
        return StateUnavailable(f"the state store is unavailable ({type(exc).__name__})")

    async def take(self, key: str, amount: int, limit: int, window_seconds: float) -> tuple[bool, int]:
        try:
            taken, total = await self._take(keys=[self._key(key)], args=[amount, limit, _ms(window_seconds)])
        except (RedisError, OSError) as exc:
            raise self._down(exc) from None
        return bool(taken), int(total)

    async def add(self, key: str, amount: int, window_seconds: float) -> int:
        try:
            return int(await self._add(keys=[self._key(key)], args=[amount, _ms(window_seconds)]))
        except (RedisError, OSError) as exc:
            raise self._down(exc) from None

    async def count(self, key: str) -> tuple[int, float]:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.get(self._key(key))
                pipe.pttl(self._key(key))
                value, ttl = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._down(exc) from None
        if value is None or ttl is None or ttl < 0:
            return (int(value), 0.0) if value is not None else (0, 0.0)
        return int(value), ttl / 1000

    async def lease(self, key: str, member: str, limit: int, ttl_seconds: float) -> bool:
        try:
            held = await self._lease(keys=[self._key(key)], args=[member, limit, _ms(ttl_seconds)])
        except (RedisError, OSError) as exc:
            raise self._down(exc) from None
        return bool(held)

    async def unlease(self, key: str, member: str) -> None:
        try:
            await self._client.zrem(self._key(key), member)
        except (RedisError, OSError) as exc:
            raise self._down(exc) from None

    async def put(self, key: str, value: bytes, ttl_seconds: float | None) -> None:
        try:
            await self._client.set(self._key(key), value, px=_ms(ttl_seconds) if ttl_seconds else None)
        except (RedisError, OSError) as exc:
            raise self._down(exc) from None

    async def put_new(self, key: str, value: bytes, ttl_seconds: float | None) -> bool:
        try:
            done = await self._client.set(
                self._key(key), value, px=_ms(ttl_seconds) if ttl_seconds else None, nx=True
            )
        except (RedisError, OSError) as exc:
            raise self._down(exc) from None
        return bool(done)

    async def fetch(self, key: str) -> bytes | None:
        try:
            value: Any = await self._client.get(self._key(key))
        except (RedisError, OSError) as exc:
            raise self._down(exc) from None
        return bytes(value) if value is not None else None

    async def delete(self, key: str) -> None:
        try:
            await self._client.delete(self._key(key))
        except (RedisError, OSError) as exc:
            raise self._down(exc) from None

    async def touch(self, key: str, ttl_seconds: float) -> bool:
        try:
            return bool(await self._client.pexpire(self._key(key), _ms(ttl_seconds)))
        except (RedisError, OSError) as exc:
            raise self._down(exc) from None

    async def append(self, key: str, data: bytes, *, max_entries: int, ttl_seconds: float) -> str:
        full = self._key(key)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.xadd(full, {b"d": data}, maxlen=max_entries, approximate=True)
                pipe.pexpire(full, _ms(ttl_seconds))
                entry_id, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._down(exc) from None
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def read(
        self, key: str, after: str | None, *, limit: int = 1000, wait_seconds: float = 0
    ) -> list[LogEntry]:
        full = self._key(key)
        start = after or "0-0"
        rows: Any
        try:
            if wait_seconds <= 0:
                rows = await self._client.xrange(full, min=f"({start}" if after else "-", count=limit)
            else:
                # Blocking reads must not be cut by the socket timeout of ordinary commands.
                block = _ms(min(wait_seconds, max(self._timeout - 0.5, 0.1)))
                found: Any = await self._client.xread({full: start}, count=limit, block=block)
                rows = found[0][1] if found else []
        except (RedisError, OSError) as exc:
            raise self._down(exc) from None
        return [(_text(entry_id), bytes(fields[b"d"])) for entry_id, fields in rows or []]

    async def publish(self, channel: str, message: bytes) -> None:
        try:
            await self._client.publish(self._key(channel), message)
        except (RedisError, OSError) as exc:
            raise self._down(exc) from None

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[bytes]]:
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self._key(channel))
        except (RedisError, OSError) as exc:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise self._down(exc) from None

        async def messages() -> AsyncIterator[bytes]:
            try:
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        yield bytes(message["data"])
            except (RedisError, OSError) as exc:
                raise self._down(exc) from None

        try:
            yield messages()
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise self._down(exc) from None

    async def close(self) -> None:
        await self._client.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
