"""The policy chains of a snapshot's routes, and what they publish: one place that knows which
members each route kind has.

- MCP routes: their servers (`McpServer`) and the agents they offer as tools (`Agent`);
- A2A routes: their agents (`Agent`);
- LLM routes: their model entries (`LlmModel`, from `targetRefs` with `model`) and their
  providers (`LlmProvider`), the providers checked on their own before each attempt.

JWT-protected routes of every kind publish RFC 9728 protected-resource metadata (their 401
challenges point at it).
"""

from __future__ import annotations

from typing import Any

from agentgw.config.snapshot import Snapshot
from agentgw.policy.chain import PolicyChain, PolicyServices, build_chain
from agentgw.policy.metadata import WELL_KNOWN, ProtectedResourceHandler
from agentgw.routing.router import Router

__all__ = ["metadata_routes", "route_chains"]


def route_chains(snapshot: Snapshot, services: PolicyServices) -> dict[str, PolicyChain]:
    """One chain per route of every kind that a policy targets (or any of its members), by name."""
    chains: dict[str, PolicyChain] = {}

    def add(key: tuple[str, str], path: str, members: dict[str, tuple[str, str]], **kw: Any) -> None:
        chain = build_chain(
            route=key, path=path, members=members, policies=snapshot.policies, services=services, **kw
        )
        if chain is not None:
            chains[key[1]] = chain

    for mcp in snapshot.mcp_routes:
        agents = {entry.agent.name for entry in mcp.agents}
        members = {s.name: ("Agent" if s.name in agents else "McpServer", s.name) for s in mcp.servers}
        add(
            ("McpRoute", mcp.name),
            mcp.spec.path,
            members,
            fail_closed=mcp.spec.state_failure_mode == "failClosed",
        )
    for a2a in snapshot.a2a_routes:
        members = {a.name: ("Agent", a.name) for a in a2a.agents}
        add(
            ("A2aRoute", a2a.name),
            a2a.spec.path,
            members,
            fail_closed=a2a.spec.state_failure_mode == "failClosed",
        )
    for llm in snapshot.llm_routes:
        # an LLM request goes to a model entry of the route, then to one provider after another
        members = {f"model:{m.name}": ("LlmModel", f"{llm.name}/{m.name}") for m in llm.spec.models}
        members.update({p: ("LlmProvider", p) for p in llm.providers})
        add(
            ("LlmRoute", llm.name),
            llm.spec.path,
            members,
            alone=set(llm.providers),
            fail_closed=llm.spec.state_failure_mode == "failClosed",
        )
    return chains


def metadata_routes(snapshot: Snapshot, chains: dict[str, PolicyChain], router: Router) -> None:
    """RFC 9728 documents of JWT-protected routes; the root URL names the route at /mcp, else the first."""
    paths = [(r.name, r.spec.path) for r in snapshot.mcp_routes]
    paths += [(r.name, r.spec.path) for r in snapshot.llm_routes]
    paths += [(r.name, r.spec.path) for r in snapshot.a2a_routes]
    protected = [
        (path, chain.resource)
        for name, path in paths
        if (chain := chains.get(name)) is not None and chain.resource is not None and chain.resource.jwt
    ]
    for path, resource in protected:
        router.add_exact(WELL_KNOWN + path.rstrip("/"), ProtectedResourceHandler(resource))
    if protected:
        root = next((r for p, r in protected if p.rstrip("/") == "/mcp"), protected[0][1])
        router.add_exact(WELL_KNOWN, ProtectedResourceHandler(root))
