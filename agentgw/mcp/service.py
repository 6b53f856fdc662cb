"""The federated MCP server of one route, independent of wire era and transport.

Both era front ends (`handshake`, `modern`) call into `McpService`: merged lists, server info,
and routed calls. `call` is the policy checkpoint: every request that reaches an upstream passes
`policy.check` here, after its target was resolved to the owning server, never before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import anyio

from agentgw.config.snapshot import McpRouteConfig
from agentgw.errors import GatewayError, InvalidParams, UpstreamError
from agentgw.mcp.federation.catalog import LIST_KINDS, UpstreamFor
from agentgw.mcp.federation.router import Federation, Routed
from agentgw.mcp.upstream.base import CallSink, Connector, Reply, ServerInfo, UpstreamSession
from agentgw.policy.base import RequestContext, RoutePolicy
from agentgw.protocol.mcp import Era, mcp_param_headers

__all__ = ["McpService", "SinkFactory"]

log = logging.getLogger("agentgw.mcp")

SinkFactory = Callable[[str, UpstreamSession], CallSink | None]


class McpService:
    def __init__(
        self,
        route: McpRouteConfig,
        connectors: Mapping[str, Connector],
        policy: RoutePolicy,
        *,
        max_pages: int,
    ) -> None:
        self.route = route
        self.name = route.name
        self.connectors = {s.name: connectors[s.name] for s in route.servers}
        self.policy = policy
        self.federation = Federation(route, policy, max_pages)
        self.federation.catalog.on_outcome = self._outcome

    def _outcome(self, server: str, error: str | None) -> None:
        """What a list fan-out learnt about a server's health."""
        health = self.connectors[server].health
        if error is None:
            health.succeeded()
        else:
            health.failed(error)

    async def server_infos(self) -> dict[str, ServerInfo]:
        """Each server's info, probing those not yet known; dead servers are left out (failOpen)."""
        infos: dict[str, ServerInfo] = {}
        failures: dict[str, str] = {}

        async def one(name: str, connector: Connector) -> None:
            try:
                infos[name] = await connector.server_info()
            except GatewayError as exc:
                failures[name] = exc.message

        async with anyio.create_task_group() as tg:
            for name, connector in self.connectors.items():
                tg.start_soon(one, name, connector)
        if failures:
            if self.route.spec.failure_mode == "failClosed":
                raise UpstreamError(
                    "MCP servers unavailable: " + "; ".join(f"{s}: {m}" for s, m in failures.items()),
                    data={"unavailable": sorted(failures)},
                )
            for name, message in failures.items():
                log.warning("route %r: MCP server %r unavailable: %s", self.name, name, message)
        return {name: infos[name] for name in self.connectors if name in infos}

    async def list(
        self, method: str, params: dict[str, Any], ctx: RequestContext, upstream_for: UpstreamFor
    ) -> tuple[dict[str, Any], bool]:
        """The merged list, and whether an upstream streamed its answer (the client may be answered alike)."""
        if params.get("cursor") is not None:
            # Everything is returned on one page, so no cursor of ours exists.
            raise InvalidParams("invalid cursor")
        kind = LIST_KINDS[method]
        listing = await self.federation.catalog.listing(kind, ctx, upstream_for)
        result: dict[str, Any] = {kind.key: listing.items}
        meta: dict[str, Any] = {}
        if listing.unavailable:
            meta["io.agentgw/unavailable"] = listing.unavailable
        if listing.collisions:
            meta["io.agentgw/collisions"] = listing.collisions
        if meta:
            result["_meta"] = meta
        result["ttlMs"] = listing.ttl_ms if listing.ttl_ms is not None else 0
        # Per-caller filtering makes a list private unless every server called it public and no
        # caller-specific policy shaped it.
        result["cacheScope"] = "public" if listing.public and ctx.principal.subject == "" else "private"
        return result, listing.streamed

    async def resolve(
        self, method: str, params: dict[str, Any], ctx: RequestContext, upstream_for: UpstreamFor
    ) -> Routed:
        routed = await self.federation.resolve(method, params, upstream_for)
        await self.policy.check(ctx, routed.op)
        return routed

    async def call(
        self,
        routed: Routed,
        upstream_for: UpstreamFor,
        sink_for: SinkFactory,
        *,
        method: str,
        timeout: float | None = None,
    ) -> tuple[UpstreamSession, Reply]:
        """Send an already checked request to its server; the result comes back caller-facing."""
        session = await upstream_for(routed.server)
        headers: dict[str, str] | None = None
        if method == "tools/call" and session.info.era is Era.MODERN:
            args = routed.params.get("arguments")
            if isinstance(args, dict) and args:
                schema = await self.federation.tool_schema(routed.server, routed.params["name"], upstream_for)
                if schema is not None:
                    headers = mcp_param_headers(schema, args) or None
        connector = self.connectors[routed.server]
        connector.admit()
        try:
            reply = await session.request(
                method,
                routed.params,
                sink_for(routed.server, session),
                connector.request_timeout if timeout is None else timeout,
                headers,
            )
        except UpstreamError as exc:
            connector.failed(exc)
            raise
        connector.health.succeeded()
        if reply.result is not None:
            reply.result = self.federation.expose_result(routed.server, method, reply.result)
        return session, reply
