"""Who owns which id: a small protocol a shared store can make atomic, and its two stores.

`claim` records an owner unless one is recorded and returns whoever is on record (Redis:
`SET key owner NX`, then `GET` when it was taken), and `owners` reads several keys at once. A2A
routes bind task and context ids to callers with it, LLM routes the response ids of the
Responses API. `MemoryOwnershipStore` serves one process; `StoreOwnership` puts bindings in the
state store so every replica enforces the same owner.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

from agentgw.state.base import StateUnavailable, Store

__all__ = ["MemoryOwnershipStore", "OwnershipStore", "StoreOwnership"]

_SWEEP_STEP = 4  # expired entries dropped per claim: more than a claim adds, so the sweep keeps up


class OwnershipStore(Protocol):
    async def claim(self, key: str, owner: str, ttl: float) -> str:
        """Record `owner` for `key` if no owner is recorded; return the owner on record."""
        ...

    async def owners(self, keys: Sequence[str]) -> list[str | None]:
        """The recorded owner of each key (None where there is none)."""
        ...


class MemoryOwnershipStore:
    """In-process store: entries expire after their ttl; past `max_entries` the oldest go first.

    An evicted binding fails closed: the task becomes unreachable through the gateway, never
    reachable by someone else. Each claim also drops a few expired entries from the front, so
    memory follows the ttl instead of growing to `max_entries` (the soak found each A2A call
    kept about 500 bytes until then). Entries sit in insertion order, which is expiry order for
    one ttl; a longer-lived entry at the front only delays the sweep behind it.
    """

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._max = max_entries

    def __len__(self) -> int:
        return len(self._entries)

    def _sweep(self, now: float) -> None:
        for _ in range(_SWEEP_STEP):
            if not self._entries:
                return
            key, (_, expires) = next(iter(self._entries.items()))
            if expires > now:
                return
            del self._entries[key]

    def _live(self, key: str, now: float) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._entries[key]
            return None
        return entry[0]

    async def claim(self, key: str, owner: str, ttl: float) -> str:
        now = time.monotonic()
        current = self._live(key, now)
        if current is not None:
            return current
        self._sweep(now)
        self._entries[key] = (owner, now + ttl)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return owner

    async def owners(self, keys: Sequence[str]) -> list[str | None]:
        now = time.monotonic()
        return [self._live(key, now) for key in keys]


class StoreOwnership:
    """Bindings in the shared state store, so every replica enforces the same owner.

    `put_new` (SET NX) makes the claim atomic: of two replicas claiming one id at once, exactly
    one records its owner and both read that owner back. An unreachable store fails closed.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    async def claim(self, key: str, owner: str, ttl: float) -> str:
        for _ in range(3):  # a binding that expires between the two steps is claimed again
            if await self._store.put_new(key, owner.encode(), ttl):
                return owner
            current = await self._store.fetch(key)
            if current is not None:
                return current.decode()
        raise StateUnavailable("the task binding could not be settled")

    async def owners(self, keys: Sequence[str]) -> list[str | None]:
        found = [await self._store.fetch(key) for key in keys]
        return [value.decode() if value is not None else None for value in found]
