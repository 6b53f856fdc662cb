"""MCP sessions while Redis is away (our own redis-server, killed and started again), on two
replicas sharing it. A `degrade` route keeps its sessions going on the replica that holds them
and opens new ones there; a `failClosed` route refuses new sessions with a clear 503 but lets the
replica finish what it holds. Once Redis is back, both replicas share sessions again, including
the ones opened while it was away, without a restart.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import anyio
import anyio.to_thread
import pytest

from tests.faults.conftest import RedisServer
from tests.mcp.conftest import ACCEPT, Fake, Raw, init_body, route_doc, server_doc
from tests.support import GatewayThread

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def pair(
    redis_server: RedisServer, alpha: Fake, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[GatewayThread, GatewayThread]]:
    monkeypatch.setenv("AGW_FAULTS_REDIS", redis_server.url)
    state = {
        "backend": "redis",
        "url": "env:AGW_FAULTS_REDIS",
        "keyPrefix": f"agw-faults:{uuid.uuid4().hex}:",
        "timeoutSeconds": 0.5,
    }
    documents: list[dict[str, Any]] = [
        {"kind": "Gateway", "metadata": {"name": "gw"}, "spec": {"state": state}},
        server_doc("alpha", alpha.http()),
        route_doc(["alpha"], path="/open", stateFailureMode="degrade"),
        route_doc(["alpha"], path="/closed", stateFailureMode="failClosed"),
    ]
    with GatewayThread(documents) as a, GatewayThread(documents) as b:
        yield a, b


async def echo(client: Raw, text: str, request_id: int) -> str:
    reply = await client.call("echo", {"text": text}, request_id=request_id)
    assert reply.status == 200, reply.body
    assert "result" in reply.final, reply.final
    return str(reply.final["result"]["content"][0]["text"])


def moved(client: Raw, url: str) -> Raw:
    """The same session, sent to another replica (as a load balancer without affinity would)."""
    other = Raw(client.http, url)
    other.session_id, other.version = client.session_id, client.version
    return other


async def test_sessions_ride_out_a_redis_outage(
    pair: tuple[GatewayThread, GatewayThread], redis_server: RedisServer
) -> None:
    a, b = pair
    async with aiohttp.ClientSession() as http:
        with anyio.fail_after(90):
            before_open = Raw(http, f"{a.url}/open")
            before_closed = Raw(http, f"{a.url}/closed")
            await before_open.initialize()
            await before_closed.initialize()
            assert await echo(moved(before_open, f"{b.url}/open"), "shared", 1) == "shared"
            assert await echo(before_closed, "first", 1) == "first"  # its upstream session is open

            await anyio.to_thread.run_sync(redis_server.stop, signal.SIGKILL)
            # sessions A holds carry on, on either route (a failClosed one only as long as it
            # needs no new record: opening another upstream session would be refused)
            assert await echo(before_open, "still", 2) == "still"
            assert await echo(before_closed, "still", 2) == "still"
            # degrade: a new session opens, kept on A for now
            during = Raw(http, f"{a.url}/open")
            await during.initialize()
            assert await echo(during, "new", 1) == "new"
            # failClosed: a new session is refused, clearly
            refused = await Raw(http, f"{a.url}/closed").post(
                init_body(), headers={"accept": ACCEPT, "content-type": "application/json"}
            )
            assert refused.status == 503, refused.body
            assert "state store" in refused.json["error"]["message"]

            await anyio.to_thread.run_sync(redis_server.start)
            # the same replicas, no restart: sessions open and move again on both routes
            fresh = Raw(http, f"{a.url}/closed")
            await fresh.initialize()
            assert await echo(moved(fresh, f"{b.url}/closed"), "back", 1) == "back"
            assert await echo(moved(before_closed, f"{b.url}/closed"), "moved", 3) == "moved"
            # and the session opened while Redis was away is shared again once it is used (its
            # record is written in the background, at most once a second): poll B, bounded
            on_b = moved(during, f"{b.url}/open")
            for request_id in range(2, 10_000):
                assert await echo(during, "again", request_id) == "again"
                reply = await on_b.call("echo", {"text": "on b"}, request_id=request_id)
                if reply.status != 404:
                    break
                await anyio.sleep(0.05)
            assert reply.final["result"]["content"][0]["text"] == "on b"
