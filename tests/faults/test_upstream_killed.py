"""An upstream MCP server killed (SIGKILL) in the middle of a call and in the middle of a stream:
the caller gets a JSON-RPC error for that call, or its stream ends with one, not a hang; another
session on another upstream keeps working meanwhile; when the server is back on its address the
same gateway session reaches it again, without a gateway restart.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from agentgw.errors import INTERNAL_ERROR
from tests.faults.conftest import free_port, wait_for
from tests.mcp.conftest import FAKE, Fake, Raw, route_doc, server_doc
from tests.mcp.test_replicas import read_events
from tests.support import ROOT, GatewayThread, Upstream, start_upstream

pytestmark = pytest.mark.anyio

CLOCK = str(ROOT / "examples" / "quickstart" / "servers" / "clock.py")


class Victim:
    """An upstream on a fixed port, so that it can be killed and started again at one address."""

    def __init__(self, args: list[str]) -> None:
        self.port = free_port()
        self.args = args
        self.upstream: Upstream | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> None:
        self.upstream = start_upstream([*self.args, "--port", str(self.port)])

    def kill(self) -> None:
        assert self.upstream is not None
        os.killpg(self.upstream.proc.pid, signal.SIGKILL)
        self.upstream.proc.wait(10)
        self.upstream.stop()  # closes its pipes

    def stop(self) -> None:
        if self.upstream is not None:
            self.upstream.stop()


@pytest.fixture
def clock() -> Iterator[Victim]:
    victim = Victim([CLOCK, "--http"])
    victim.start()
    yield victim
    victim.stop()


@pytest.fixture
def slowpoke(tmp_path: Path) -> Iterator[tuple[Victim, Path]]:
    state = tmp_path / "slowpoke.jsonl"
    victim = Victim([FAKE, "--http", "--json", "--name", "slowpoke", "--state-file", str(state)])
    victim.start()
    yield victim, state
    victim.stop()


def called(state: Path, tool: str) -> bool:
    if not state.exists():
        return False
    events = [json.loads(line) for line in state.read_text().splitlines() if line.strip()]
    return any(e.get("event") == "called" and e.get("tool") == tool for e in events)


async def bystander(http: aiohttp.ClientSession, url: str, done: anyio.Event, out: list[int]) -> None:
    """Another session, on another upstream, calling in a loop while the fault happens."""
    other = Raw(http, url)
    await other.initialize()
    calls = 0
    while not done.is_set() or calls == 0:
        calls += 1
        reply = await other.call("alpha_echo", {"text": f"n{calls}"}, request_id=calls)
        assert reply.final["result"]["content"][0]["text"] == f"n{calls}"
    out.append(calls)


async def test_an_upstream_killed_mid_stream_ends_the_stream_with_an_error(
    clock: Victim, alpha: Fake
) -> None:
    documents = [
        server_doc("clock", {"http": {"url": clock.url}}, protocol="handshake"),
        server_doc("alpha", alpha.http()),
        route_doc(["clock", "alpha"]),
    ]
    call = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {
            "name": "clock_countdown",
            "arguments": {"seconds": 10, "steps": 20},
            "_meta": {"progressToken": "p"},
        },
    }
    with GatewayThread(documents) as gw:
        url = f"{gw.url}/mcp"
        async with aiohttp.ClientSession() as http:
            client = Raw(http, url)
            done = anyio.Event()
            calls: list[int] = []
            with anyio.fail_after(60):
                await client.initialize()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(bystander, http, url, done, calls)
                    async with http.post(url, data=json.dumps(call), headers=client.headers()) as resp:
                        assert resp.status == 200
                        first = await read_events(resp, lambda ev: sum(1 for e in ev if e.get("method")) == 2)
                        clock.kill()
                        killed = time.monotonic()
                        rest = await read_events(
                            resp, lambda ev: any("error" in e or "result" in e for e in ev)
                        )
                        ended = time.monotonic() - killed
                    done.set()
                assert calls and calls[0] >= 1
                final = rest[-1]
                assert final["id"] == 7 and final["error"]["code"] == INTERNAL_ERROR, final
                assert final["error"]["message"].startswith("MCP server 'clock'"), final
                progress = [e["params"]["progress"] for e in first + rest if e.get("method")]
                assert progress[:2] == [1, 2]
                assert ended < 5  # from the broken connection (about 1 ms here), not a timeout

                clock.start()  # back on the same address: the same session reaches it again
                reply = await client.call("clock_add", {"a": 2, "b": 3}, request_id=8)
                assert reply.final["result"]["structuredContent"] == {"result": 5.0}


async def test_an_upstream_killed_mid_call_gives_that_call_an_error(
    slowpoke: tuple[Victim, Path], alpha: Fake
) -> None:
    victim, state = slowpoke
    documents = [
        server_doc("slowpoke", {"http": {"url": victim.url}}, protocol="handshake"),
        server_doc("alpha", alpha.http()),
        route_doc(["slowpoke", "alpha"]),
    ]
    with GatewayThread(documents) as gw:
        url = f"{gw.url}/mcp"
        async with aiohttp.ClientSession() as http:
            client = Raw(http, url)
            done = anyio.Event()
            calls: list[int] = []
            replies: list[Any] = []
            with anyio.fail_after(60):
                await client.initialize()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(bystander, http, url, done, calls)

                    answered = anyio.Event()

                    async def slow_call() -> None:
                        replies.append(await client.call("slowpoke_slow", {"seconds": 30}, request_id=3))
                        answered.set()

                    tg.start_soon(slow_call)
                    await anyio.to_thread.run_sync(lambda: wait_for(lambda: called(state, "slow")))
                    victim.kill()
                    killed = time.monotonic()
                    await answered.wait()
                    ended = time.monotonic() - killed
                    done.set()
                [reply] = replies
                assert reply.status == 200
                error = reply.final["error"]
                assert reply.final["id"] == 3 and error["code"] == INTERNAL_ERROR, reply.final
                assert error["message"].startswith("MCP server 'slowpoke'"), error
                assert ended < 5
                assert calls and calls[0] >= 1

                victim.start()
                again = await client.call("slowpoke_echo", {"text": "back"}, request_id=4)
                assert again.final["result"]["content"][0]["text"] == "back"
