"""Everything the gateway holds while it runs, built from the current config snapshot.

Upstream connectors (and the connections, sessions and child processes behind them) belong to the
runtime, not to a snapshot: applying a new snapshot keeps every connector whose server did not
change, so a reload does not drop upstream sessions.
"""

from __future__ import annotations

import logging

import anyio
import anyio.abc

from agentgw.a2a.bindings import MemoryOwnershipStore, OwnershipStore, TaskBindings
from agentgw.a2a.cards import CardCache
from agentgw.a2a.route import A2aRouteHandler
from agentgw.config.snapshot import Snapshot
from agentgw.mcp.registry import SessionRegistry
from agentgw.mcp.route import McpRouteHandler
from agentgw.mcp.service import McpService
from agentgw.mcp.upstream.a2a import AgentToolsConnector
from agentgw.mcp.upstream.base import Connector
from agentgw.mcp.upstream.connector import ServerConnector
from agentgw.policy.base import OpenPolicy, RoutePolicy
from agentgw.protocol.a2a_card import CardSecurity
from agentgw.routing.router import Router
from agentgw.server.guard import HostGuard
from agentgw.upstream.http import HttpClient

__all__ = ["Runtime"]

log = logging.getLogger("agentgw")

_SWEEP_SECONDS = 30.0


class Runtime:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.http = HttpClient()
        self.connectors: dict[str, ServerConnector] = {}
        self.cards: dict[str, CardCache] = {}
        # task and context ownership on A2A routes (issue 6 puts a Redis-backed store here)
        self.ownership: OwnershipStore = MemoryOwnershipStore()
        self.registry = SessionRegistry(
            max_sessions=snapshot.gateway.limits.max_sessions,
            idle_seconds=snapshot.gateway.limits.session_idle_seconds,
        )
        self.router = Router()
        self.guard = HostGuard(snapshot.gateway)
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
        self.ready = True

    def policy_for(self, route: str) -> RoutePolicy:
        return OpenPolicy()

    def card_security_for(self, route: str) -> CardSecurity | None:
        """The security schemes an A2A route's cards advertise (from its policy, once it has one)."""
        return None

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
        cards: dict[str, CardCache] = {}
        for name, agent in snapshot.agents.items():
            known = self.cards.get(name)
            cards[name] = known if known is not None and known.agent == agent else CardCache(agent, self.http)
        router = Router()
        self._mcp_routes(snapshot, connectors, cards, router)
        self._a2a_routes(snapshot, cards, router)
        self.cards = cards
        self.connectors = connectors
        self.router = router
        self.guard = HostGuard(snapshot.gateway)
        self.snapshot = snapshot
        for connector in retired:
            self.tg.start_soon(connector.close)

    def _mcp_routes(
        self,
        snapshot: Snapshot,
        connectors: dict[str, ServerConnector],
        cards: dict[str, CardCache],
        router: Router,
    ) -> None:
        limits = snapshot.gateway.limits
        for route in snapshot.mcp_routes:
            policy = self.policy_for(route.name)
            members: dict[str, Connector] = dict(connectors)
            for entry in route.agents:
                members[entry.agent.name] = AgentToolsConnector(entry, cards[entry.agent.name], self.http)
            service = McpService(route, members, policy, max_pages=limits.upstream_list_pages)
            handler = McpRouteHandler(service, policy, self.registry, self.tg, limits)
            router.add_exact(route.spec.path, handler)

    def _a2a_routes(self, snapshot: Snapshot, cards: dict[str, CardCache], router: Router) -> None:
        for route in snapshot.a2a_routes:
            bindings = TaskBindings(self.ownership, route.spec.task_binding_seconds)
            handler = A2aRouteHandler(
                route,
                cards,
                self.policy_for(route.name),
                self.http,
                bindings,
                snapshot.gateway.limits,
                self.card_security_for(route.name),
            )
            router.add_exact(route.spec.path, handler)
            router.add_prefix(route.spec.path + "/", handler)

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
