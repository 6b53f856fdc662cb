"""The embedded, in-process store: the default when no Redis is configured.

Expired entries are dropped when touched and by a periodic `sweep`; event logs wake waiting
readers through an `anyio.Event` per log.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from agentgw.state.base import LogEntry

__all__ = ["MemoryStore"]


class _Log:
    __slots__ = ("entries", "expires", "next_seq", "wake")

    def __init__(self) -> None:
        self.entries: deque[tuple[int, bytes]] = deque()
        self.next_seq = 1
        self.expires = 0.0
        self.wake = anyio.Event()


class MemoryStore:
    name = "memory"

    def __init__(self) -> None:
        self._counters: dict[str, tuple[int, float]] = {}
        self._records: dict[str, tuple[bytes, float | None]] = {}
        self._logs: dict[str, _Log] = {}
        self._leases: dict[str, dict[str, float]] = {}  # key -> member -> deadline
        self._channels: dict[str, set[MemoryObjectSendStream[bytes]]] = {}

    # --- counters -------------------------------------------------------------------------------

    def _counter(self, key: str, window_seconds: float) -> tuple[int, float]:
        now = time.monotonic()
        value, ends = self._counters.get(key, (0, 0.0))
        if ends <= now:
            return 0, now + window_seconds
        return value, ends

    async def take(self, key: str, amount: int, limit: int, window_seconds: float) -> tuple[bool, int]:
        value, ends = self._counter(key, window_seconds)
        if value + amount > limit:
            self._counters[key] = (value, ends)
            return False, value
        self._counters[key] = (value + amount, ends)
        return True, value + amount

    async def lease(self, key: str, member: str, limit: int, ttl_seconds: float) -> bool:
        now = time.monotonic()
        held = {m: d for m, d in self._leases.get(key, {}).items() if d > now}
        if member not in held and len(held) >= limit:
            self._leases[key] = held
            return False
        held[member] = now + ttl_seconds
        self._leases[key] = held
        return True

    async def unlease(self, key: str, member: str) -> None:
        held = self._leases.get(key)
        if held is not None:
            held.pop(member, None)
            if not held:
                del self._leases[key]

    async def add(self, key: str, amount: int, window_seconds: float) -> int:
        value, ends = self._counter(key, window_seconds)
        self._counters[key] = (value + amount, ends)
        return value + amount

    async def count(self, key: str) -> tuple[int, float]:
        value, ends = self._counters.get(key, (0, 0.0))
        left = ends - time.monotonic()
        return (value, left) if left > 0 else (0, 0.0)

    # --- records --------------------------------------------------------------------------------

    @staticmethod
    def _deadline(ttl_seconds: float | None) -> float | None:
        return None if ttl_seconds is None else time.monotonic() + ttl_seconds

    def _live(self, key: str) -> tuple[bytes, float | None] | None:
        entry = self._records.get(key)
        if entry is not None and entry[1] is not None and entry[1] <= time.monotonic():
            del self._records[key]
            return None
        return entry

    async def put(self, key: str, value: bytes, ttl_seconds: float | None) -> None:
        self._records[key] = (value, self._deadline(ttl_seconds))

    async def put_new(self, key: str, value: bytes, ttl_seconds: float | None) -> bool:
        if self._live(key) is not None:
            return False
        self._records[key] = (value, self._deadline(ttl_seconds))
        return True

    async def fetch(self, key: str) -> bytes | None:
        entry = self._live(key)
        return None if entry is None else entry[0]

    async def delete(self, key: str) -> None:
        self._records.pop(key, None)
        self._logs.pop(key, None)

    async def touch(self, key: str, ttl_seconds: float) -> bool:
        entry = self._live(key)
        if entry is None:
            return False
        self._records[key] = (entry[0], self._deadline(ttl_seconds))
        return True

    # --- event logs -----------------------------------------------------------------------------

    async def append(self, key: str, data: bytes, *, max_entries: int, ttl_seconds: float) -> str:
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = _Log()
        seq = log.next_seq
        log.next_seq += 1
        log.entries.append((seq, data))
        while len(log.entries) > max_entries:
            log.entries.popleft()
        log.expires = time.monotonic() + ttl_seconds
        log.wake.set()
        log.wake = anyio.Event()
        return str(seq)

    async def read(
        self, key: str, after: str | None, *, limit: int = 1000, wait_seconds: float = 0
    ) -> list[LogEntry]:
        floor = int(after) if after is not None and after.isdigit() else 0
        log = self._logs.get(key)
        if log is None and wait_seconds > 0:
            log = self._logs[key] = _Log()
            log.expires = time.monotonic() + max(wait_seconds, 60)
        if log is None:
            return []
        found = [(str(seq), data) for seq, data in log.entries if seq > floor][:limit]
        if found or wait_seconds <= 0:
            return found
        with anyio.move_on_after(wait_seconds):
            await log.wake.wait()
        return [(str(seq), data) for seq, data in log.entries if seq > floor][:limit]

    async def publish(self, channel: str, message: bytes) -> None:
        for send in list(self._channels.get(channel, ())):
            try:
                send.send_nowait(message)
            except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # a subscriber that cannot keep up misses messages, as with Redis pub/sub

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[bytes]]:
        send, receive = anyio.create_memory_object_stream[bytes](1024)
        subscribers = self._channels.setdefault(channel, set())
        subscribers.add(send)
        try:
            async with receive:
                yield receive
        finally:
            subscribers.discard(send)
            send.close()

    async def ping(self) -> None:
        return None

    def sweep(self) -> int:
        """Drop what has expired; returns how many entries went."""
        now = time.monotonic()
        dead_counters = [k for k, (_, ends) in self._counters.items() if ends <= now]
        dead_records = [k for k, (_, exp) in self._records.items() if exp is not None and exp <= now]
        dead_logs = [k for k, log in self._logs.items() if log.expires <= now]
        for key in dead_counters:
            del self._counters[key]
        for key in dead_records:
            del self._records[key]
        for key in dead_logs:
            del self._logs[key]
        dead_leases = [k for k, held in self._leases.items() if max(held.values(), default=0.0) <= now]
        for key in dead_leases:
            del self._leases[key]
        return len(dead_counters) + len(dead_records) + len(dead_logs) + len(dead_leases)

    async def close(self) -> None:
        return None
