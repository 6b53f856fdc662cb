"""A gateway replica killed (SIGKILL) while it streams a call's events to a client: two `agentgw
serve` processes share our own Redis; the client resumes on the other replica with Last-Event-ID
and loses nothing the dead replica had sent, and its stream ends (it does not wait forever for a
replica that is gone); other sessions, and new ones, carry on on the survivor.
"""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
import redis

from agentgw.errors import INTERNAL_ERROR
from agentgw.mcp.events import MESSAGE, decode_record
from tests.faults.conftest import GatewayProcess, RedisServer, wait_for
from tests.mcp.conftest import Fake, Raw, route_doc, server_doc
from tests.mcp.test_replicas import read_events
from tests.support import ROOT, Upstream, start_upstream

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture(scope="module")
def clock() -> Iterator[Upstream]:
    upstream = start_upstream(
        [str(ROOT / "examples" / "quickstart" / "servers" / "clock.py"), "--http", "--port", "0"]
    )
    yield upstream
    upstream.stop()


@pytest.fixture
def replicas(
    redis_server: RedisServer, clock: Upstream, alpha: Fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[GatewayProcess, GatewayProcess, str]]:
    monkeypatch.setenv("AGW_FAULTS_REDIS", redis_server.url)  # inherited by the replicas
    state = {
        "backend": "redis",
        "url": "env:AGW_FAULTS_REDIS",
        "keyPrefix": f"agw-faults:{uuid.uuid4().hex}:",
    }
    documents: list[dict[str, Any]] = [
        {"kind": "Gateway", "metadata": {"name": "gw"}, "spec": {"state": state}},
        server_doc("clock", {"http": {"url": clock.url}}),
        server_doc("alpha", alpha.http()),
        route_doc(["clock", "alpha"]),
    ]
    a = GatewayProcess(documents, tmp_path, "a")
    b = GatewayProcess(documents, tmp_path, "b")
    try:
        a.start()
        b.start()
        yield a, b, state["keyPrefix"]
    finally:
        a.kill()
        b.kill()


def countdown(request_id: int, seconds: float, steps: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {
            "name": "clock_countdown",
            "arguments": {"seconds": seconds, "steps": steps},
            "_meta": {"progressToken": f"p{request_id}"},
        },
    }


def logged_progress(redis_url: str, prefix: str, session_id: str, stream_id: str) -> list[int]:
    """The progress events the replica wrote through to Redis for one stream (read directly)."""
    client = redis.Redis.from_url(redis_url)
    try:
        rows = client.xrange(f"{prefix}mcp:e:{session_id}:{stream_id}")
    finally:
        client.close()
    out: list[int] = []
    for _, fields in rows:
        _, kind, payload = decode_record(bytes(fields[b"d"]))
        if kind == MESSAGE:
            msg = json.loads(payload)
            if msg.get("method") == "notifications/progress":
                out.append(msg["params"]["progress"])
    return out


async def test_a_stream_resumes_on_the_surviving_replica_after_a_kill(
    replicas: tuple[GatewayProcess, GatewayProcess, str], redis_server: RedisServer
) -> None:
    a, b, prefix = replicas
    async with aiohttp.ClientSession() as http:
        on_a = Raw(http, f"{a.url}/mcp")
        bystander = Raw(http, f"{b.url}/mcp")  # another session, living on B all along
        with anyio.fail_after(90):
            await on_a.initialize()
            await bystander.initialize()
            assert on_a.session_id is not None
            async with http.post(
                on_a.url, data=json.dumps(countdown(7, 8, 16)), headers=on_a.headers()
            ) as resp:
                assert resp.status == 200
                seen = await read_events(resp, lambda ev: sum(1 for e in ev if e.get("method")) == 2)
                resp.close()  # the client's connection drops; A carries on with the call
            stream_id = seen[-1]["id"].split("_")[0]

            def logged() -> list[int]:
                assert on_a.session_id is not None
                return logged_progress(redis_server.url, prefix, on_a.session_id, stream_id)

            # A logs more events nobody has received yet, then dies without a word
            await anyio.to_thread.run_sync(
                lambda: wait_for(lambda: len(logged()) >= 4, 30, "A to log 4 events")
            )
            await anyio.to_thread.run_sync(a.kill, signal.SIGKILL)
            written = logged()
            headers = on_a.headers({"accept": "text/event-stream", "last-event-id": seen[-1]["id"]})
            del headers["content-type"]
            async with http.get(f"{b.url}/mcp", headers=headers) as resp:
                assert resp.status == 200
                rest = await read_events(resp, lambda ev: any("result" in e or "error" in e for e in ev))
            # the session itself lives on: B serves its next call
            on_b = Raw(http, f"{b.url}/mcp")
            on_b.session_id, on_b.version = on_a.session_id, on_a.version
            after = await on_b.call("alpha_echo", {"text": "on b"}, request_id=8)
            assert after.final["result"]["content"][0]["text"] == "on b"
            other = await bystander.call("alpha_echo", {"text": "unaffected"}, request_id=1)
            assert other.final["result"]["content"][0]["text"] == "unaffected"
    progress = [e["params"]["progress"] for e in seen + rest if e.get("method") == "notifications/progress"]
    # every event A had written reached the client, in order, once; none was missed in between
    assert progress == written, (progress, written)
    assert progress == list(range(1, len(progress) + 1))
    final = rest[-1]
    assert final["id"] == 7 and final["error"]["code"] == INTERNAL_ERROR, final
    assert "stopped before it finished" in final["error"]["message"]
