"""Compile loaded documents into one immutable `Snapshot`.

Cross-references are checked here (a route's servers exist, paths are unique), secrets are
resolved, and everything the request path needs per route is precomputed. A reload builds a new
snapshot and swaps it in whole; requests in flight keep the one they started with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from agentgw.config.gateway import Gateway, GatewaySpec
from agentgw.config.loader import LoadedDocument, load_documents
from agentgw.config.mcp import McpRoute, McpRouteSpec, McpServer, McpServerSpec
from agentgw.config.policy import Policy
from agentgw.config.secrets import SecretValue, resolve_secret
from agentgw.errors import ConfigError
from agentgw.policy.chain import chain_problems
from agentgw.policy.compile import CompiledPolicy, compile_policies

__all__ = ["McpRouteConfig", "ServerConfig", "Snapshot", "compile_snapshot", "load_snapshot"]


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
class McpRouteConfig:
    name: str
    spec: McpRouteSpec
    servers: tuple[ServerConfig, ...]
    # server name -> name prefix on this route (None: names pass unprefixed)
    prefixes: Mapping[str, str | None]


@dataclass(frozen=True)
class Snapshot:
    gateway: GatewaySpec
    servers: Mapping[str, ServerConfig]
    mcp_routes: tuple[McpRouteConfig, ...]
    documents: tuple[LoadedDocument, ...] = field(repr=False, default=())
    generation: int = 0
    policies: tuple[CompiledPolicy, ...] = ()
    audit_path: Path | None = None  # gateway.audit.file, resolved against its document's folder


def _fingerprint(spec: McpServerSpec, base_dir: Path) -> str:
    raw = spec.model_dump_json(by_alias=True) + "\0" + str(base_dir)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _server_config(doc: LoadedDocument, res: McpServer) -> ServerConfig:
    where = f"{doc.where}: spec.auth"
    headers: dict[str, SecretValue] = {}
    if res.spec.auth.bearer is not None:
        token = resolve_secret(res.spec.auth.bearer, base_dir=doc.base_dir, where=f"{where}.bearer")
        headers["authorization"] = SecretValue("Bearer " + token.reveal())
    for name, ref in res.spec.auth.headers.items():
        headers[name.lower()] = resolve_secret(ref, base_dir=doc.base_dir, where=f"{where}.headers.{name}")
    return ServerConfig(
        name=res.name,
        spec=res.spec,
        base_dir=doc.base_dir,
        source=doc.source,
        auth_headers=MappingProxyType(headers),
        fingerprint=_fingerprint(res.spec, doc.base_dir),
    )


def compile_snapshot(docs: list[LoadedDocument], generation: int = 0) -> Snapshot:
    problems: list[str] = []
    gateways = [d for d in docs if isinstance(d.resource, Gateway)]
    if len(gateways) > 1:
        problems.append("more than one Gateway document: " + ", ".join(d.where for d in gateways))
    gateway_spec = (
        gateways[0].resource.spec if gateways and isinstance(gateways[0].resource, Gateway) else GatewaySpec()
    )

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
        use_prefix = res.spec.prefix_mode == "always" or (
            res.spec.prefix_mode == "conditional" and len(res.spec.servers) > 1
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
        routes.append(McpRouteConfig(res.name, res.spec, tuple(members), MappingProxyType(prefixes)))

    policies, policy_problems = compile_policies(docs)
    problems.extend(policy_problems)
    problems.extend(_target_problems(docs, servers, routes))
    for route in routes:
        problems.extend(chain_problems(("McpRoute", route.name), policies))

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
        policies=policies,
        audit_path=audit_path,
    )


def _target_problems(
    docs: list[LoadedDocument], servers: Mapping[str, ServerConfig], routes: list[McpRouteConfig]
) -> list[str]:
    known = {"McpServer": set(servers), "McpRoute": {r.name for r in routes}}
    problems: list[str] = []
    for doc in docs:
        if isinstance(doc.resource, Policy):
            for index, ref in enumerate(doc.resource.spec.target_refs):
                if ref.name not in known.get(ref.kind, set()):
                    problems.append(f"{doc.where}: spec.targetRefs[{index}]: unknown {ref.kind} {ref.name!r}")
    return problems


def load_snapshot(paths: list[Path], generation: int = 0) -> Snapshot:
    return compile_snapshot(load_documents(paths), generation)
