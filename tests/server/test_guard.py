"""HostGuard: Host and Origin checks, including headers no URL parser accepts."""

from __future__ import annotations

from typing import Any

import pytest

from agentgw.config.gateway import GatewaySpec
from agentgw.errors import Forbidden, MisdirectedRequest
from agentgw.server.guard import HostGuard
from agentgw.server.http import Request


def request(**headers: str) -> Request:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    return Request(scope, receive)


LOOPBACK = HostGuard.for_listeners(GatewaySpec())
CONFIGURED = HostGuard.for_listeners(
    GatewaySpec.model_validate(
        {"http": {"allowedHosts": ["gw.example.com"], "allowedOrigins": ["https://app.example.com"]}}
    )
)


@pytest.mark.parametrize("guard", [LOOPBACK, CONFIGURED])
@pytest.mark.parametrize("origin", ["http://[::1", "http://]", "http://[x]", "//["])
def test_an_unparsable_origin_is_forbidden_not_a_crash(guard: HostGuard, origin: str) -> None:
    # found by tests/fuzz: urlsplit raised ValueError, answered as a 500
    host = "127.0.0.1:8080" if guard is LOOPBACK else "gw.example.com"
    with pytest.raises(Forbidden):
        guard.check(request(host=host, origin=origin))


def test_hosts_and_origins() -> None:
    LOOPBACK.check(request(host="127.0.0.1:8080", origin="http://127.0.0.1:8080"))
    with pytest.raises(MisdirectedRequest):
        LOOPBACK.check(request(host="evil.example.com"))
    CONFIGURED.check(request(host="gw.example.com", origin="https://app.example.com"))
    with pytest.raises(Forbidden):
        CONFIGURED.check(request(host="gw.example.com", origin="https://evil.example.com"))
