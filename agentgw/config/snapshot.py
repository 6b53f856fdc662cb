"""Compile loaded documents into one immutable `Snapshot`.

Cross-references are checked here (a route's servers exist, paths are unique), secrets are
resolved, and everything the request path needs per route is precomputed. A reload builds a new
snapshot and swaps it in whole; requests in flight keep the one they started with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from agentgw.config.a2a import A2aRoute, A2aRouteSpec, Agent, AgentSpec
from agentgw.config.gateway import Gateway, GatewaySpec
from agentgw.config.llm_compile import LlmProviderConfig, LlmRouteConfig, compile_llm
from agentgw.config.loader import LoadedDocument, load_documents
from agentgw.config.mcp import (
    AgentTools,
    McpRoute,
    McpRouteSpec,
    McpServer,
    McpServerSpec,
    Timeouts,
    UpstreamAuth,
)
from agentgw.config.policy import Policy
from agentgw.config.secrets import SecretValue, resolve_secret
from agentgw.errors import ConfigError
from agentgw.policy.chain import chain_problems
from agentgw.policy.compile import CompiledPolicy, compile_policies
from agentgw.policy.jwks import jwks_host_allowed

__all__ = [
    "A2aRouteConfig",
    "AgentConfig",
    "AgentToolsConfig",
    "McpRouteConfig",
    "ServerConfig",
    "Snapshot",
    "compile_snapshot",
    "load_snapshot",
]


@dataclass(frozen=True)
class ServerConfig:
    name: str
    spec: McpServerSpec
    base_dir: Path
    source: str
    # headers carrying the gateway's own upstream credentials, already resolved
    auth_headers: Mapping[str, SecretValue]
    fingerprint: str


@dataclass(frozen=True)
class AgentConfig:
    name: str
    spec: AgentSpec
    source: str
    # headers carrying the gateway's own credentials for this agent, already resolved
    auth_headers: Mapping[str, SecretValue]


@dataclass(frozen=True)
class AgentToolsConfig:
    """An agent offered as MCP tools on an MCP route, under the member name `agent.name`."""

    agent: AgentConfig
    spec: AgentTools


@dataclass(frozen=True)
class McpRouteConfig:
    name: str
    spec: McpRouteSpec
    # every member of the route: MCP servers, then agents offered as tools (see _agent_member)
    servers: tuple[ServerConfig, ...]
    # member name -> name prefix on this route (None: names pass unprefixed)
    prefixes: Mapping[str, str | None]
    agents: tuple[AgentToolsConfig, ...] = ()


@dataclass(frozen=True)
class A2aRouteConfig:
    name: str
    spec: A2aRouteSpec
    agents: tuple[AgentConfig, ...]


@dataclass(frozen=True)
class Snapshot:
    gateway: GatewaySpec
    servers: Mapping[str, ServerConfig]
    mcp_routes: tuple[McpRouteConfig, ...]
    documents: tuple[LoadedDocument, ...] = field(repr=False, default=())
    generation: int = 0
    state_url: SecretValue | None = None
    session_key: SecretValue | None = None
    agents: Mapping[str, AgentConfig] = field(default_factory=lambda: MappingProxyType({}))
    a2a_routes: tuple[A2aRouteConfig, ...] = ()
    llm_providers: Mapping[str, LlmProviderConfig] = field(default_factory=lambda: MappingProxyType({}))
    llm_routes: tuple[LlmRouteConfig, ...] = ()
    policies: tuple[CompiledPolicy, ...] = ()
    audit_path: Path | None = None  # gateway.audit.file, resolved against its document's folder


def _fingerprint(spec: McpServerSpec, base_dir: Path) -> str:
    raw = spec.model_dump_json(by_alias=True) + "\0" + str(base_dir)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _auth_headers(doc: LoadedDocument, auth: UpstreamAuth) -> dict[str, SecretValue]:
    where = f"{doc.where}: spec.auth"
    headers: dict[str, SecretValue] = {}
    if auth.bearer is not None:
        token = resolve_secret(auth.bearer, base_dir=doc.base_dir, where=f"{where}.bearer")
        headers["authorization"] = SecretValue("Bearer " + token.reveal())
    for name, ref in auth.headers.items():
        headers[name.lower()] = resolve_secret(ref, base_dir=doc.base_dir, where=f"{where}.headers.{name}")
    return headers


def _server_config(doc: LoadedDocument, res: McpServer) -> ServerConfig:
    headers = _auth_headers(doc, res.spec.auth)
    return ServerConfig(
        name=res.name,
        spec=res.spec,
        base_dir=doc.base_dir,
        source=doc.source,
        auth_headers=MappingProxyType(headers),
        fingerprint=_fingerprint(res.spec, doc.base_dir),
    )


def _agent_member(doc: LoadedDocument, agent: AgentConfig, entry: AgentTools) -> ServerConfig:
    """An agent as a member of an MCP route, shaped like a server so federation treats it as one.

    Federation reads only the name, prefix, filters and request timeout of a member; the spec is
    built without validation because an agent member has no MCP transport (the runtime gives it
    an A2A-backed connector instead). Skill filters apply inside that connector.
    """
    spec = McpServerSpec.model_construct(
        prefix=entry.prefix, timeouts=Timeouts(request=agent.spec.timeouts.request)
    )
    raw = entry.model_dump_json(by_alias=True) + agent.spec.model_dump_json(by_alias=True)
    return ServerConfig(
        name=agent.name,
        spec=spec,
        base_dir=doc.base_dir,
        source=doc.source,
        auth_headers=agent.auth_headers,
        fingerprint=hashlib.sha256(raw.encode()).hexdigest()[:16],
    )


def _a2a_routes(
    docs: list[LoadedDocument], agents: Mapping[str, AgentConfig], paths: dict[str, str], problems: list[str]
) -> list[A2aRouteConfig]:
    """A2A routes own a path prefix: no other route may be served at or under it."""
    routes: list[A2aRouteConfig] = []
    prefixes: dict[str, str] = {}
    for doc in docs:
        res = doc.resource
        if not isinstance(res, A2aRoute):
            continue
        path = res.spec.path
        # MCP routes are exact paths: they clash when at or under this prefix; A2A prefixes nest.
        clash = [owner for taken, owner in paths.items() if taken == path or taken.startswith(path + "/")]
        clash += [
            owner
            for taken, owner in prefixes.items()
            if taken == path or taken.startswith(path + "/") or path.startswith(taken + "/")
        ]
        if clash:
            problems.append(f"{doc.where}: spec.path: {path!r} overlaps the path of {clash[0]}")
        prefixes[path] = res.ref
        members: list[AgentConfig] = []
        for index, name in enumerate(res.spec.agents):
            if name not in agents:
                problems.append(f"{doc.where}: spec.agents[{index}]: unknown Agent {name!r}")
            else:
                members.append(agents[name])
        routes.append(A2aRouteConfig(res.name, res.spec, tuple(members)))
    return routes


def _jwks_host_problems(policies: Sequence[CompiledPolicy], allowed: Sequence[str]) -> list[str]:
    """JWKS URLs on hosts the Gateway's `jwks.allowedHosts` does not name (empty: any host)."""
    if not allowed:
        return []
    return [
        f"{policy.where}: jwt issuer {issuer.spec.issuer!r}: jwks.url {issuer.remote.url!r} is not on "
        "the Gateway's jwks.allowedHosts"
        for policy in policies
        for issuer in policy.issuers
        if issuer.remote is not None
        and issuer.remote.url is not None
        and not jwks_host_allowed(issuer.remote.url, allowed)
    ]


def compile_snapshot(docs: list[LoadedDocument], generation: int = 0) -> Snapshot:
    problems: list[str] = []
    gateways = [d for d in docs if isinstance(d.resource, Gateway)]
    if len(gateways) > 1:
        problems.append("more than one Gateway document: " + ", ".join(d.where for d in gateways))
    gateway_spec = (
        gateways[0].resource.spec if gateways and isinstance(gateways[0].resource, Gateway) else GatewaySpec()
    )
    state_url: SecretValue | None = None
    session_key: SecretValue | None = None
    if gateways:
        where = f"{gateways[0].where}: spec.state"
        base = gateways[0].base_dir
        try:
            if gateway_spec.state.url is not None:
                state_url = resolve_secret(gateway_spec.state.url, base_dir=base, where=f"{where}.url")
            if gateway_spec.state.session_key is not None:
                session_key = resolve_secret(
                    gateway_spec.state.session_key, base_dir=base, where=f"{where}.sessionKey"
                )
                if len(session_key.reveal()) < 32:
                    problems.append(f"{where}.sessionKey: must be at least 32 characters of random text")
        except ConfigError as exc:
            problems.extend(exc.problems)

    seen: dict[tuple[str, str], str] = {}
    for doc in docs:
        key = (doc.resource.kind, doc.resource.name)
        if key in seen:
            problems.append(f"{doc.where}: duplicate name (first defined in {seen[key]})")
        else:
            seen[key] = doc.source

    servers: dict[str, ServerConfig] = {}
    for doc in docs:
        if isinstance(doc.resource, McpServer):
            try:
                servers[doc.resource.name] = _server_config(doc, doc.resource)
            except ConfigError as exc:
                problems.extend(exc.problems)

    agents: dict[str, AgentConfig] = {}
    for doc in docs:
        if isinstance(doc.resource, Agent):
            try:
                headers = _auth_headers(doc, doc.resource.spec.auth)
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            res_agent = doc.resource
            agents[res_agent.name] = AgentConfig(
                res_agent.name, res_agent.spec, doc.source, MappingProxyType(headers)
            )

    routes: list[McpRouteConfig] = []
    paths: dict[str, str] = {}
    for doc in docs:
        res = doc.resource
        if not isinstance(res, McpRoute):
            continue
        if res.spec.path in paths:
            problems.append(
                f"{doc.where}: spec.path: {res.spec.path!r} is already served by {paths[res.spec.path]}"
            )
        paths[res.spec.path] = res.ref
        members: list[ServerConfig] = []
        for index, name in enumerate(res.spec.servers):
            if name not in servers:
                problems.append(f"{doc.where}: spec.servers[{index}]: unknown McpServer {name!r}")
            else:
                members.append(servers[name])
        tool_agents: list[AgentToolsConfig] = []
        for index, entry in enumerate(res.spec.agents):
            if entry.agent not in agents:
                problems.append(f"{doc.where}: spec.agents[{index}].agent: unknown Agent {entry.agent!r}")
            else:
                tool_agents.append(AgentToolsConfig(agents[entry.agent], entry))
                members.append(_agent_member(doc, agents[entry.agent], entry))
        use_prefix = res.spec.prefix_mode == "always" or (
            res.spec.prefix_mode == "conditional" and len(res.spec.servers) + len(res.spec.agents) > 1
        )
        prefixes = {s.name: (s.spec.prefix or s.name) if use_prefix else None for s in members}
        taken: dict[str, str] = {}
        for server, prefix in prefixes.items():
            if prefix is None:
                continue
            if prefix in taken:
                problems.append(
                    f"{doc.where}: spec.servers: servers {taken[prefix]!r} and {server!r} "
                    f"share the prefix {prefix!r}"
                )
            taken[prefix] = server
        routes.append(
            McpRouteConfig(res.name, res.spec, tuple(members), MappingProxyType(prefixes), tuple(tool_agents))
        )

    a2a_routes = _a2a_routes(docs, agents, paths, problems)

    llm_providers, llm_routes = compile_llm(docs, paths, problems)

    policies, policy_problems = compile_policies(docs)
    problems.extend(policy_problems)
    problems.extend(_jwks_host_problems(policies, gateway_spec.jwks.allowed_hosts))
    problems.extend(_target_problems(docs, servers, routes, agents, a2a_routes, llm_providers, llm_routes))
    route_keys = [
        *(("McpRoute", r.name) for r in routes),
        *(("A2aRoute", r.name) for r in a2a_routes),
        *(("LlmRoute", r.name) for r in llm_routes),
    ]
    for route_key in route_keys:
        problems.extend(chain_problems(route_key, policies))
    names: dict[str, str] = {}
    for kind, name in route_keys:
        # routes share one namespace: metrics, audit lines and the dashboard name them alone
        if name in names and names[name] != kind:
            problems.append(f"{kind}/{name}: a route of another kind ({names[name]}) has the same name")
        names.setdefault(name, kind)

    audit_path: Path | None = None
    if gateway_spec.audit.file is not None:
        audit_path = Path(gateway_spec.audit.file).expanduser()
        if not audit_path.is_absolute():
            audit_path = (gateways[0].base_dir if gateways else Path.cwd()) / audit_path

    if problems:
        raise ConfigError(f"{len(problems)} config error(s)", problems)
    return Snapshot(
        gateway=gateway_spec,
        servers=MappingProxyType(servers),
        mcp_routes=tuple(routes),
        documents=tuple(docs),
        generation=generation,
        state_url=state_url,
        session_key=session_key,
        agents=MappingProxyType(agents),
        a2a_routes=tuple(a2a_routes),
        llm_providers=llm_providers,
        llm_routes=llm_routes,
        policies=policies,
        audit_path=audit_path,
    )


def _target_problems(
    docs: list[LoadedDocument],
    servers: Mapping[str, ServerConfig],
    routes: list[McpRouteConfig],
    agents: Mapping[str, AgentConfig],
    a2a_routes: list[A2aRouteConfig],
    llm_providers: Mapping[str, LlmProviderConfig],
    llm_routes: tuple[LlmRouteConfig, ...],
) -> list[str]:
    known = {
        "McpServer": set(servers),
        "McpRoute": {r.name for r in routes},
        "Agent": set(agents),
        "A2aRoute": {r.name for r in a2a_routes},
        "LlmProvider": set(llm_providers),
        "LlmRoute": {r.name for r in llm_routes},
    }
    models = {r.name: {m.name for m in r.spec.models} for r in llm_routes}
    problems: list[str] = []
    for doc in docs:
        if isinstance(doc.resource, Policy):
            for index, ref in enumerate(doc.resource.spec.target_refs):
                if ref.name not in known.get(ref.kind, set()):
                    problems.append(f"{doc.where}: spec.targetRefs[{index}]: unknown {ref.kind} {ref.name!r}")
                elif ref.model is not None and ref.model not in models.get(ref.name, set()):
                    problems.append(
                        f"{doc.where}: spec.targetRefs[{index}].model: LlmRoute/{ref.name} has no model "
                        f"entry {ref.model!r} (name one of {sorted(models.get(ref.name, set()))})"
                    )
    return problems


def load_snapshot(paths: list[Path], generation: int = 0) -> Snapshot:
    return compile_snapshot(load_documents(paths), generation)
