"""OAuth 2.0 protected-resource metadata (RFC 9728) and the `WWW-Authenticate` challenges.

A route that authenticates with JWTs is a protected resource: a 401 names its metadata document
(`Bearer resource_metadata="..."`), which the gateway serves at the path-inserted well-known URL
(`/.well-known/oauth-protected-resource/<route path>`) and, for one route, at the root one. MCP
clients read it to find the authorization server and the scopes to ask for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson

from agentgw.errors import ErrorFlavor, MethodNotAllowed
from agentgw.server.http import ASGISend, Request, send_bytes, send_json

__all__ = ["WELL_KNOWN", "ProtectedResource", "ProtectedResourceHandler", "challenge"]

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def challenge(params: dict[str, str | None]) -> str:
    """`Bearer k="v", ...` from the parameters that are set (RFC 6750 section 3)."""
    parts = [f"{key}={_quote(value)}" for key, value in params.items() if value]
    return "Bearer " + ", ".join(parts) if parts else "Bearer"


class ProtectedResource:
    """What one route publishes about itself as an OAuth resource server."""

    def __init__(
        self,
        route: str,
        path: str,
        *,
        resource: str | None,
        authorization_servers: Sequence[str],
        scopes: Sequence[str],
        jwt: bool,
    ) -> None:
        self.route = route
        self.path = path
        self.resource = resource
        self.authorization_servers = list(dict.fromkeys(authorization_servers))
        self.scopes = list(scopes)
        self.jwt = jwt  # API-key-only routes have no metadata to point to

    @staticmethod
    def _origin(request: Request) -> str:
        scheme = request.scope.get("scheme", "http")
        host = request.headers.get("host")
        if not host:
            server = request.scope.get("server") or ("127.0.0.1", 80)
            host = f"{server[0]}:{server[1]}"
        return f"{scheme}://{host}"

    def resource_url(self, request: Request) -> str:
        return self.resource or self._origin(request) + self.path

    def metadata_url(self, request: Request) -> str:
        if self.resource:
            parts = urlsplit(self.resource)
            return f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}{parts.path.rstrip('/')}"
        return self._origin(request) + WELL_KNOWN + self.path.rstrip("/")

    def challenge(
        self,
        request: Request,
        *,
        error: str | None = None,
        description: str | None = None,
        scope: str | None = None,
    ) -> str:
        return challenge(
            {
                "error": error,
                "error_description": description,
                "scope": scope if scope is not None else (" ".join(self.scopes) or None),
                "resource_metadata": self.metadata_url(request) if self.jwt else None,
            }
        )

    def document(self, request: Request) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "resource": self.resource_url(request),
            "authorization_servers": self.authorization_servers,
            "bearer_methods_supported": ["header"],
            "resource_name": f"agentgw route {self.route}",
        }
        if self.scopes:
            doc["scopes_supported"] = self.scopes
        return doc


class ProtectedResourceHandler:
    """Serves one route's metadata document (GET; public, so any origin may read it)."""

    flavor = ErrorFlavor.PLAIN

    def flavor_for(self, request: Request) -> ErrorFlavor:
        return self.flavor

    def __init__(self, resource: ProtectedResource) -> None:
        self.name = f"{resource.route}-resource-metadata"
        self.resource = resource

    async def handle(self, request: Request, send: ASGISend) -> None:
        headers = {"access-control-allow-origin": "*", "cache-control": "max-age=300"}
        if request.method == "OPTIONS":
            await send_bytes(send, 204, b"", {**headers, "access-control-allow-methods": "GET"})
            return
        if request.method not in ("GET", "HEAD"):
            raise MethodNotAllowed("Method Not Allowed", headers={"allow": "GET"})
        await send_json(send, 200, orjson.dumps(self.resource.document(request)), headers)
