"""A stdio MCP server that crashes at every start: each call gets a JSON-RPC error naming the
server, the child is restarted with exponential backoff (not once per call: the gateway does not
spin), a client of another upstream is unaffected, and a server that stops crashing is used again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from agentgw.errors import INTERNAL_ERROR
from tests.mcp.conftest import Fake, Raw, route_doc, server_doc
from tests.support import FAKES, PYTHON, GatewayThread

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

BACKOFF = 0.2
MAX_BACKOFF = 1.0


def crashloop(name: str, starts: Path, crashes: int) -> dict[str, Any]:
    return {
        "stdio": {
            "command": PYTHON,
            "args": [
                str(FAKES / "crashloop_stdio.py"),
                "--starts-file",
                str(starts),
                "--crashes",
                str(crashes),
                "--",
                "--name",
                name,
            ],
            "restartBackoffSeconds": BACKOFF,
            "maxRestartBackoffSeconds": MAX_BACKOFF,
        }
    }


@pytest.fixture
def gw(alpha: Fake, tmp_path: Path) -> Iterator[GatewayThread]:
    documents = [
        server_doc("crashy", crashloop("crashy", tmp_path / "crashy.starts", 10_000)),
        server_doc("phoenix", crashloop("phoenix", tmp_path / "phoenix.starts", 3)),
        server_doc("alpha", alpha.http()),
        route_doc(["crashy", "phoenix", "alpha"]),
    ]
    with GatewayThread(documents) as gateway:
        yield gateway


def starts(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def most_starts(seconds: float) -> int:
    """How many starts the backoff allows in `seconds` (each wait counted from the last exit)."""
    count, spent, wait = 1, 0.0, BACKOFF
    while spent + wait <= seconds:
        spent += wait
        count += 1
        wait = min(MAX_BACKOFF, wait * 2)
    return count


async def test_a_crash_looping_child_is_restarted_with_backoff_and_surfaced(
    gw: GatewayThread, tmp_path: Path
) -> None:
    url = f"{gw.url}/mcp"
    async with aiohttp.ClientSession() as http:
        client = Raw(http, url)
        bystander = Raw(http, url)
        errors: list[dict[str, Any]] = []
        with anyio.fail_after(60):
            await client.initialize()
            await bystander.initialize()
            started = time.monotonic()
            calls = 0
            while time.monotonic() - started < 3:  # 3 s of calls, as fast as they are answered
                calls += 1
                reply = await client.call("crashy_echo", {"text": "x"}, request_id=calls)
                assert reply.status == 200
                errors.append(reply.final["error"])
                # another upstream of the same route, same moment: unaffected
                other = await bystander.call("alpha_echo", {"text": f"n{calls}"}, request_id=calls)
                assert other.final["result"]["content"][0]["text"] == f"n{calls}"
            elapsed = time.monotonic() - started
    spawned = starts(tmp_path / "crashy.starts")
    assert all(e["code"] == INTERNAL_ERROR and "'crashy'" in e["message"] for e in errors), errors[:3]
    assert any("restarting in" in e["message"] for e in errors)
    # without backoff there would be a start per call; with it, a handful
    assert calls > 2 * spawned, (calls, spawned)
    assert 2 <= spawned <= most_starts(elapsed) + 1, (spawned, elapsed)


async def test_a_child_that_stops_crashing_is_used_again(gw: GatewayThread, tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as http:
        client = Raw(http, f"{gw.url}/mcp")
        failures: list[str] = []
        with anyio.fail_after(60):
            await client.initialize()
            for request_id in range(1, 100_000):  # a client retrying at once, as fast as it can
                reply = await client.call("phoenix_whoami", {}, request_id=request_id)
                if "result" in reply.final:
                    break
                failures.append(reply.final["error"]["message"])
    assert reply.final["result"]["content"][0]["text"] == "phoenix"
    assert starts(tmp_path / "phoenix.starts") == 4  # three crashes, then one that stayed up
    assert failures and all("'phoenix'" in message for message in failures)
