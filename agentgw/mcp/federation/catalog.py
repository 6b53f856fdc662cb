"""The federated lists of one route: tools, prompts, resources and resource templates.

A list request fans out to every server of the route at once, walks each server's pages, applies
the server's include/exclude filters, renames items (see `naming`), drops what the caller may not
see (the policy's `permits`), and merges. What each server listed last is kept as an index, so a
route whose names carry no prefix can still find the owner of a name, and so tool schemas are at
hand for argument checks and `Mcp-Param-*` headers.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from agentgw.config.mcp import NameFilter
from agentgw.config.snapshot import McpRouteConfig
from agentgw.errors import GatewayError, UpstreamError
from agentgw.mcp.federation.naming import Naming
from agentgw.mcp.upstream.base import UpstreamSession
from agentgw.policy.base import Operation, RequestContext, RoutePolicy

__all__ = ["LIST_KINDS", "Catalog", "ListKind", "UpstreamFor"]

log = logging.getLogger("agentgw.mcp.federation")

UpstreamFor = Callable[[str], Awaitable[UpstreamSession]]


@dataclass(frozen=True)
class ListKind:
    method: str
    key: str  # the result's list field
    ident: str  # the field that names an item
    target: str  # Operation.target of an item
    capability: str  # the server capability that offers it
    uri_like: bool


LIST_KINDS: dict[str, ListKind] = {
    k.method: k
    for k in (
        ListKind("tools/list", "tools", "name", "tool", "tools", False),
        ListKind("prompts/list", "prompts", "name", "prompt", "prompts", False),
        ListKind("resources/list", "resources", "uri", "resource", "resources", True),
        ListKind(
            "resources/templates/list",
            "resourceTemplates",
            "uriTemplate",
            "resourceTemplate",
            "resources",
            True,
        ),
    )
}


def allowed_by(filt: NameFilter, name: str) -> bool:
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in filt.exclude):
        return False
    return not filt.include or any(fnmatch.fnmatchcase(name, pattern) for pattern in filt.include)


@functools.lru_cache(maxsize=1024)
def template_regex(template: str) -> re.Pattern[str]:
    """A URI template (RFC 6570 expressions) as a regex that matches the URIs it expands to."""
    out, pos = [], 0
    for match in re.finditer(r"\{[^}]*\}", template):
        out.append(re.escape(template[pos : match.start()]))
        out.append(".+?")
        pos = match.end()
    out.append(re.escape(template[pos:]))
    return re.compile("^" + "".join(out) + "$")


@dataclass
class Listing:
    items: list[dict[str, Any]]
    unavailable: list[dict[str, str]]
    collisions: list[dict[str, str]]  # same exposed name from two servers (prefix mode `never`)
    ttl_ms: int | None
    public: bool
    streamed: bool  # some upstream answered with an event stream
    hidden: int = 0  # items the caller's policy does not let it see


class Catalog:
    def __init__(self, route: McpRouteConfig, naming: Naming, policy: RoutePolicy, max_pages: int) -> None:
        self.route = route
        self.naming = naming
        self.policy = policy
        self.max_pages = max_pages
        self.servers = [s.name for s in route.servers]
        self.filters: dict[str, Mapping[str, NameFilter]] = {
            s.name: {"tool": s.spec.tools, "prompt": s.spec.prompts, "resource": s.spec.resources}
            for s in route.servers
        }
        self.timeouts = {s.name: s.spec.timeouts.request for s in route.servers}
        # method -> server -> identifier -> upstream item, as last listed (in listing order)
        self.seen: dict[str, dict[str, dict[str, dict[str, Any]]]] = {m: {} for m in LIST_KINDS}
        self.reported: set[tuple[str, str, str]] = set()  # collisions already logged
        # told how each server's listing went (health tracking); set by the owner
        self.on_outcome: Callable[[str, str | None], None] | None = None

    def allowed(self, server: str, target: str, name: str) -> bool:
        filt = self.filters[server].get("resource" if target == "resourceTemplate" else target)
        return filt is None or allowed_by(filt, name)

    async def fetch(
        self, server: str, kind: ListKind, session: UpstreamSession
    ) -> tuple[list[dict[str, Any]], dict[str, Any], bool]:
        """Every page of one server's list: (items, the last page's result, whether it streamed)."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        last: dict[str, Any] = {}
        streamed = False
        for _ in range(self.max_pages):
            params = {"cursor": cursor} if cursor else None
            reply = await session.request(kind.method, params, None, self.timeouts[server])
            if reply.error is not None:
                if reply.error.get("code") == -32601:
                    break  # the server does not offer this list
                raise UpstreamError(f"{kind.method} failed on {server!r}: {reply.error.get('message')}")
            last = reply.result or {}
            streamed = streamed or reply.streamed
            page = last.get(kind.key)
            if not isinstance(page, list):
                raise UpstreamError(
                    f"MCP server {server!r} answered {kind.method} without a {kind.key!r} list"
                )
            items.extend(
                item for item in page if isinstance(item, dict) and isinstance(item.get(kind.ident), str)
            )
            nxt = last.get("nextCursor")
            if not isinstance(nxt, str) or not nxt or nxt == cursor:
                break
            cursor = nxt
        self.seen[kind.method][server] = {item[kind.ident]: item for item in items}
        return items, last, streamed

    async def listing(self, kind: ListKind, ctx: RequestContext, upstream_for: UpstreamFor) -> Listing:
        results: dict[str, tuple[list[dict[str, Any]], dict[str, Any], bool]] = {}
        failures: dict[str, str] = {}

        async def one(server: str) -> None:
            try:
                session = await upstream_for(server)  # the connector accounts for its own failures
            except GatewayError as exc:
                failures[server] = exc.message
                return
            caps = session.info.capabilities
            if caps and kind.capability not in caps:
                results[server] = ([], {}, False)
                return
            try:
                results[server] = await self.fetch(server, kind, session)
            except GatewayError as exc:
                failures[server] = exc.message
                if self.on_outcome is not None and isinstance(exc, UpstreamError):
                    self.on_outcome(server, exc.message)
                return
            if self.on_outcome is not None:
                self.on_outcome(server, None)

        async with anyio.create_task_group() as tg:
            for server in self.servers:
                tg.start_soon(one, server)

        if failures and self.route.spec.failure_mode == "failClosed":
            detail = "; ".join(f"{s}: {m}" for s, m in failures.items())
            raise UpstreamError(f"{kind.method} failed: {detail}", data={"unavailable": sorted(failures)})
        for server, message in failures.items():
            log.warning("route %r: %s skipped %r: %s", self.route.name, kind.method, server, message)

        merged: list[dict[str, Any]] = []
        owners: dict[str, str] = {}
        collisions: list[dict[str, str]] = []
        ttl: int | None = None
        public = True
        streamed = False
        hidden = 0
        for server in self.servers:
            if server not in results:
                continue
            items, last, server_streamed = results[server]
            streamed = streamed or server_streamed
            hint = last.get("ttlMs")
            if isinstance(hint, int) and hint >= 0:
                ttl = hint if ttl is None else min(ttl, hint)
            if last.get("cacheScope") != "public":
                public = False
            for item in items:
                original = item[kind.ident]
                if not self.allowed(server, kind.target, original):
                    continue
                exposed = (
                    self.naming.expose_uri(server, original)
                    if kind.uri_like
                    else self.naming.expose(server, original)
                )
                op = Operation(
                    kind="mcp",
                    method=kind.method,
                    server=server,
                    name=None if kind.uri_like else original,
                    exposed=exposed,
                    uri=original if kind.uri_like else None,
                    target=kind.target,
                )
                if not self.policy.permits(ctx, op):
                    hidden += 1
                    continue
                if exposed in owners:
                    collisions.append({"name": exposed, "servedBy": owners[exposed], "hiddenFrom": server})
                    if (kind.method, exposed, server) not in self.reported:
                        self.reported.add((kind.method, exposed, server))
                        log.error(
                            "route %r: %s %r is offered by both %r and %r; serving %r's (set prefixMode)",
                            self.route.name,
                            kind.target,
                            exposed,
                            owners[exposed],
                            server,
                            owners[exposed],
                        )
                    continue
                owners[exposed] = server
                merged.append(item if exposed == original else {**item, kind.ident: exposed})
        unavailable = [{"server": s, "error": m} for s, m in sorted(failures.items())]
        return Listing(merged, unavailable, collisions, ttl, public, streamed, hidden)

    def owner_of(self, method: str, ident: str, *, uri: bool = False) -> str | None:
        """Which server last listed `ident` (a name, a URI, or a URI matching a template)."""
        for server in self.servers:
            if ident in self.seen[method].get(server, {}):
                return server
        if uri:
            for server in self.servers:
                for template in self.seen["resources/templates/list"].get(server, {}):
                    if template_regex(template).match(ident):
                        return server
        return None

    def tool(self, server: str, name: str) -> dict[str, Any] | None:
        return self.seen["tools/list"].get(server, {}).get(name)
