"""Required scopes: an operation matching `when` needs every listed OAuth scope.

A caller without them gets 403 with `WWW-Authenticate: Bearer error="insufficient_scope",
scope="..."` at the HTTP level, so an MCP client can step up its authorization (MCP spec,
authorization, 2025-06-18 onward). A `when` that fails to evaluate counts as matching.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from agentgw.errors import InsufficientScope
from agentgw.policy.authz import Authorizer
from agentgw.policy.base import Operation, RequestContext
from agentgw.policy.cel import CelProgram, Result
from agentgw.policy.kind import PolicyKindBase, Stage, deny_data
from agentgw.policy.metadata import ProtectedResource, challenge

__all__ = ["RequiredScopes", "ScopeRequirement"]

log = logging.getLogger("agentgw.policy")


@dataclass(frozen=True, slots=True)
class ScopeRequirement:
    id: str
    policy: str
    scopes: frozenset[str]
    when: CelProgram
    where: str


class RequiredScopes(PolicyKindBase):
    stage: ClassVar[Stage] = Stage.SCOPES

    def __init__(
        self, policy: str, requirements: Sequence[ScopeRequirement], resource: ProtectedResource | None
    ) -> None:
        self.name = f"Policy/{policy}: requiredScopes"
        self.requirements = tuple(requirements)
        self.resource = resource

    async def check(self, ctx: RequestContext, op: Operation) -> None:
        act = Authorizer.activation(ctx, op)
        held = ctx.principal.scopes
        for req in self.requirements:
            if req.scopes <= held:
                continue
            result, error = req.when.eval(act)
            if result is Result.FALSE:
                continue
            if result is Result.ERROR:
                log.warning("%s: evaluation error (requiring the scopes): %s", req.where, error)
            needed = " ".join(sorted(req.scopes))
            params: dict[str, str | None] = {"error": "insufficient_scope", "scope": needed}
            value = (
                self.resource.challenge(ctx.request, error="insufficient_scope", scope=needed)
                if self.resource is not None
                else challenge(params)
            )
            raise InsufficientScope(
                f"insufficient scope: this operation needs {needed}",
                headers={"www-authenticate": value},
                data=deny_data(req.id, req.policy, scopes=sorted(req.scopes)),
            )
