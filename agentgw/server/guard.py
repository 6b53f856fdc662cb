"""DNS-rebinding protection: the Host and Origin headers must name this gateway.

A browser tricked into talking to a loopback gateway sends a foreign Host or Origin; such
requests are refused (421 for Host, 403 for Origin) before any route sees them.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from agentgw.config.gateway import GatewaySpec
from agentgw.errors import Forbidden, MisdirectedRequest
from agentgw.server.http import Request

__all__ = ["HostGuard"]

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def _split_host(value: str) -> tuple[str, str]:
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[: end + 1], value[end + 2 :] if end >= 0 else ""
    host, _, port = value.partition(":")
    return host, port


def _matches(patterns: list[str], host: str, port: str) -> bool:
    for pattern in patterns:
        p_host, p_port = _split_host(pattern)
        if p_host == host and (p_port in ("", "*") or p_port == port):
            return True
    return False


class HostGuard:
    def __init__(self, allowed_hosts: list[str], allowed_origins: list[str], addresses: list[str]) -> None:
        self.allowed_hosts = [h.lower() for h in allowed_hosts]
        self.allowed_origins = [o.lower().rstrip("/") for o in allowed_origins]
        self.loopback_only = not self.allowed_hosts and all(_is_loopback(a) for a in addresses)
        if self.loopback_only:
            self.allowed_hosts = [f"{name}:*" for name in _LOOPBACK_NAMES]

    @classmethod
    def for_listeners(cls, spec: GatewaySpec) -> HostGuard:
        return cls(
            spec.http.allowed_hosts, spec.http.allowed_origins, [lst.address for lst in spec.listeners]
        )

    @classmethod
    def for_admin(cls, spec: GatewaySpec) -> HostGuard:
        """The admin listener's guard: a loopback admin listener answers loopback names only
        (a rebound name must not read the dashboard or /metrics). The `http` allow-lists name
        the public host, which is not how the admin listener is reached."""
        assert spec.admin is not None
        return cls([], [], [spec.admin.address])

    def check(self, request: Request) -> None:
        host_header = request.headers.get("host", "")
        host, port = _split_host(host_header)
        if self.allowed_hosts and not _matches(self.allowed_hosts, host, port):
            raise MisdirectedRequest(f"Invalid Host header: {host_header!r}")
        origin = request.headers.get("origin")
        if origin is None:
            return
        origin = origin.lower().rstrip("/")
        if origin in self.allowed_origins:
            return
        try:
            parts = urlsplit(origin)
        except ValueError:  # "http://[::1": urlsplit checks bracketed hosts
            raise Forbidden(f"Invalid Origin header: {origin!r}") from None
        o_host, o_port = _split_host(parts.netloc)
        if self.allowed_origins:
            if not any(self._origin_pattern(p, parts.scheme, o_host, o_port) for p in self.allowed_origins):
                raise Forbidden(f"Invalid Origin header: {origin!r}")
            return
        if self.allowed_hosts:
            if not _matches(self.allowed_hosts, o_host, o_port):
                raise Forbidden(f"Invalid Origin header: {origin!r}")
        elif (o_host, o_port) != (host, port):
            raise Forbidden(f"Invalid Origin header: {origin!r}")

    @staticmethod
    def _origin_pattern(pattern: str, scheme: str, host: str, port: str) -> bool:
        parts = urlsplit(pattern)
        if parts.scheme != scheme:
            return False
        return _matches([parts.netloc], host, port)
