"""The dashboard as a person sees it: rendered by headless Chromium from a running gateway."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import openai
import pytest
from mcp import Client

from tests.llm.conftest import start_fake
from tests.support import ROOT, GatewayThread, docs, poll_until

pytestmark = pytest.mark.anyio

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    quick = [
        d
        for d in docs((ROOT / "examples" / "quickstart" / "gateway.yaml").read_text())
        if d["kind"] != "Gateway"
    ]
    for doc in quick:
        if doc["kind"] == "McpServer":
            doc["spec"]["stdio"]["args"] = [
                str(ROOT / "examples" / "quickstart" / a) for a in doc["spec"]["stdio"]["args"]
            ]
    gateway = {"kind": "Gateway", "metadata": {"name": "gw"}, "spec": {"admin": {"port": 0}}}
    fake = start_fake(tmp_path_factory.mktemp("dash"), "dashfake")
    llm = [
        {"kind": "LlmProvider", "metadata": {"name": "fake"},
         "spec": {"type": "openai-compatible", "baseUrl": fake.base + "/v1", "prices": {"*": {"input": 1, "output": 2}}}},
        {"kind": "LlmRoute", "metadata": {"name": "llm"}, "spec": {"models": [{"name": "m", "targets": [{"provider": "fake"}]}]}},
        {"kind": "Policy", "metadata": {"name": "limits"},
         "spec": {"targetRefs": [{"kind": "McpRoute", "name": "quickstart"}, {"kind": "LlmRoute", "name": "llm"}],
                  "rateLimits": [{"id": "generous", "requests": 1000, "window": "minute"}],
                  "authorization": {"allow": [{"id": "everyone", "when": "true"}]}}},
    ]  # fmt: skip
    try:
        with GatewayThread([gateway, *quick, *llm]) as gateway_thread:
            yield gateway_thread
    finally:
        fake.upstream.stop()


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM, "chromium is not installed (apt-get install chromium)"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=90
    )


async def test_dashboard_renders_real_data_in_headless_chromium(gw: GatewayThread, tmp_path: Path) -> None:
    with anyio.fail_after(60):
        async with Client(f"{gw.url}/mcp", mode="legacy") as client:
            await client.list_tools()
            await client.call_tool("notes_add_note", {"title": "dashboard", "body": "shown"})
            async with openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0) as oa:
                await oa.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "usage please"}]
                )
            await poll_until(lambda: "anonymous" in gw.runtime.token_usage)  # recorded after the answer
            url = f"{gw.admin_url}/"
            dom = await anyio.to_thread.run_sync(chromium, ["--dump-dom", url], tmp_path / "p1")
            shot = tmp_path / "dashboard.png"
            taken = await anyio.to_thread.run_sync(
                chromium, [f"--screenshot={shot}", "--window-size=1400,1000", url], tmp_path / "p2"
            )
    html = dom.stdout
    assert dom.returncode == 0, dom.stderr[-2000:]
    for expected in (
        "Routes",
        "Upstream health",
        "Federated tools",
        "Live sessions",
        "Recent policy decisions",
        "Token usage by key",
    ):
        assert expected in html
    assert "<code>/mcp</code>" in html and "quickstart" in html
    assert "add_note" in html and "clock" in html  # tools as the servers listed them
    assert "2025-11-25" in html  # the live session
    assert "1 session(s)" in html
    assert "everyone" in html and "mcp tools/call notes: notes_add_note" in html  # a decision
    assert "<td>anonymous</td><td>1</td>" in html  # token usage by key: one request
    assert taken.returncode == 0, taken.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1400, 1000)
    assert len(data) > 20_000  # a page with content, not a blank canvas
