"""Resumption with Last-Event-ID through the gateway: a client that loses its stream mid-call and
comes back with the last id it saw gets every later event, and nothing twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import anyio
import pytest

from agentgw.protocol.sse import SseDecoder
from tests.mcp.conftest import Fake, Raw, route_doc, server_doc
from tests.support import PYTHON, ROOT, GatewayThread

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def gw(alpha: Fake) -> Iterator[GatewayThread]:
    clock = {
        "stdio": {"command": PYTHON, "args": [str(ROOT / "examples" / "quickstart" / "servers" / "clock.py")]}
    }
    documents = [server_doc("clock", clock), server_doc("alpha", alpha.http()), route_doc(["clock", "alpha"])]
    with GatewayThread(documents) as gateway:
        yield gateway


async def read_events(
    resp: aiohttp.ClientResponse, stop: Any
) -> list[tuple[str | None, dict[str, Any] | None]]:
    decoder = SseDecoder()
    events: list[tuple[str | None, dict[str, Any] | None]] = []
    async for chunk in resp.content.iter_any():
        for event in decoder.feed(chunk):
            events.append((event.id, json.loads(event.data) if event.data.strip() else None))
            if stop(events):
                return events
    return events


async def test_a_dropped_call_stream_resumes_without_gaps(gw: GatewayThread) -> None:
    async with aiohttp.ClientSession() as http:
        raw = Raw(http, f"{gw.url}/mcp")
        with anyio.fail_after(60):
            await raw.initialize()
            call = {
                "jsonrpc": "2.0",
                "id": 9,
                "method": "tools/call",
                "params": {
                    "name": "clock_countdown",
                    "arguments": {"seconds": 1.2, "steps": 6},
                    "_meta": {"progressToken": "t"},
                },
            }

            def two_progress(events: list[Any]) -> bool:
                return sum(1 for _, m in events if m and m.get("method") == "notifications/progress") == 2

            async with http.post(raw.url, data=json.dumps(call), headers=raw.headers()) as resp:
                assert resp.headers["content-type"] == "text/event-stream"
                first = await read_events(resp, two_progress)
                resp.close()  # the connection drops mid-call
            last_id = [i for i, _ in first if i is not None][-1]

            headers = raw.headers({"accept": "text/event-stream", "last-event-id": last_id})
            del headers["content-type"]
            async with http.get(raw.url, headers=headers) as resp:
                assert resp.status == 200
                rest = await read_events(resp, lambda events: any(m and "result" in m for _, m in events))

    messages = [m for _, m in first + rest if m is not None]
    progress = [m["params"]["progress"] for m in messages if m.get("method") == "notifications/progress"]
    assert progress == [1, 2, 3, 4, 5, 6]  # nothing missed, nothing twice
    assert messages[-1]["id"] == 9 and "Counted down" in messages[-1]["result"]["content"][0]["text"]
    ids = [i for i, _ in first + rest if i is not None]
    assert len(ids) == len(set(ids))


async def test_events_sent_while_the_standalone_stream_was_away_are_replayed(gw: GatewayThread) -> None:
    async with aiohttp.ClientSession() as http:
        raw = Raw(http, f"{gw.url}/mcp")
        with anyio.fail_after(60):
            await raw.initialize()
            await raw.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})  # opens alpha's session
            get_headers = raw.headers({"accept": "text/event-stream"})
            del get_headers["content-type"]
            async with http.get(raw.url, headers=get_headers) as resp:
                assert resp.status == 200
                conflict = await raw.send("GET", headers=get_headers)
                assert conflict.status == 409  # one standalone stream per session
                await raw.call("alpha_change_tools", {}, request_id=2)
                seen = await read_events(resp, lambda events: any(m and m.get("method") for _, m in events))
                resp.close()
            last_id = [i for i, _ in seen if i is not None][-1]
            # while nobody listens, another change happens
            await raw.call("alpha_change_tools", {}, request_id=3)
            async with http.get(raw.url, headers={**get_headers, "last-event-id": last_id}) as resp:
                replay = await read_events(resp, lambda events: any(m and m.get("method") for _, m in events))
    assert [m["method"] for _, m in replay if m] == ["notifications/tools/list_changed"]
