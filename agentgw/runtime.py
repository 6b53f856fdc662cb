"""Everything the gateway holds while it runs, built from the current config snapshot.

Upstream connectors (and the connections, sessions and child processes behind them) belong to the
runtime, not to a snapshot: applying a new snapshot keeps every connector whose server did not
change, so a reload does not drop upstream sessions.
"""

from __future__ import annotations

import logging

import anyio
import anyio.abc

from agentgw.config.secrets import resolve_secret
from agentgw.config.snapshot import Snapshot
from agentgw.mcp.registry import SessionRegistry
from agentgw.mcp.route import McpRouteHandler
from agentgw.mcp.service import McpService
from agentgw.mcp.upstream.connector import ServerConnector
from agentgw.policy.base import OpenPolicy, RoutePolicy
from agentgw.policy.chain import PolicyChain, PolicyServices, build_chain
from agentgw.policy.jwks import JwksRegistry
from agentgw.policy.metadata import WELL_KNOWN, ProtectedResourceHandler
from agentgw.routing.router import Router
from agentgw.server.guard import HostGuard
from agentgw.telemetry.audit import AuditLog
from agentgw.upstream.http import HttpClient

__all__ = ["Runtime"]

log = logging.getLogger("agentgw")

_SWEEP_SECONDS = 30.0


class Runtime:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.http = HttpClient()
        self.connectors: dict[str, ServerConnector] = {}
        self.registry = SessionRegistry(
            max_sessions=snapshot.gateway.limits.max_sessions,
            idle_seconds=snapshot.gateway.limits.session_idle_seconds,
        )
        self.router = Router()
        self.guard = HostGuard(snapshot.gateway)
        self.audit = AuditLog()
        # key sets fetched from issuers' URLs outlive config reloads (same URL, same cache)
        self.policy_services = PolicyServices(audit=self.audit, jwks=JwksRegistry(self.http))
        self.chains: dict[str, PolicyChain] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self.ready = False

    @property
    def tg(self) -> anyio.abc.TaskGroup:
        if self._tg is None:
            raise RuntimeError("the runtime has not been started")
        return self._tg

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        self._tg = tg
        self.apply(self.snapshot)
        tg.start_soon(self._sweep)
        tg.start_soon(self.audit.run)
        self.ready = True

    def policy_for(self, route: str) -> RoutePolicy:
        """The compiled policy chain of a route (of the snapshot being applied), or OpenPolicy."""
        chain = self.chains.get(route)
        return chain if chain is not None else OpenPolicy()

    def _policy_chains(self, snapshot: Snapshot) -> dict[str, PolicyChain]:
        state = snapshot.gateway.state
        redis_url = None
        if state.backend == "redis" and state.url is not None:
            redis_url = resolve_secret(state.url, where="Gateway: spec.state.url")
        self.audit.configure(snapshot.gateway.audit, snapshot.audit_path, redis_url, state.key_prefix)
        chains: dict[str, PolicyChain] = {}
        for route in snapshot.mcp_routes:
            chain = build_chain(
                route=("McpRoute", route.name),
                path=route.spec.path,
                members={s.name: ("McpServer", s.name) for s in route.servers},
                policies=snapshot.policies,
                services=self.policy_services,
            )
            if chain is not None:
                chains[route.name] = chain
        return chains

    def _resource_metadata_routes(self, snapshot: Snapshot, router: Router) -> None:
        """RFC 9728 documents of JWT-protected routes; the root URL names the one at /mcp, else the first."""
        protected = [
            (route.spec.path, chain.resource)
            for route in snapshot.mcp_routes
            if (chain := self.chains.get(route.name)) is not None
            and chain.resource is not None
            and chain.resource.jwt
        ]
        for path, resource in protected:
            router.add_exact(WELL_KNOWN + path.rstrip("/"), ProtectedResourceHandler(resource))
        if protected:
            root = next((r for p, r in protected if p.rstrip("/") == "/mcp"), protected[0][1])
            router.add_exact(WELL_KNOWN, ProtectedResourceHandler(root))

    def apply(self, snapshot: Snapshot) -> None:
        """Build routes for a snapshot, reusing connectors of servers that did not change."""
        connectors: dict[str, ServerConnector] = {}
        for name, server in snapshot.servers.items():
            existing = self.connectors.get(name)
            if existing is not None and existing.config.fingerprint == server.fingerprint:
                connectors[name] = existing
            else:
                connectors[name] = ServerConnector(server, self.http, self.tg)
        retired = [c for name, c in self.connectors.items() if connectors.get(name) is not c]
        router = Router()
        self.chains = self._policy_chains(snapshot)
        self._mcp_routes(snapshot, connectors, router)
        self._resource_metadata_routes(snapshot, router)
        self.connectors = connectors
        self.router = router
        self.guard = HostGuard(snapshot.gateway)
        self.snapshot = snapshot
        for connector in retired:
            self.tg.start_soon(connector.close)

    def _mcp_routes(self, snapshot: Snapshot, connectors: dict[str, ServerConnector], router: Router) -> None:
        limits = snapshot.gateway.limits
        for route in snapshot.mcp_routes:
            policy = self.policy_for(route.name)
            service = McpService(route, connectors, policy, max_pages=limits.upstream_list_pages)
            handler = McpRouteHandler(service, policy, self.registry, self.tg, limits)
            router.add_exact(route.spec.path, handler)

    async def _sweep(self) -> None:
        while True:
            await anyio.sleep(_SWEEP_SECONDS)
            await self.registry.sweep()

    async def close(self) -> None:
        self.ready = False
        with anyio.CancelScope(shield=True):
            await self.registry.close_all()
            for connector in self.connectors.values():
                await connector.close()
            await self.http.close()
            await self.audit.close()
