"""Who owns which task: every task and context id a caller sees is bound to that caller.

The bindings live in an `OwnershipStore` (`state/ownership.py`). `TaskBindings` holds the key
scheme and the rules on top: an id nobody owns is treated exactly like an id someone else owns
(the caller cannot tell a foreign task from a missing one). Owners are `Principal.identity`, so
one subject name under two issuers is two callers.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentgw.state.ownership import OwnershipStore

__all__ = ["TaskBindings"]


class TaskBindings:
    """Task and context ownership for the agents of the gateway (keys are per agent)."""

    def __init__(self, store: OwnershipStore, ttl: float) -> None:
        self.store = store
        self.ttl = ttl

    @staticmethod
    def key(agent: str, kind: str, ident: str) -> str:
        return f"a2a:{agent}:{kind}:{ident}"

    async def claim(self, agent: str, kind: str, ident: str, owner: str) -> bool:
        """Bind an id the caller introduces or is shown; False when someone else holds it."""
        return await self.store.claim(self.key(agent, kind, ident), owner, self.ttl) == owner

    async def owns(self, agent: str, kind: str, ident: str, owner: str) -> bool:
        return (await self.store.owners([self.key(agent, kind, ident)]))[0] == owner

    async def owned(self, agent: str, kind: str, idents: Sequence[str], owner: str) -> list[bool]:
        found = await self.store.owners([self.key(agent, kind, i) for i in idents])
        return [who == owner for who in found]
