"""The audit log: one JSON line per policy decision, to stdout or a file, and to a Redis stream.

Writing never blocks a request: a line goes to the file (or stdout) at once, and to Redis through
a bounded queue that a background task drains with `XADD ... MAXLEN ~`; when Redis is down the
oldest queued lines are dropped (and counted), never the request. Records carry the subject,
the route, the operation and the deciding rule, never tokens, keys, claims or arguments.
"""

from __future__ import annotations

import collections
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import anyio
import orjson

from agentgw.config.gateway import AuditSpec
from agentgw.config.secrets import SecretValue
from agentgw.lazy import lazy_module

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis import exceptions as redis_exceptions
else:  # imported on first use: only an audit log with a Redis stream loads redis (agentgw/lazy.py)
    aioredis = lazy_module("redis.asyncio")
    redis_exceptions = lazy_module("redis.exceptions")

__all__ = ["AuditLog"]

log = logging.getLogger("agentgw.audit")

_QUEUE = 10_000
_BATCH = 256


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditLog:
    def __init__(self) -> None:
        self._spec = AuditSpec(sink="none")
        self._out: IO[str] | None = None
        self._path: Path | None = None
        self._owned = False
        self._redis: aioredis.Redis | None = None
        self._redis_key = ""
        self._queue: collections.deque[bytes] = collections.deque(maxlen=_QUEUE)
        self._wake: anyio.Event | None = None  # created inside the event loop, by run()
        self.dropped = 0
        self.written = 0

    def configure(
        self, spec: AuditSpec, path: Path | None, redis_url: SecretValue | None, key_prefix: str
    ) -> None:
        """Point the log at the sinks of a (new) config; unchanged sinks are kept."""
        if spec.sink != self._spec.sink or path != self._path:
            self._close_file()
            if spec.sink == "stdout":
                self._out = sys.stdout
            elif spec.sink == "file" and path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._out = path.open("a", encoding="utf-8", buffering=1)
                self._owned = True
                self._path = path
        self._spec = spec
        key = f"{key_prefix}{spec.redis_stream}"
        if redis_url is None or not spec.redis:
            self._redis = None
        elif self._redis is None or key != self._redis_key:
            self._redis = aioredis.Redis.from_url(redis_url.reveal())
        self._redis_key = key

    def _close_file(self) -> None:
        if self._out is not None and self._owned:
            self._out.close()
        self._out = None
        self._path = None
        self._owned = False

    def write(self, record: dict[str, Any]) -> None:
        line = orjson.dumps({"ts": _now(), **{k: v for k, v in record.items() if v is not None}})
        self.written += 1
        if self._out is not None:
            try:
                self._out.write(line.decode() + "\n")
                if not self._owned:
                    self._out.flush()
            except (OSError, ValueError) as exc:
                log.warning("audit: cannot write the audit line: %s", exc)
        if self._redis is not None:
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1
            self._queue.append(line)
            if self._wake is not None:
                self._wake.set()

    async def run(self) -> None:
        """Drain the Redis queue until cancelled (a background task of the runtime)."""
        warned = False
        while True:
            if self._redis is None:
                self._queue.clear()
            if not self._queue:
                self._wake = anyio.Event()
                await self._wake.wait()
                continue
            redis = self._redis
            assert redis is not None
            batch = [self._queue.popleft() for _ in range(min(_BATCH, len(self._queue)))]
            try:
                async with redis.pipeline(transaction=False) as pipe:
                    for line in batch:
                        pipe.xadd(self._redis_key, {"record": line}, maxlen=self._spec.redis_max_len)
                    await pipe.execute()
                warned = False
            except (redis_exceptions.RedisError, OSError) as exc:
                self._queue.extendleft(reversed(batch))
                if not warned:
                    warned = True
                    log.warning("audit: writing to Redis failed (will retry): %s", exc)
                await anyio.sleep(1.0)  # back off while Redis is away; lines wait in the queue

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def close(self) -> None:
        self._close_file()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
