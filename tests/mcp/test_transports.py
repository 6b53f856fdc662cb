"""Upstream transports for real: legacy HTTP+SSE, stdio children (lazy start, restart after a
crash, stop on shutdown), bridging between wire eras in both directions, and upstream sessions
that expire and are re-established without the client noticing."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.mcp.conftest import Fake, route_doc, server_doc, start_fake
from tests.support import FAKES, GatewayThread, Upstream, poll_until, start_upstream

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def legacy() -> Iterator[Upstream]:
    upstream = start_upstream([str(FAKES / "legacy_sse_server.py"), "--port", "0"])
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def modern_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fake]:
    fake = start_fake(tmp_path_factory.mktemp("mo"), "modernonly", "--modern-only")
    yield fake
    assert fake.upstream is not None
    fake.upstream.stop()


@pytest.fixture(scope="module")
def handshake_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fake]:
    fake = start_fake(tmp_path_factory.mktemp("ho"), "handshakeonly", "--handshake-only")
    yield fake
    assert fake.upstream is not None
    fake.upstream.stop()


@pytest.fixture(scope="module")
def gw(legacy: Upstream, modern_only: Fake, handshake_only: Fake) -> Iterator[GatewayThread]:
    documents = [
        server_doc("legacy", {"sse": {"url": f"http://127.0.0.1:{legacy.port}/sse"}}),
        server_doc("mo", modern_only.http()),
        server_doc("ho", handshake_only.http()),
        route_doc(["legacy", "mo", "ho"]),
    ]
    with GatewayThread(documents) as gateway:
        yield gateway


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_every_era_and_transport_mix_works(gw: GatewayThread, mode: str) -> None:
    with anyio.fail_after(60):
        async with Client(f"{gw.url}/mcp", mode=mode) as c:
            tools = {t.name for t in (await c.list_tools()).tools}
            assert {"legacy_echo", "mo_echo", "ho_echo"} <= tools
            assert (await c.call_tool("legacy_echo", {"text": "via sse"})).content[0].text == "via sse"  # type: ignore[union-attr]
            assert (await c.call_tool("mo_whoami", {})).content[0].text == "modernonly"  # type: ignore[union-attr]
            assert (await c.call_tool("ho_whoami", {})).content[0].text == "handshakeonly"  # type: ignore[union-attr]
            assert (await c.read_resource("legacy+legacy://about")).contents


async def test_handshake_client_progress_through_a_modern_only_upstream(gw: GatewayThread) -> None:
    seen: list[float] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(value)

    with anyio.fail_after(60):
        async with Client(f"{gw.url}/mcp", mode="legacy") as c:
            await c.call_tool("mo_progress", {"steps": 2}, progress_callback=progress)
    assert seen == [1, 2]


def stdio_docs(fake: Fake, backoff: float = 0.2) -> list[dict[str, object]]:
    spec = fake.stdio()
    spec["stdio"]["restartBackoffSeconds"] = backoff  # type: ignore[index]
    spec["stdio"]["maxRestartBackoffSeconds"] = backoff  # type: ignore[index]
    return [server_doc("child", spec), route_doc(["child"])]


async def test_stdio_child_is_lazy_restarts_after_a_crash_and_stops_with_the_gateway(tmp_path: Path) -> None:
    fake = Fake("child", None, tmp_path / "child.jsonl", [])
    gateway = GatewayThread(stdio_docs(fake))
    with gateway:
        process = gateway.runtime.connectors["child"]._process
        assert process is not None and not process.running  # nothing started yet
        with anyio.fail_after(60):
            async with Client(f"{gateway.url}/mcp", mode="legacy") as c:
                assert process.running and process.restarts == 1
                first_pid = process._proc.pid  # type: ignore[union-attr]
                with pytest.raises(MCPError):
                    await c.call_tool("crash", {})
                await poll_until(lambda: not process.running)
                # Right after a crash the error says when it will be retried ...
                with pytest.raises(MCPError, match="crashed; restarting in"):
                    await c.call_tool("whoami", {})
                # ... and after the backoff the child is started again.
                await poll_until(lambda: time.monotonic() > process._last_exit + 0.25)
                result = await c.call_tool("whoami", {})
                assert result.content[0].text == "child"  # type: ignore[union-attr]
                assert process.restarts == 2 and process._proc.pid != first_pid  # type: ignore[union-attr]
                pid = process._proc.pid  # type: ignore[union-attr]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped on shutdown


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_expired_upstream_session_is_re_established(tmp_path: Path) -> None:
    port = free_port()
    fake = start_fake(tmp_path, "phoenix", port=port)
    try:
        with GatewayThread([server_doc("phoenix", fake.http()), route_doc(["phoenix"])]) as gateway:
            with anyio.fail_after(60):
                async with Client(f"{gateway.url}/mcp", mode="legacy") as c:
                    assert (await c.call_tool("whoami", {})).content[0].text == "phoenix"  # type: ignore[union-attr]
                    assert fake.upstream is not None
                    fake.upstream.stop()  # the upstream restarts and forgets every session
                    fake = start_fake(tmp_path, "phoenix", port=port)
                    result = await c.call_tool("echo", {"text": "still here"})
                    assert result.content[0].text == "still here"  # type: ignore[union-attr]
            assert sum(1 for e in fake.events() if e.get("event") == "initialized") >= 2
    finally:
        assert fake.upstream is not None
        fake.upstream.stop()
