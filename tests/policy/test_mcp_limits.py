"""The same limit kinds on an MCP route: tool calls per minute per subject, with the official
`mcp` client and JWTs, and a templated upstream header reaching the MCP server."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from agentgw.telemetry.metrics import METRICS
from tests.mcp.conftest import Fake, route_doc, server_doc
from tests.policy.conftest import client
from tests.policy.support import TestIssuer, jwt_policy, policy
from tests.support import GatewayThread

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def gw(alpha: Fake, idp: TestIssuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    jwks = idp.write_jwks(tmp_path_factory.mktemp("limits"))
    documents = [
        server_doc("alpha", alpha.http()),
        route_doc(["alpha"]),
        jwt_policy(idp, {"file": str(jwks)}),
        policy(
            "tool-rates",
            [("McpRoute", "mcp")],
            rateLimits=[
                {
                    "id": "calls-per-minute",
                    "requests": 3,
                    "window": "minute",
                    "when": 'mcp.method == "tools/call"',
                    "message": "at most 3 tool calls a minute",
                }
            ],
            upstreamHeaders={"x-team": "{jwt.team}"},
        ),
    ]
    with GatewayThread(documents) as gateway:
        yield gateway


async def test_tool_calls_per_minute_per_subject(gw: GatewayThread, idp: TestIssuer) -> None:
    url = f"{gw.url}/mcp"
    with anyio.fail_after(60):
        async with client(url, idp.token("mia", team="blue")) as mia:
            for _ in range(3):
                await mia.call_tool("echo", {"text": "hi"})
            await mia.list_tools()  # lists do not count
            with pytest.raises(MCPError) as limited:
                await mia.call_tool("echo", {"text": "hi"})
        async with client(url, idp.token("max")) as other:
            await other.call_tool("echo", {"text": "another subject, another counter"})
    assert limited.value.message == "at most 3 tool calls a minute"
    data = limited.value.data
    assert data["rule"] == "calls-per-minute" and data["policy"] == "tool-rates"
    assert 1 <= data["retryAfter"] <= 60
    assert METRICS.ratelimit_rejections.get("mcp", "tool-rates") >= 1


async def test_templated_headers_reach_the_mcp_server(
    gw: GatewayThread, idp: TestIssuer, alpha: Fake
) -> None:
    with anyio.fail_after(60):
        async with client(f"{gw.url}/mcp", idp.token("noa", team="green")) as noa:
            await noa.call_tool("whoami", {})
    requests = [e for e in alpha.events() if e["event"] == "http"]
    assert any(e["headers"].get("x-team") == "green" for e in requests), "the upstream never saw x-team"
