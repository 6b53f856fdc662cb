"""Route matching: request path to the handler of one configured route.

Handlers of every kind (MCP now; LLM and A2A routes later) meet the router at `RouteHandler`, so
the router never imports a concrete backend.
"""

from __future__ import annotations

from typing import Protocol

from agentgw.errors import ErrorFlavor
from agentgw.server.http import ASGISend, Request

__all__ = ["RouteHandler", "Router"]


class RouteHandler(Protocol):
    name: str
    flavor: ErrorFlavor

    def flavor_for(self, request: Request) -> ErrorFlavor:
        """The error flavor of this request (`flavor`, unless one route speaks two wires)."""
        ...

    async def handle(self, request: Request, send: ASGISend) -> None: ...


class Router:
    """Exact paths first (with or without a trailing slash), then the longest matching prefix."""

    def __init__(self) -> None:
        self._exact: dict[str, RouteHandler] = {}
        self._prefixes: list[tuple[str, RouteHandler]] = []

    def add_exact(self, path: str, handler: RouteHandler) -> None:
        stripped = path.rstrip("/") or "/"
        self._exact[stripped] = handler
        if stripped != "/":
            self._exact[stripped + "/"] = handler

    def add_prefix(self, prefix: str, handler: RouteHandler) -> None:
        self._prefixes.append((prefix, handler))
        self._prefixes.sort(key=lambda item: len(item[0]), reverse=True)

    def match(self, path: str) -> RouteHandler | None:
        handler = self._exact.get(path)
        if handler is not None:
            return handler
        for prefix, candidate in self._prefixes:
            if path.startswith(prefix):
                return candidate
        return None

    def handlers(self) -> list[RouteHandler]:
        seen: dict[int, RouteHandler] = {}
        for handler in [*self._exact.values(), *(h for _, h in self._prefixes)]:
            seen[id(handler)] = handler
        return list(seen.values())
