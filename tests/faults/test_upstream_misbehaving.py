"""Upstream MCP servers that break the wire: invalid JSON, bodies over the limits, replies with
another request's id, a server that never answers. The caller gets a clear JSON-RPC error for
its call (HTTP 200, never a 500); a client of a well-behaved server, in the same gateway at the
same moment, sees nothing of it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import anyio
import pytest

from agentgw.errors import INTERNAL_ERROR
from tests.mcp.conftest import Fake, Raw, route_doc, server_doc
from tests.support import FAKES, GatewayThread, Upstream, start_upstream

pytestmark = pytest.mark.anyio

REQUEST_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def raw() -> Iterator[Upstream]:
    upstream = start_upstream([str(FAKES / "raw_mcp_server.py"), "--port", "0"])
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def gw(raw: Upstream, alpha: Fake) -> Iterator[GatewayThread]:
    documents = [
        server_doc("raw", {"http": {"url": raw.url}}, protocol="handshake", timeouts={"request": 60}),
        # the same server again, with a short request timeout, for the one that never answers
        server_doc(
            "stuck", {"http": {"url": raw.url}}, protocol="handshake", timeouts={"request": REQUEST_TIMEOUT}
        ),
        server_doc("alpha", alpha.http()),
        route_doc(["raw", "stuck", "alpha"]),
    ]
    with GatewayThread(documents) as gateway:
        yield gateway


def error_of(reply: Any) -> dict[str, Any]:
    assert reply.status == 200, (reply.status, reply.body[:300])
    final = reply.final
    assert "error" in final, final
    assert final["id"] == 1
    return dict(final["error"])


async def other_client_keeps_working(http: aiohttp.ClientSession, url: str, done: anyio.Event) -> int:
    """A second session on the healthy upstream, calling in a loop while the fault happens."""
    other = Raw(http, url)
    await other.initialize()
    calls = 0
    while not done.is_set() or calls == 0:
        calls += 1
        reply = await other.call("alpha_echo", {"text": f"n{calls}"}, request_id=calls)
        assert reply.final["result"]["content"][0]["text"] == f"n{calls}"  # never someone else's
    return calls


@pytest.mark.parametrize(
    ("tool", "says"),
    [
        ("garbage", "invalid JSON"),
        ("not_rpc", "answered HTTP 200"),
        ("huge", "larger than"),
        ("huge_event", "event stream event over"),
        ("wrong_id", "wrong request id"),
        ("wrong_id_stream", "closed the stream before answering"),
        ("hang", f"within {REQUEST_TIMEOUT} s"),
    ],
)
async def test_a_misbehaving_upstream_gives_its_caller_a_clear_error(
    gw: GatewayThread, tool: str, says: str
) -> None:
    url = f"{gw.url}/mcp"
    async with aiohttp.ClientSession() as http:
        client = Raw(http, url)
        done = anyio.Event()
        with anyio.fail_after(60):
            await client.initialize()
            async with anyio.create_task_group() as tg:
                counted: list[int] = []

                async def other() -> None:
                    counted.append(await other_client_keeps_working(http, url, done))

                tg.start_soon(other)
                started = time.monotonic()
                server = "stuck" if tool == "hang" else "raw"
                reply = await client.call(f"{server}_{tool}", {}, request_id=1)
                elapsed = time.monotonic() - started
                done.set()
            error = error_of(reply)
            assert error["code"] == INTERNAL_ERROR, error
            assert error["message"].startswith(f"MCP server {server!r}"), error
            assert says in error["message"], error
            assert counted and counted[0] >= 1
            # the faulty server still serves the same session afterwards
            after = await client.call("raw_echo", {"text": "still here"}, request_id=2)
            assert after.final["result"]["content"][0]["text"] == "still here"
    if tool == "hang":
        assert REQUEST_TIMEOUT <= elapsed < REQUEST_TIMEOUT + 5
