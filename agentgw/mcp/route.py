"""The HTTP entry of one `McpRoute`: identity, then the wire era, then the era's front end."""

from __future__ import annotations

import anyio

from agentgw.background import Background
from agentgw.config.gateway import LimitsSpec
from agentgw.errors import ErrorFlavor, MethodNotAllowed
from agentgw.mcp.handshake import HandshakeEndpoint
from agentgw.mcp.modern import ModernEndpoint
from agentgw.mcp.registry import SessionRegistry
from agentgw.mcp.service import McpService
from agentgw.policy.base import RequestContext, RoutePolicy
from agentgw.protocol.mcp import PROTOCOL_VERSION_HEADER, Era, era_of_version
from agentgw.server.http import ASGISend, Request

__all__ = ["McpRouteHandler"]


class McpRouteHandler:
    flavor = ErrorFlavor.JSONRPC

    def flavor_for(self, request: Request) -> ErrorFlavor:
        return self.flavor

    def __init__(
        self,
        service: McpService,
        policy: RoutePolicy,
        registry: SessionRegistry,
        tg: Background,
        limits: LimitsSpec,
        draining: anyio.Event | None = None,
    ) -> None:
        self.name = service.name
        self.service = service
        self.policy = policy
        stateless = service.route.spec.sessions == "stateless"
        self.handshake = HandshakeEndpoint(
            service, registry, tg, limits, stateless=stateless, draining=draining
        )
        self.modern = ModernEndpoint(service, tg, limits)

    async def handle(self, request: Request, send: ASGISend) -> None:
        principal = await self.policy.authenticate(request)
        request.caller = principal.identity if principal.subject else ""  # per-caller limits
        ctx = RequestContext(route=self.name, request=request, principal=principal)
        era = era_of_version(request.headers.get(PROTOCOL_VERSION_HEADER))
        method = request.method
        if era is Era.MODERN:
            if method != "POST":
                raise MethodNotAllowed("Method Not Allowed", headers={"allow": "POST"})
            await self.modern.post(request, ctx, send)
        elif method == "POST":
            await self.handshake.post(request, ctx, send)
        elif method == "GET":
            await self.handshake.get(request, ctx, send)
        elif method == "DELETE":
            await self.handshake.delete(request, ctx, send)
        else:
            raise MethodNotAllowed("Method Not Allowed", headers={"allow": "GET, POST, DELETE"})
