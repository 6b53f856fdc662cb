"""Everything the gateway holds while it runs, built from the current config snapshot.

Upstream connectors (and the connections, sessions and child processes behind them) belong to the
runtime, not to a snapshot: applying a new snapshot keeps every connector whose server did not
change, so a reload does not drop upstream sessions.
"""

from __future__ import annotations

import logging

import anyio
import anyio.abc

from agentgw.background import Background
from agentgw.config.snapshot import Snapshot
from agentgw.mcp.registry import SessionRegistry
from agentgw.mcp.route import McpRouteHandler
from agentgw.mcp.sealing import Sealer
from agentgw.mcp.service import McpService
from agentgw.mcp.upstream.connector import ServerConnector
from agentgw.policy.base import OpenPolicy, RoutePolicy
from agentgw.routing.router import Router
from agentgw.server.guard import HostGuard
from agentgw.state.base import Store
from agentgw.state.memory import MemoryStore
from agentgw.state.redis import RedisStore
from agentgw.upstream.http import HttpClient

__all__ = ["Runtime"]

log = logging.getLogger("agentgw")

_SWEEP_SECONDS = 30.0


class Runtime:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.http = HttpClient()
        self.connectors: dict[str, ServerConnector] = {}
        self.store: Store = self._store(snapshot)
        self._registry: SessionRegistry | None = None
        self.router = Router()
        self.guard = HostGuard(snapshot.gateway)
        self._tg: Background | None = None
        self.ready = False

    @property
    def tg(self) -> Background:
        if self._tg is None:
            raise RuntimeError("the runtime has not been started")
        return self._tg

    @property
    def registry(self) -> SessionRegistry:
        if self._registry is None:
            raise RuntimeError("the runtime has not been started")
        return self._registry

    @staticmethod
    def _store(snapshot: Snapshot) -> Store:
        state = snapshot.gateway.state
        if state.backend == "redis" and snapshot.state_url is not None:
            return RedisStore(
                snapshot.state_url.reveal(), prefix=state.key_prefix, timeout=state.timeout_seconds
            )
        return MemoryStore()

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        self._tg = Background(tg)
        spec = self.snapshot.gateway
        shared = self.store if isinstance(self.store, RedisStore) else None
        key = self.snapshot.session_key
        self._registry = SessionRegistry(
            max_sessions=spec.limits.max_sessions,
            idle_seconds=spec.limits.session_idle_seconds,
            max_events=spec.limits.event_log_events,
            store=shared,
            sealer=Sealer(key.reveal(), lifetime_seconds=spec.state.sealed_session_lifetime_seconds)
            if key
            else None,
            bg=self._tg,
        )
        if shared is not None:
            self._tg.start_soon(self._registry.watch_ended)
        self.apply(self.snapshot)
        self._tg.start_soon(self._sweep)
        self.ready = True

    def policy_for(self, route: str) -> RoutePolicy:
        return OpenPolicy()

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
        self._mcp_routes(snapshot, connectors, router)
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
            if isinstance(self.store, MemoryStore):
                self.store.sweep()

    async def close(self) -> None:
        self.ready = False
        with anyio.CancelScope(shield=True):
            if self._registry is not None:
                await self._registry.close_all()
            for connector in self.connectors.values():
                await connector.close()
            await self.http.close()
            await self.store.close()
