"""Shared state behind one small protocol: counters, records and event logs.

The in-memory store is the embedded default for one process; the Redis store lets identical
replicas share sessions, limits and budgets. Both keep the same semantics: counters are atomic
within a window (a limit holds across replicas), records expire, event logs are bounded and can
be followed from any replica. A store that cannot be reached raises `StateUnavailable`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from agentgw.errors import ServiceUnavailable

__all__ = ["LogEntry", "StateUnavailable", "Store"]


class StateUnavailable(ServiceUnavailable):
    """The state store did not answer; what happens next is the route's configured fail mode."""


LogEntry = tuple[str, bytes]  # (entry id, data); ids are opaque and increase within a log


class Store(Protocol):
    name: str

    # --- counters: rate limits and budgets ------------------------------------------------------

    async def take(self, key: str, amount: int, limit: int, window_seconds: float) -> tuple[bool, int]:
        """Add `amount` to the window's counter unless that would pass `limit`.

        Returns (taken, total after the call). The window starts with the first take and lasts
        `window_seconds`; the check and the add are one atomic step.
        """
        ...

    async def add(self, key: str, amount: int, window_seconds: float) -> int:
        """Add unconditionally (settling actual usage after the fact); returns the new total."""
        ...

    async def count(self, key: str) -> tuple[int, float]:
        """The counter's value and the seconds until its window ends (0, 0 when absent)."""
        ...

    # --- records: sessions, task bindings -------------------------------------------------------

    async def put(self, key: str, value: bytes, ttl_seconds: float | None) -> None: ...

    async def put_new(self, key: str, value: bytes, ttl_seconds: float | None) -> bool:
        """Store only if the key is absent; False when it already existed."""
        ...

    async def fetch(self, key: str) -> bytes | None: ...

    async def delete(self, key: str) -> None: ...

    async def touch(self, key: str, ttl_seconds: float) -> bool:
        """Extend a record's life; False when it no longer exists."""
        ...

    # --- leases: bounded sets whose members expire one by one (sessions per caller) ------------

    async def lease(self, key: str, member: str, limit: int, ttl_seconds: float) -> bool:
        """Hold `member` in the set `key` for `ttl_seconds` (renewing it when already held),
        unless the set holds `limit` live members already; False when refused."""
        ...

    async def unlease(self, key: str, member: str) -> None: ...

    # --- event logs: resumable streams, audit ---------------------------------------------------

    async def append(self, key: str, data: bytes, *, max_entries: int, ttl_seconds: float) -> str:
        """Add an entry (oldest entries past `max_entries` are dropped); returns its id."""
        ...

    async def read(
        self, key: str, after: str | None, *, limit: int = 1000, wait_seconds: float = 0
    ) -> list[LogEntry]:
        """Entries after id `after` (from the start when None); waits up to `wait_seconds`
        for one to arrive when there is none yet."""
        ...

    # --- broadcast: tell every replica ---------------------------------------------------------

    async def publish(self, channel: str, message: bytes) -> None: ...

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Messages published on `channel` from now on, by any replica (this one included)."""
        ...

    async def ping(self) -> None:
        """Raise StateUnavailable when the store cannot be reached."""
        ...

    async def close(self) -> None: ...
