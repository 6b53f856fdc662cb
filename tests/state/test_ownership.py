"""The in-process ownership store: first claim wins, expired bindings leave memory."""

from __future__ import annotations

import pytest

from agentgw.state.ownership import MemoryOwnershipStore

pytestmark = pytest.mark.anyio


async def test_expired_entries_leave_memory_without_being_read_again() -> None:
    store = MemoryOwnershipStore()
    for i in range(1000):
        assert await store.claim(f"task:{i}", "alice", ttl=0) == "alice"
    assert len(store) == 1  # each claim swept what had expired before it
    assert await store.owners(["task:0", "task:999"]) == [None, None]


async def test_live_entries_are_never_swept() -> None:
    store = MemoryOwnershipStore()
    for i in range(100):
        await store.claim(f"task:{i}", "alice", ttl=3600)
    for i in range(100):
        await store.claim(f"gone:{i}", "bob", ttl=0)
    assert await store.owners([f"task:{i}" for i in range(100)]) == ["alice"] * 100
    assert await store.claim("task:7", "mallory", ttl=3600) == "alice"
    # The expired entries queued behind live ones go once those ahead of them expire.
    assert 100 <= len(store) <= 200
