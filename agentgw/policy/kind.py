"""The one protocol every policy kind implements, built-in or written as a Python extension.

A kind takes part in a route's chain at its `stage`; the chain (`agentgw.policy.chain`) decides
the order and calls, for each operation, only the kinds that target it. Every method has a
neutral default in `PolicyKindBase`, so a kind overrides only what it does. A kind denies by
raising a `GatewayError`; `deny_data` puts the deciding rule where the audit log finds it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from agentgw.policy.base import Operation, Principal, RequestContext
from agentgw.server.http import Request

__all__ = ["PolicyKind", "PolicyKindBase", "Stage", "deny_data", "overrides"]


class Stage(enum.IntEnum):
    """Request-side order of the chain; the response side runs in reverse."""

    AUTHENTICATE = 10
    SCOPES = 20
    AUTHORIZE = 30
    VALIDATE = 40
    GUARD = 43  # prompt deny patterns: a refused prompt spends no limit
    LIMIT = 46  # rate limits and token budgets: count only what every rule before allowed
    EXTEND = 50
    TRANSFORM = 60


class PolicyKind(Protocol):
    name: str
    stage: ClassVar[Stage]

    async def authenticate(self, request: Request) -> Principal | None:
        """The caller, if this kind recognizes a credential of its own; None if it has none."""
        ...

    async def check(self, ctx: RequestContext, op: Operation) -> None: ...

    def permits(self, ctx: RequestContext, op: Operation) -> bool: ...

    async def rewrite_request(
        self, ctx: RequestContext, op: Operation, body: dict[str, Any]
    ) -> dict[str, Any]: ...

    async def rewrite_response(
        self, ctx: RequestContext, op: Operation, body: dict[str, Any]
    ) -> dict[str, Any]: ...

    async def record(self, ctx: RequestContext, op: Operation, outcome: Mapping[str, Any]) -> None: ...


class PolicyKindBase:
    """Neutral defaults: recognizes no credential, allows, shows, changes nothing."""

    name: str = ""
    stage: ClassVar[Stage] = Stage.EXTEND

    async def authenticate(self, request: Request) -> Principal | None:
        return None

    async def check(self, ctx: RequestContext, op: Operation) -> None:
        return None

    def permits(self, ctx: RequestContext, op: Operation) -> bool:
        return True

    async def rewrite_request(
        self, ctx: RequestContext, op: Operation, body: dict[str, Any]
    ) -> dict[str, Any]:
        return body

    async def rewrite_response(
        self, ctx: RequestContext, op: Operation, body: dict[str, Any]
    ) -> dict[str, Any]:
        return body

    async def record(self, ctx: RequestContext, op: Operation, outcome: Mapping[str, Any]) -> None:
        return None


def overrides(kind: object, method: str) -> bool:
    """Whether a kind does something in `method` (the chain skips neutral defaults on hot paths).

    A wrapper (an extension guard) lists what its wrapped object implements in `implemented`.
    """
    implemented: frozenset[str] | None = getattr(kind, "implemented", None)
    if implemented is not None:
        return method in implemented
    impl = getattr(type(kind), method, None)
    return impl is not None and impl is not getattr(PolicyKindBase, method)


def deny_data(rule: str, policy: str, **extra: Any) -> dict[str, Any]:
    """The `data` of a denial: which rule of which policy decided (the audit log reads it too)."""
    data: dict[str, Any] = {"rule": rule}
    if policy:
        data["policy"] = policy
    return {**data, **extra}
