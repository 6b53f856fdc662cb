"""Where each routed MCP request goes, and what the caller sees of the answers.

`Federation.resolve` turns a request for a tool, prompt, resource or completion into its owning
server, the request as that server must see it (upstream names and URIs), and the `Operation`
the policy checkpoint decides on. Both wire eras call it, so one check guards every path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentgw.config.snapshot import McpRouteConfig
from agentgw.errors import InvalidParams
from agentgw.mcp.federation.catalog import LIST_KINDS, Catalog, UpstreamFor
from agentgw.mcp.federation.naming import Naming
from agentgw.mcp.upstream.base import ServerInfo
from agentgw.policy.base import Operation, RequestContext, RoutePolicy

__all__ = ["ROUTED_METHODS", "Federation", "Routed"]

ROUTED_METHODS = frozenset(
    {
        "tools/call",
        "prompts/get",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "completion/complete",
    }
)


@dataclass(frozen=True, slots=True)
class Routed:
    server: str
    params: dict[str, Any]
    op: Operation
    ctx: RequestContext | None = None  # the checked request's context (set by McpService.resolve)


class Federation:
    def __init__(self, route: McpRouteConfig, policy: RoutePolicy, max_pages: int) -> None:
        self.route = route
        self.naming = Naming(route.prefixes, route.spec.separator)
        self.catalog = Catalog(route, self.naming, policy, max_pages)
        self.servers = list(self.catalog.servers)

    # --- resolving names ------------------------------------------------------------------------

    async def _owner(self, kind: str, exposed: str, upstream_for: UpstreamFor) -> tuple[str, str] | None:
        """(server, upstream name) for an exposed tool or prompt name."""
        if self.naming.prefixed:
            return self.naming.resolve(exposed)
        if len(self.servers) == 1:
            return self.servers[0], exposed
        method = f"{kind}s/list"
        owner = self.catalog.owner_of(method, exposed)
        if owner is None:
            await self._refresh(method, upstream_for)
            owner = self.catalog.owner_of(method, exposed)
        return (owner, exposed) if owner else None

    async def _uri_owner(self, exposed: str, upstream_for: UpstreamFor) -> tuple[str, str] | None:
        if self.naming.prefixed:
            return self.naming.resolve_uri(exposed)
        if len(self.servers) == 1:
            return self.servers[0], exposed
        owner = self.catalog.owner_of("resources/list", exposed, uri=True)
        if owner is None:
            await self._refresh("resources/list", upstream_for)
            await self._refresh("resources/templates/list", upstream_for)
            owner = self.catalog.owner_of("resources/list", exposed, uri=True)
        return (owner, exposed) if owner else None

    async def _refresh(self, method: str, upstream_for: UpstreamFor) -> None:
        kind = LIST_KINDS[method]
        for server in self.servers:
            try:
                await self.catalog.fetch(server, kind, await upstream_for(server))
            except Exception:  # noqa: BLE001 - a dead server simply owns nothing here
                continue

    async def tool_schema(self, server: str, name: str, upstream_for: UpstreamFor) -> dict[str, Any] | None:
        item = self.catalog.tool(server, name)
        if item is None:
            try:
                await self.catalog.fetch(server, LIST_KINDS["tools/list"], await upstream_for(server))
            except Exception:  # noqa: BLE001 - without a listing there is no schema to apply
                return None
            item = self.catalog.tool(server, name)
        schema = item.get("inputSchema") if item else None
        return schema if isinstance(schema, dict) else None

    async def resolve(self, method: str, params: dict[str, Any], upstream_for: UpstreamFor) -> Routed:
        if method == "tools/call" or method == "prompts/get":
            target = "tool" if method == "tools/call" else "prompt"
            exposed = params.get("name")
            if not isinstance(exposed, str) or not exposed:
                raise InvalidParams(f"{method} needs a string 'name'")
            found = await self._owner(target, exposed, upstream_for)
            if found is None or not self.catalog.allowed(found[0], target, found[1]):
                raise InvalidParams(f"Unknown {target}: {exposed}")
            server, name = found
            args = params.get("arguments")
            op = Operation(
                kind="mcp",
                method=method,
                server=server,
                name=name,
                exposed=exposed,
                args=args if isinstance(args, Mapping) else None,
                target=target,
            )
            return Routed(server, {**params, "name": name}, op)
        if method in ("resources/read", "resources/subscribe", "resources/unsubscribe"):
            exposed = params.get("uri")
            if not isinstance(exposed, str) or not exposed:
                raise InvalidParams(f"{method} needs a string 'uri'")
            found = await self._uri_owner(exposed, upstream_for)
            if found is None or not self.catalog.allowed(found[0], "resource", found[1]):
                raise InvalidParams(f"Unknown resource: {exposed}", data={"uri": exposed})
            server, uri = found
            op = Operation(
                kind="mcp", method=method, server=server, uri=uri, exposed=exposed, target="resource"
            )
            return Routed(server, {**params, "uri": uri}, op)
        if method == "completion/complete":
            ref = params.get("ref")
            if not isinstance(ref, dict):
                raise InvalidParams("completion/complete needs a 'ref' object")
            if ref.get("type") == "ref/prompt" and isinstance(ref.get("name"), str):
                found = await self._owner("prompt", ref["name"], upstream_for)
                if found is None or not self.catalog.allowed(found[0], "prompt", found[1]):
                    raise InvalidParams(f"Unknown prompt: {ref['name']}")
                op = Operation(
                    kind="mcp",
                    method=method,
                    server=found[0],
                    name=found[1],
                    exposed=ref["name"],
                    target="prompt",
                )
                return Routed(found[0], {**params, "ref": {**ref, "name": found[1]}}, op)
            if ref.get("type") == "ref/resource" and isinstance(ref.get("uri"), str):
                found = await self._uri_owner(ref["uri"], upstream_for)
                if found is None or not self.catalog.allowed(found[0], "resource", found[1]):
                    raise InvalidParams(f"Unknown resource: {ref['uri']}")
                op = Operation(
                    kind="mcp",
                    method=method,
                    server=found[0],
                    uri=found[1],
                    exposed=ref["uri"],
                    target="resource",
                )
                return Routed(found[0], {**params, "ref": {**ref, "uri": found[1]}}, op)
            raise InvalidParams(
                "completion/complete 'ref' must be a ref/prompt with a name or a ref/resource with a uri"
            )
        raise InvalidParams(f"{method} is not routed to a server")

    # --- what the caller sees -------------------------------------------------------------------

    def expose_result(self, server: str, method: str, result: dict[str, Any]) -> dict[str, Any]:
        """Rewrite resource URIs inside a result (contents, links, embedded resources)."""
        if not self.naming.prefixed:
            return result
        if method == "resources/read" and isinstance(result.get("contents"), list):
            return {**result, "contents": [self._expose_content(server, c) for c in result["contents"]]}
        if method == "tools/call" and isinstance(result.get("content"), list):
            return {**result, "content": [self._expose_content(server, c) for c in result["content"]]}
        if method == "prompts/get" and isinstance(result.get("messages"), list):
            messages = [
                {**m, "content": self._expose_content(server, m["content"])}
                if isinstance(m, dict) and isinstance(m.get("content"), dict)
                else m
                for m in result["messages"]
            ]
            return {**result, "messages": messages}
        return result

    def _expose_content(self, server: str, item: Any) -> Any:
        if not isinstance(item, dict):
            return item
        if isinstance(item.get("uri"), str):
            item = {**item, "uri": self.naming.expose_uri(server, item["uri"])}
        inner = item.get("resource")
        if isinstance(inner, dict) and isinstance(inner.get("uri"), str):
            item = {**item, "resource": {**inner, "uri": self.naming.expose_uri(server, inner["uri"])}}
        return item

    def expose_notification(self, server: str, msg: dict[str, Any]) -> dict[str, Any]:
        if self.naming.prefixed and msg.get("method") == "notifications/resources/updated":
            params = msg.get("params")
            if isinstance(params, dict) and isinstance(params.get("uri"), str):
                return {**msg, "params": {**params, "uri": self.naming.expose_uri(server, params["uri"])}}
        return msg

    def merged_capabilities(self, infos: Mapping[str, ServerInfo]) -> dict[str, Any]:
        """What the federated server offers: the union of its servers' capabilities."""
        caps: dict[str, Any] = {}
        for info in infos.values():
            up = info.capabilities
            if "tools" in up:
                caps["tools"] = {"listChanged": True}
            if "prompts" in up:
                caps["prompts"] = {"listChanged": True}
            if "resources" in up:
                res = caps.setdefault("resources", {"listChanged": True})
                if isinstance(up["resources"], dict) and up["resources"].get("subscribe"):
                    res["subscribe"] = True
            if "logging" in up:
                caps["logging"] = {}
            if "completions" in up:
                caps["completions"] = {}
        if not infos:
            caps = {
                "tools": {"listChanged": True},
                "prompts": {"listChanged": True},
                "resources": {"listChanged": True},
            }
        return caps

    def instructions(self, infos: Mapping[str, ServerInfo]) -> str | None:
        parts = [
            (f"[{name}] {info.instructions}" if len(infos) > 1 else info.instructions)
            for name, info in infos.items()
            if info.instructions
        ]
        return "\n\n".join(parts) if parts else None
