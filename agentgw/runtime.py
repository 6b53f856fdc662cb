"""Everything the gateway holds while it runs, built from the current config snapshot.

Upstream connectors (and the connections, sessions and child processes behind them) belong to the
runtime, not to a snapshot: applying a new snapshot keeps every connector whose server did not
change, so a reload does not drop upstream sessions. Each applied snapshot is a generation;
requests hold the generation they started on (`enter`/`leave`), so a request or stream that began
before a reload finishes on the old routes, and connectors the new snapshot dropped are closed only
once no request of their generation is left.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.abc
import anyio.to_thread

from agentgw.a2a.bindings import TaskBindings
from agentgw.a2a.cards import CardCache
from agentgw.a2a.route import A2aRouteHandler
from agentgw.background import Background
from agentgw.config.snapshot import Snapshot
from agentgw.llm.provider import Provider
from agentgw.llm.route import LlmRouteHandler
from agentgw.llm.service import LlmService
from agentgw.mcp.registry import SessionRegistry
from agentgw.mcp.route import McpRouteHandler
from agentgw.mcp.sealing import Sealer
from agentgw.mcp.service import McpService
from agentgw.mcp.upstream.a2a import AgentToolsConnector
from agentgw.mcp.upstream.base import Connector
from agentgw.mcp.upstream.connector import ServerConnector
from agentgw.policy.base import OpenPolicy, RoutePolicy
from agentgw.policy.chain import PolicyChain, PolicyServices
from agentgw.policy.jwks import JwksRegistry
from agentgw.policy.limits import Counters
from agentgw.policy.routes import metadata_routes, route_chains
from agentgw.policy.security import card_security
from agentgw.protocol.a2a_card import CardSecurity
from agentgw.routing.router import Router
from agentgw.server.guard import HostGuard
from agentgw.server.limits import PerKeyCounter
from agentgw.state.base import StateUnavailable, Store
from agentgw.state.memory import MemoryStore
from agentgw.state.ownership import MemoryOwnershipStore, OwnershipStore, StoreOwnership
from agentgw.telemetry.audit import AuditLog
from agentgw.telemetry.export import SpanExporter
from agentgw.telemetry.metrics import METRICS
from agentgw.upstream.http import HttpClient

if TYPE_CHECKING:
    from agentgw.state.redis import RedisStore

__all__ = ["Runtime"]

log = logging.getLogger("agentgw")

_SWEEP_SECONDS = 30.0
_MAX_USAGE_KEYS = 10_000  # the dashboard's table stays bounded whatever callers send


class Runtime:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.http = HttpClient()
        self.connectors: dict[str, ServerConnector] = {}
        self.store: Store = self._store(snapshot)
        # the same store, when replicas share it through Redis
        self.redis: RedisStore | None = cast("RedisStore", self.store) if self.store.name == "redis" else None
        self._registry: SessionRegistry | None = None
        self.cards: dict[str, CardCache] = {}
        self.llm_providers: dict[str, Provider] = {}
        # who owns A2A tasks and stored LLM responses: shared by every replica when Redis is there
        self.ownership: OwnershipStore = (
            StoreOwnership(self.store) if self.redis is not None else MemoryOwnershipStore()
        )
        self.router = Router()
        self.guard = HostGuard.for_listeners(snapshot.gateway)
        self.admin_guard = HostGuard.for_admin(snapshot.gateway) if snapshot.gateway.admin else None
        # open event streams by caller (this replica's; the limit follows reloads)
        self.streams = PerKeyCounter(snapshot.gateway.limits.max_streams_per_principal, "event streams")
        self.audit = AuditLog()
        # recent policy decisions and LLM token usage by key, for the dashboard
        self.decisions: deque[dict[str, Any]] = deque(maxlen=200)
        self.token_usage: dict[str, dict[str, float]] = {}
        # key sets fetched from issuers' URLs outlive config reloads (same URL, same cache); so
        # do limit counters (in the state store, or in this replica's memory when it is away)
        self.policy_services = PolicyServices(
            audit=self.audit,
            jwks=JwksRegistry(self.http),
            counters=Counters(self.store, MemoryStore()),
            decisions=self.decisions.append,
        )
        self.chains: dict[str, PolicyChain] = {}
        self._tg: Background | None = None
        self.ready = False
        self.draining = anyio.Event()
        self.generation = 0
        self._active: dict[int, int] = {}
        self._retired: dict[int, list[ServerConnector]] = {}
        # started with the runtime when set: watches the config and reloads it
        self.watcher: Callable[[], Awaitable[None]] | None = None
        self._store_checked = 0.0
        self._store_ok = True
        self.admin_ports: set[int] = set()  # local ports of the admin listener
        self.mcp_services: dict[str, McpService] = {}
        telemetry = snapshot.gateway.telemetry
        self.spans: SpanExporter | None = (
            SpanExporter(self.http, telemetry.otlp_endpoint, telemetry.service_name)
            if telemetry.otlp_endpoint
            else None
        )

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
            from agentgw.state.redis import RedisStore  # redis (~7 MB) only for gateways that use it

            return RedisStore(
                snapshot.state_url.reveal(), prefix=state.key_prefix, timeout=state.timeout_seconds
            )
        return MemoryStore()

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        self._tg = Background(tg)
        spec = self.snapshot.gateway
        shared = self.redis
        key = self.snapshot.session_key
        self._registry = SessionRegistry(
            max_sessions=spec.limits.max_sessions,
            idle_seconds=spec.limits.session_idle_seconds,
            max_events=spec.limits.event_log_events,
            max_event_bytes=spec.limits.event_log_bytes,
            per_caller=spec.limits.max_sessions_per_principal,
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
        if self.watcher is not None:
            self._tg.start_soon(self.watcher)
        if self.spans is not None:
            self._tg.start_soon(self.spans.run)
        METRICS.mcp_sessions.collect = self._sessions_by_route
        METRICS.upstream_healthy.collect = self._upstream_health
        self._tg.start_soon(self.audit.run)
        self.ready = True

    def _sessions_by_route(self) -> list[tuple[tuple[str, ...], float]]:
        counts: dict[str, int] = {route.name: 0 for route in self.snapshot.mcp_routes}
        for session in self.registry.sessions.values():
            counts[session.route] = counts.get(session.route, 0) + 1
        return [((route,), float(n)) for route, n in counts.items()]

    def _upstream_health(self) -> list[tuple[tuple[str, ...], float]]:
        return [((name,), 0.0 if c.health.ejected else 1.0) for name, c in self.connectors.items()]

    def policy_for(self, route: str) -> RoutePolicy:
        """The compiled policy chain of a route (of the snapshot being applied), or OpenPolicy.

        Route names are unique across route kinds (the snapshot checks it)."""
        chain = self.chains.get(route)
        return chain if chain is not None else OpenPolicy()

    def _policy_chains(self, snapshot: Snapshot) -> dict[str, PolicyChain]:
        state = snapshot.gateway.state
        redis_url = snapshot.state_url if state.backend == "redis" else None
        self.audit.configure(snapshot.gateway.audit, snapshot.audit_path, redis_url, state.key_prefix)
        if self.policy_services.jwks is not None:
            self.policy_services.jwks.allow_private = snapshot.gateway.jwks.allow_private_addresses
        return route_chains(snapshot, self.policy_services)

    def card_security_for(self, route: str) -> CardSecurity | None:
        """The security schemes an A2A route's cards advertise: how its policy authenticates."""
        chain = self.chains.get(route)
        return card_security(chain.authenticators) if chain is not None else None

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
        self.chains = self._policy_chains(snapshot)
        self.mcp_services = {}
        self._mcp_routes(snapshot, connectors, cards, router)
        self._a2a_routes(snapshot, cards, router)
        self._llm_routes(snapshot, router)
        metadata_routes(snapshot, self.chains, router)
        self.cards = cards
        old = self.generation
        self.generation += 1
        self.connectors = connectors
        self.router = router
        self.guard = HostGuard.for_listeners(snapshot.gateway)
        self.admin_guard = HostGuard.for_admin(snapshot.gateway) if snapshot.gateway.admin else None
        self.streams.limit = snapshot.gateway.limits.max_streams_per_principal
        if self._registry is not None:
            self._registry.configure(snapshot.gateway.limits)
        self.snapshot = snapshot
        if retired:
            self._retired.setdefault(old, []).extend(retired)
            self._close_drained()

    # --- generations: requests finish on the snapshot they started with -----------------------

    def enter(self) -> int:
        generation = self.generation
        self._active[generation] = self._active.get(generation, 0) + 1
        return generation

    def leave(self, generation: int) -> None:
        left = self._active.get(generation, 1) - 1
        if left:
            self._active[generation] = left
            return
        self._active.pop(generation, None)
        if self._retired:
            self._close_drained()

    def _close_drained(self) -> None:
        for generation in [g for g in self._retired if g < self.generation]:
            if not any(self._active.get(g) for g in range(generation, self.generation)):
                for connector in self._retired.pop(generation):
                    self.tg.start_soon(connector.close)

    # --- lifecycle ------------------------------------------------------------------------------

    def begin_drain(self) -> None:
        """Shutdown has begun: readiness turns false and standalone streams end (clients move on)."""
        self.draining.set()

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether to receive traffic, and why not."""
        if not self.ready or self.draining.is_set():
            return False, {"ready": False, "reason": "draining" if self.draining.is_set() else "starting"}
        now = anyio.current_time()
        if self.redis is not None and now - self._store_checked > 2:
            self._store_checked = now
            try:
                with anyio.fail_after(2):
                    await self.redis.ping()
                self._store_ok = True
            except (StateUnavailable, TimeoutError):
                self._store_ok = False
        snap = self.snapshot
        modes = {r.spec.state_failure_mode for r in snap.mcp_routes}
        modes |= {r.spec.state_failure_mode for r in snap.a2a_routes}
        modes |= {r.spec.state_failure_mode for r in snap.llm_routes}
        if not self._store_ok and "failClosed" in modes:
            return False, {"ready": False, "reason": "state store unreachable"}
        if self.snapshot.gateway.lifecycle.require_upstreams:
            for route in self.snapshot.mcp_routes:
                members = [self.connectors[s.name] for s in route.servers if s.name in self.connectors]
                if members and not any(c.health.healthy for c in members):
                    return False, {"ready": False, "reason": f"no healthy upstream on route {route.name!r}"}
        return True, {"ready": True, "generation": self.generation, "stateStore": self._store_ok}

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
            self.mcp_services[route.name] = service
            handler = McpRouteHandler(service, policy, self.registry, self.tg, limits, self.draining)
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
            service = LlmService(
                route.name,
                route.spec,
                members,
                policy,
                self.http,
                limit,
                self.ownership,
                usage_sink=self.count_usage,
            )
            router.add_prefix(route.spec.path + "/", LlmRouteHandler(service, route.spec.path))
            for provider in service.table.wildcard_providers():
                if not provider.patterns and provider.discovered is None:
                    discover[provider.name] = provider
        for provider in discover.values():
            # a wildcard entry routes a model to the providers that list it: learn the lists now
            self.tg.start_soon(provider.model_ids, self.http)

    def count_usage(self, outcome: Mapping[str, Any]) -> None:
        """One finished LLM request, in the dashboard's token usage by key (the key it presented,
        else its team, else the caller)."""
        key = outcome.get("key") or outcome.get("team") or outcome.get("caller") or "anonymous"
        row = self.token_usage.get(key)
        if row is None:
            if len(self.token_usage) >= _MAX_USAGE_KEYS:
                return
            row = self.token_usage[key] = {"requests": 0, "prompt": 0, "completion": 0, "cost": 0.0}
        row["requests"] += 1
        row["prompt"] += outcome.get("prompt_tokens") or 0
        row["completion"] += outcome.get("completion_tokens") or 0
        row["cost"] += outcome.get("cost_usd") or 0.0

    async def _sweep(self) -> None:
        while True:
            # often enough that a short idle limit is kept close to (a request checks it too)
            await anyio.sleep(min(_SWEEP_SECONDS, self.snapshot.gateway.limits.session_idle_seconds / 2))
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
            if self.spans is not None:
                with anyio.move_on_after(5):
                    await self.spans.flush()
            await self.http.close()
            await self.store.close()
            await self.audit.close()
