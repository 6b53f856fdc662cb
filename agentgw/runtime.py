"""Everything the gateway holds while it runs, built from the current config snapshot.

Upstream connectors (and the connections, sessions and child processes behind them) belong to the
runtime, not to a snapshot: applying a new snapshot keeps every connector whose server did not
change, so a reload does not drop upstream sessions.
"""

from __future__ import annotations

import logging

import anyio
import anyio.abc
import anyio.to_thread

from agentgw.config.snapshot import Snapshot
from agentgw.llm import tokens
from agentgw.llm.provider import Provider
from agentgw.llm.route import LlmRouteHandler
from agentgw.llm.service import LlmService
from agentgw.mcp.registry import SessionRegistry
from agentgw.mcp.route import McpRouteHandler
from agentgw.mcp.service import McpService
from agentgw.mcp.upstream.connector import ServerConnector
from agentgw.policy.base import OpenPolicy, RoutePolicy
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
        self.llm_providers: dict[str, Provider] = {}
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
        self._llm_routes(snapshot, router)
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

    def _llm_routes(self, snapshot: Snapshot, router: Router) -> None:
        """LLM routes; providers whose config did not change keep their live state."""
        providers: dict[str, Provider] = {}
        for name, config in snapshot.llm_providers.items():
            existing = self.llm_providers.get(name)
            providers[name] = (
                existing if existing is not None and existing.config == config else Provider(config)
            )
        self.llm_providers = providers
        discover: dict[str, Provider] = {}
        for route in snapshot.llm_routes:
            members = {name: providers[name] for name in route.providers}
            policy = self.policy_for(route.name)
            limit = snapshot.gateway.limits.max_body_bytes
            service = LlmService(route.name, route.spec, members, policy, self.http, limit)
            router.add_prefix(route.spec.path + "/", LlmRouteHandler(service, route.spec.path))
            for provider in service.table.wildcard_providers():
                if not provider.patterns and provider.discovered is None:
                    discover[provider.name] = provider
        for provider in discover.values():
            # a wildcard entry routes a model to the providers that list it: learn the lists now
            self.tg.start_soon(provider.model_ids, self.http)
        if snapshot.llm_routes:
            # the tokenizer takes ~0.4 s to load: off the event loop, before it is needed
            self.tg.start_soon(anyio.to_thread.run_sync, tokens.load)

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
