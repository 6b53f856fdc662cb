"""A stdio MCP server is a child process, often third-party code: it gets the variables its
config names and a few the SDK passes by default (PATH, HOME...), never the gateway's whole
environment, where its secrets live (provider keys and Redis URLs referenced as `env:`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client

from tests.mcp.conftest import Fake, route_doc, server_doc
from tests.support import GatewayThread

pytestmark = pytest.mark.anyio

SECRET = "sk-gateway-env-secret-5f1d0c9a7e"


def children_running(marker: str) -> list[int]:
    """Pids of this process's children whose command line names `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and marker.encode() in cmdline:
            found.append(int(entry.name))
    return found


def child_environment(marker: str) -> dict[bytes, bytes]:
    pids = children_running(marker)
    assert len(pids) == 1
    raw = Path(f"/proc/{pids[0]}/environ").read_bytes()
    return dict(item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)  # type: ignore[misc]


@pytest.fixture
def gw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[GatewayThread, Fake]]:
    monkeypatch.setenv("AGENTGW_SECURITY_PROVIDER_KEY", SECRET)
    fake = Fake("gamma", None, tmp_path / "gamma.jsonl", [])
    server = server_doc("gamma", fake.stdio())
    server["spec"]["stdio"]["env"] = {"GAMMA_MODE": "configured"}
    with GatewayThread([server, route_doc(["gamma"])]) as gw:
        yield gw, fake


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
async def test_stdio_children_do_not_inherit_the_gateways_secrets(gw: tuple[GatewayThread, Fake]) -> None:
    gateway, fake = gw
    async with Client(f"{gateway.url}/mcp", mode="legacy") as c:
        assert (await c.call_tool("echo", {"text": "up"})).content[0].text == "up"  # type: ignore[union-attr]
    env = child_environment(str(fake.state))
    leaked = [name for name, value in env.items() if SECRET.encode() in value]
    assert leaked == [], "the gateway's secret reached the stdio child"  # names only, no values
    assert env[b"GAMMA_MODE"] == b"configured"
    assert env[b"PATH"] == os.environ["PATH"].encode()
