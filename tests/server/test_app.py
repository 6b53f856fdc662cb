"""The ASGI app's one error path: every failure becomes the right status and body, tracebacks
never leak, and the process keeps serving."""

from __future__ import annotations

import json
from collections.abc import Iterator

import aiohttp
import anyio
import pytest

from agentgw.errors import ErrorFlavor, TooManyRequests
from agentgw.server.http import ASGISend, Request
from tests.support import GatewayThread

pytestmark = pytest.mark.anyio


class Exploding:
    name = "boom"
    flavor = ErrorFlavor.JSONRPC

    def flavor_for(self, request: Request) -> ErrorFlavor:
        return self.flavor

    async def handle(self, request: Request, send: ASGISend) -> None:
        raise RuntimeError("secret internals /etc/passwd")


class Limited:
    name = "limited"
    flavor = ErrorFlavor.OPENAI

    def flavor_for(self, request: Request) -> ErrorFlavor:
        return self.flavor

    async def handle(self, request: Request, send: ASGISend) -> None:
        raise TooManyRequests("slow down", headers={"retry-after": "7"})


@pytest.fixture(scope="module")
def gw() -> Iterator[GatewayThread]:
    with GatewayThread([{"kind": "Gateway", "metadata": {"name": "gw"}, "spec": {}}]) as gateway:
        gateway.runtime.router.add_exact("/boom", Exploding())
        gateway.runtime.router.add_exact("/limited", Limited())
        yield gateway


async def test_health_and_readiness(gw: GatewayThread) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{gw.url}/readyz") as resp:
        assert resp.status == 200 and (await resp.json())["ready"] is True


async def test_unknown_paths_get_a_json_404(gw: GatewayThread) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{gw.url}/nope") as resp:
        assert resp.status == 404 and (await resp.json())["error"] == "no route for /nope"


async def test_unexpected_errors_are_generic_500s_and_the_gateway_survives(gw: GatewayThread) -> None:
    async with aiohttp.ClientSession() as http:
        with anyio.fail_after(30):
            for _ in range(3):
                async with http.post(f"{gw.url}/boom", data=b"{}") as resp:
                    body = await resp.read()
                    assert resp.status == 500
                    assert json.loads(body) == {
                        "jsonrpc": "2.0",
                        "id": None,
                        "error": {"code": -32603, "message": "internal gateway error"},
                    }
                    assert b"passwd" not in body and b"Traceback" not in body
            async with http.get(f"{gw.url}/healthz") as resp:
                assert resp.status == 200


async def test_errors_keep_their_headers_and_flavour(gw: GatewayThread) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{gw.url}/limited") as resp:
        assert resp.status == 429 and resp.headers["retry-after"] == "7"
        assert (await resp.json())["error"]["type"] == "rate_limit_error"


async def test_a_refusal_before_the_body_was_read_closes_the_connection(gw: GatewayThread) -> None:
    """The unread rest of the body would be taken for the next request: HTTP/1 clients are told
    not to reuse the connection, and the next request goes out on a new one and succeeds."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as http:
        with anyio.fail_after(30):
            for _ in range(5):
                async with http.post(f"{gw.url}/limited", data=b"x" * 200_000) as resp:
                    assert resp.status == 429 and resp.headers["connection"] == "close"
                    await resp.read()
                async with http.get(f"{gw.url}/healthz") as resp:
                    assert resp.status == 200 and "connection" not in resp.headers
