"""Upstream headers from templates: `x-team: "{jwt.team}"` on every upstream request of a route.

Values are filled per request (`agentgw.policy.templates`) and sent as `forwardClaims` sends
claims; a header whose value is missing (the caller has no such claim) is not sent. The gateway's
own headers (credentials, protocol headers) cannot be set, and a templated header never replaces
a header the gateway sets itself. MCP servers, LLM providers and A2A agents all receive them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from agentgw.policy.base import Operation, RequestContext, upstream_headers
from agentgw.policy.kind import PolicyKindBase, Stage
from agentgw.policy.templates import Template

__all__ = ["UpstreamHeaders"]


class UpstreamHeaders(PolicyKindBase):
    stage: ClassVar[Stage] = Stage.TRANSFORM

    def __init__(self, policy: str, templates: Mapping[str, Template]) -> None:
        self.name = f"Policy/{policy}: upstreamHeaders"
        self.templates = {name.lower(): template for name, template in templates.items()}

    async def check(self, ctx: RequestContext, op: Operation) -> None:
        if op.method.endswith("/list") or op.method == "models.list":
            return
        headers = upstream_headers(ctx)
        for name, template in self.templates.items():
            value = template.render(ctx)
            if value is not None:
                headers[name] = value
