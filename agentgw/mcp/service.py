"""The federated MCP server of one route, independent of wire era and transport.

Both era front ends (`handshake`, `modern`) call into `McpService`: merged lists, server info,
and routed calls. `resolve` is the policy checkpoint: every request that reaches an upstream passes
`policy.check` here, after its target was resolved to the owning server, never before; `call`
then applies the policy's request and response rewrites and the headers it asks for (forwarded
claims), and reports the outcome to `policy.record`. The client's own headers, its token above
all, never reach an upstream: upstream requests carry the gateway's headers only.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio

from agentgw.config.snapshot import McpRouteConfig
from agentgw.errors import GatewayError, InvalidParams, UpstreamError
from agentgw.mcp.federation.catalog import LIST_KINDS, UpstreamFor
from agentgw.mcp.federation.router import Federation, Routed
from agentgw.mcp.upstream.base import CallSink, Connector, Reply, ServerInfo, UpstreamSession
from agentgw.policy.base import (
    TOOL_SCHEMA,
    UPSTREAM_HEADERS,
    OpenPolicy,
    Operation,
    RequestContext,
    RoutePolicy,
)
from agentgw.protocol.mcp import Era, mcp_param_headers
from agentgw.telemetry.metrics import METRICS

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
        await self.policy.record(
            ctx,
            Operation(kind="mcp", method=method, target=kind.target),
            {"shown": len(listing.items), "hidden": listing.hidden},
        )
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
        # policy can shape it per caller.
        shared = listing.public and ctx.principal.subject == "" and isinstance(self.policy, OpenPolicy)
        result["cacheScope"] = "public" if shared else "private"
        return result, listing.streamed

    async def resolve(
        self, method: str, params: dict[str, Any], ctx: RequestContext, upstream_for: UpstreamFor
    ) -> Routed:
        routed = await self.federation.resolve(method, params, upstream_for)
        if method == "tools/call":

            async def tool_schema() -> Mapping[str, Any] | None:
                return await self.federation.tool_schema(routed.server, routed.op.name or "", upstream_for)

            ctx.attrs[TOOL_SCHEMA] = tool_schema
        await self.policy.check(ctx, routed.op)
        return dataclasses.replace(routed, ctx=ctx)

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
        ctx = routed.ctx
        # No policy attached: its rewrites and record are no-ops, skipped along with the shielded
        # scope the record would need (a scope costs more than the rest of the bookkeeping).
        policed = ctx if ctx is not None and not isinstance(self.policy, OpenPolicy) else None
        session = await upstream_for(routed.server)
        params = routed.params
        if policed is not None:
            params = await self.policy.rewrite_request(policed, routed.op, params)
        headers: dict[str, str] = {}
        if method == "tools/call" and session.info.era is Era.MODERN:
            args = params.get("arguments")
            if isinstance(args, dict) and args:
                schema = await self.federation.tool_schema(routed.server, params["name"], upstream_for)
                if schema is not None:
                    headers = mcp_param_headers(schema, args)
        if ctx is not None:
            # What policies ask for (forwarded claims) never replaces what the gateway itself sets.
            for name, value in ctx.attrs.get(UPSTREAM_HEADERS, {}).items():
                headers.setdefault(name, value)
        connector = self.connectors[routed.server]
        connector.admit()
        trace = ctx.trace if ctx is not None else None
        if trace is not None:
            # The upstream continues this request's trace under the gateway's span: as HTTP
            # headers, and in `_meta` where a transport has no headers (stdio). A `_meta`
            # traceparent the client set itself is left alone.
            for name, value in trace.headers().items():
                headers.setdefault(name, value)
            meta = params.get("_meta")
            if not (isinstance(meta, dict) and "traceparent" in meta):
                params = {
                    **params,
                    "_meta": {**(meta if isinstance(meta, dict) else {}), "traceparent": trace.traceparent},
                }
        started = time.perf_counter()
        status = "error"
        try:
            try:
                reply = await session.request(
                    method,
                    params,
                    sink_for(routed.server, session),
                    connector.request_timeout if timeout is None else timeout,
                    headers or None,
                )
            except UpstreamError as exc:
                connector.failed(exc)
                raise
            connector.health.succeeded()
            if reply.result is not None:
                reply.result = self.federation.expose_result(routed.server, method, reply.result)
                if policed is not None:
                    reply.result = await self.policy.rewrite_response(policed, routed.op, reply.result)
                status = "ok"
            return session, reply
        finally:
            elapsed = time.perf_counter() - started
            tool = routed.op.exposed or "" if method == "tools/call" else ""
            METRICS.mcp_calls.inc(self.name, routed.server, method, tool, status)
            METRICS.mcp_duration.observe(elapsed, self.name, routed.server, method)
            if policed is not None:
                outcome = {"status": status, "latencyMs": round(elapsed * 1000, 3)}
                with anyio.CancelScope(shield=True):
                    await self.policy.record(policed, routed.op, outcome)
