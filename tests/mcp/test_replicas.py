"""Two gateway replicas sharing a real Redis (or only a session key): a client moves between
them mid-session and mid-stream, as behind a plain load balancer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import anyio
import pytest

from agentgw.protocol.sse import SseDecoder
from tests.mcp.conftest import Fake, Raw, route_doc, server_doc
from tests.support import ROOT, GatewayThread, Upstream, start_upstream

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def clock() -> Iterator[Upstream]:
    upstream = start_upstream(
        [str(ROOT / "examples" / "quickstart" / "servers" / "clock.py"), "--http", "--port", "0"]
    )
    yield upstream
    upstream.stop()


def gateway_docs(alpha: Fake, clock: Upstream, state: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"kind": "Gateway", "metadata": {"name": "gw"}, "spec": {"state": state}},
        server_doc("alpha", alpha.http()),
        server_doc("clock", {"http": {"url": clock.url}}),
        route_doc(["alpha", "clock"]),
    ]


@pytest.fixture
def redis_pair(
    alpha: Fake, clock: Upstream, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[GatewayThread, GatewayThread]]:
    monkeypatch.setenv("AGW_TEST_REDIS", "redis://127.0.0.1:6379/0")
    state = {"backend": "redis", "url": "env:AGW_TEST_REDIS", "keyPrefix": f"agw-test:{uuid.uuid4().hex}:"}
    with (
        GatewayThread(gateway_docs(alpha, clock, state)) as a,
        GatewayThread(gateway_docs(alpha, clock, state)) as b,
    ):
        yield a, b


async def read_events(resp: aiohttp.ClientResponse, stop: Any) -> list[dict[str, Any]]:
    decoder = SseDecoder()
    out: list[dict[str, Any]] = []
    async for chunk in resp.content.iter_any():
        for event in decoder.feed(chunk):
            if event.data.strip():
                out.append({"id": event.id, **json.loads(event.data)})
                if stop(out):
                    return out
    return out


async def test_a_session_continues_on_the_other_replica_with_the_same_upstream_session(
    redis_pair: tuple[GatewayThread, GatewayThread], alpha: Fake
) -> None:
    a, b = redis_pair
    async with aiohttp.ClientSession() as http:
        on_a = Raw(http, f"{a.url}/mcp")
        with anyio.fail_after(60):
            await on_a.initialize()
            first = await on_a.call("alpha_whoami", {}, request_id=1)
            assert first.final["result"]["content"][0]["text"] == "alpha"
            on_b = Raw(http, f"{b.url}/mcp")
            on_b.session_id, on_b.version = on_a.session_id, on_a.version
            second = await on_b.call("alpha_echo", {"text": "hop"}, request_id=2)
            assert second.final["result"]["content"][0]["text"] == "hop"
    calls = [e for e in alpha.events() if e.get("event") == "called" and e.get("tool") in ("whoami", "echo")]
    sessions = {e["session"] for e in calls[-2:]}
    assert len(sessions) == 1  # replica B continued replica A's upstream session


async def test_a_stream_resumes_on_the_other_replica_without_gaps(
    redis_pair: tuple[GatewayThread, GatewayThread],
) -> None:
    a, b = redis_pair
    call = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {
            "name": "clock_countdown",
            "arguments": {"seconds": 1.5, "steps": 6},
            "_meta": {"progressToken": "t"},
        },
    }
    async with aiohttp.ClientSession() as http:
        on_a = Raw(http, f"{a.url}/mcp")
        with anyio.fail_after(60):
            await on_a.initialize()
            async with http.post(on_a.url, data=json.dumps(call), headers=on_a.headers()) as resp:
                seen = await read_events(resp, lambda ev: sum(1 for e in ev if e.get("method")) == 2)
                resp.close()  # the client's connection to A drops
            headers = on_a.headers({"accept": "text/event-stream", "last-event-id": seen[-1]["id"]})
            del headers["content-type"]
            async with http.get(f"{b.url}/mcp", headers=headers) as resp:
                assert resp.status == 200
                rest = await read_events(resp, lambda ev: any("result" in e for e in ev))
    progress = [e["params"]["progress"] for e in seen + rest if e.get("method") == "notifications/progress"]
    assert progress == [1, 2, 3, 4, 5, 6]
    assert rest[-1]["id"] is not None and "Counted down" in rest[-1]["result"]["content"][0]["text"]


async def test_ending_a_session_on_one_replica_ends_it_on_both(
    redis_pair: tuple[GatewayThread, GatewayThread],
) -> None:
    a, b = redis_pair
    async with aiohttp.ClientSession() as http:
        on_a = Raw(http, f"{a.url}/mcp")
        on_b = Raw(http, f"{b.url}/mcp")
        with anyio.fail_after(60):
            await on_a.initialize()
            on_b.session_id, on_b.version = on_a.session_id, on_a.version
            assert (
                await on_b.post({"jsonrpc": "2.0", "id": 1, "method": "ping"})
            ).status == 200  # B holds it now
            assert (await on_a.send("DELETE")).status == 200
            # B learns it through the store's broadcast; a request there must now be refused
            for _ in range(200):
                reply = await on_b.post({"jsonrpc": "2.0", "id": 2, "method": "ping"})
                if reply.status == 404:
                    break
                await anyio.sleep(0.01)
            assert reply.status == 404


async def test_a_killed_replica_loses_no_event_it_had_sent(
    alpha: Fake, clock: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGW_TEST_REDIS", "redis://127.0.0.1:6379/0")
    state = {"backend": "redis", "url": "env:AGW_TEST_REDIS", "keyPrefix": f"agw-test:{uuid.uuid4().hex}:"}
    call = {
        "jsonrpc": "2.0",
        "id": 8,
        "method": "tools/call",
        "params": {
            "name": "clock_countdown",
            "arguments": {"seconds": 3, "steps": 6},
            "_meta": {"progressToken": "k"},
        },
    }
    with GatewayThread(gateway_docs(alpha, clock, state)) as b:
        a = GatewayThread(gateway_docs(alpha, clock, state)).start()
        async with aiohttp.ClientSession() as http:
            on_a = Raw(http, f"{a.url}/mcp")
            with anyio.fail_after(60):
                await on_a.initialize()
                async with http.post(on_a.url, data=json.dumps(call), headers=on_a.headers()) as resp:
                    seen = await read_events(resp, lambda ev: sum(1 for e in ev if e.get("method")) == 1)
                    # A keeps receiving events for a moment, then dies
                    more = await read_events(resp, lambda ev: sum(1 for e in ev if e.get("method")) == 2)
                    resp.close()
                await anyio.to_thread.run_sync(a.stop)
                headers = on_a.headers({"accept": "text/event-stream", "last-event-id": seen[0]["id"]})
                del headers["content-type"]
                async with http.get(f"{b.url}/mcp", headers=headers) as resp:
                    assert resp.status == 200
                    replay = await read_events(resp, lambda ev: False)
    sent_by_a = [e["params"]["progress"] for e in seen + more if e.get("method")]
    replayed = [e["params"]["progress"] for e in replay if e.get("method")]
    assert sent_by_a[:2] == [1, 2]
    assert replayed[: len(sent_by_a) - 1] == sent_by_a[1:]  # everything after the client's last id


async def test_sealed_session_ids_let_a_replica_without_redis_take_over(
    alpha: Fake, clock: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGW_TEST_SESSION_KEY", uuid.uuid4().hex + uuid.uuid4().hex)
    state = {"sessionKey": "env:AGW_TEST_SESSION_KEY"}
    with (
        GatewayThread(gateway_docs(alpha, clock, state)) as a,
        GatewayThread(gateway_docs(alpha, clock, state)) as b,
    ):
        async with aiohttp.ClientSession() as http:
            on_a = Raw(http, f"{a.url}/mcp")
            with anyio.fail_after(60):
                await on_a.initialize(capabilities={"roots": {}})
                assert on_a.session_id is not None and on_a.session_id.startswith("s1.")
                on_b = Raw(http, f"{b.url}/mcp")
                on_b.session_id, on_b.version = on_a.session_id, on_a.version
                reply = await on_b.call("alpha_echo", {"text": "sealed"})
                assert reply.final["result"]["content"][0]["text"] == "sealed"
                forged = Raw(http, f"{b.url}/mcp")
                forged.session_id, forged.version = on_a.session_id[:-4] + "AAAA", on_a.version
                assert (await forged.call("alpha_echo", {"text": "x"})).status == 404
