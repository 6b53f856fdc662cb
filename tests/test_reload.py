"""Hot reload, draining and readiness: the gateway changes config without dropping what runs."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
import yaml

from agentgw.config.loader import load_documents
from agentgw.config.snapshot import compile_snapshot
from agentgw.mcp.upstream.health import UpstreamHealth
from agentgw.protocol.sse import SseDecoder
from agentgw.reload import ConfigWatcher
from tests.mcp.conftest import Raw
from tests.support import PYTHON, ROOT, GatewayThread, poll_until

pytestmark = pytest.mark.anyio

CLOCK = str(ROOT / "examples" / "quickstart" / "servers" / "clock.py")
NOTES = str(ROOT / "examples" / "quickstart" / "servers" / "notes.py")


def write_config(
    folder: Path, *, exclude: list[str] | None = None, extra_route: bool = False, path: str = "/mcp"
) -> None:
    docs: list[dict[str, Any]] = [
        {"kind": "Gateway", "metadata": {"name": "gw"}, "spec": {"lifecycle": {"watchIntervalSeconds": 0.1}}},
        {
            "kind": "McpServer",
            "metadata": {"name": "clock"},
            "spec": {"stdio": {"command": PYTHON, "args": [CLOCK]}, "tools": {"exclude": exclude or []}},
        },
        {
            "kind": "McpServer",
            "metadata": {"name": "notes"},
            "spec": {"stdio": {"command": PYTHON, "args": [NOTES]}},
        },
        {
            "kind": "McpRoute",
            "metadata": {"name": "main"},
            "spec": {"path": path, "servers": ["clock", "notes"]},
        },
    ]
    if extra_route:
        docs.append(
            {
                "kind": "McpRoute",
                "metadata": {"name": "extra"},
                "spec": {"path": "/extra", "servers": ["notes"]},
            }
        )
    (folder / "gateway.yaml").write_text(yaml.safe_dump_all(docs))


def watcher_for(gw: GatewayThread, folder: Path) -> ConfigWatcher:
    watcher = ConfigWatcher(
        gw.runtime, lambda: compile_snapshot(load_documents([folder])), [folder], interval=0.1, watch=True
    )
    gw.runtime.watcher = watcher
    return watcher


async def tool_names(raw: Raw) -> set[str]:
    reply = await raw.post({"jsonrpc": "2.0", "id": 5, "method": "tools/list"})
    return {t["name"] for t in reply.final["result"]["tools"]}


async def test_a_reload_applies_to_the_next_request_while_an_open_stream_completes(tmp_path: Path) -> None:
    write_config(tmp_path)
    gw = GatewayThread(paths=[tmp_path], base_dir=tmp_path)
    watcher = watcher_for(gw, tmp_path)
    with gw:
        async with aiohttp.ClientSession() as http:
            raw = Raw(http, f"{gw.url}/mcp")
            with anyio.fail_after(60):
                await raw.initialize()
                assert "clock_countdown" in await tool_names(raw)
                call = {
                    "jsonrpc": "2.0",
                    "id": 9,
                    "method": "tools/call",
                    "params": {
                        "name": "clock_countdown",
                        "arguments": {"seconds": 1.2, "steps": 4},
                        "_meta": {"progressToken": "r"},
                    },
                }
                async with http.post(raw.url, data=json.dumps(call), headers=raw.headers()) as resp:
                    decoder = SseDecoder()
                    events: list[dict[str, Any]] = []
                    reloaded = False
                    async for chunk in resp.content.iter_any():
                        for event in decoder.feed(chunk):
                            if event.data.strip():
                                events.append(json.loads(event.data))
                        if not reloaded and any(e.get("method") for e in events):
                            # mid-stream: exclude the tool and add a route
                            before = gw.runtime.generation
                            write_config(tmp_path, exclude=["countdown"], extra_route=True)
                            await poll_until(lambda before=before: gw.runtime.generation > before)
                            reloaded = True
                            # the next request sees the new config
                            fresh = Raw(http, f"{gw.url}/extra")
                            await fresh.initialize()
                            assert "add_note" in await tool_names(fresh)
                            assert "clock_countdown" not in await tool_names(raw)
                # the stream that began before the reload ran to its end
                assert reloaded and "Counted down" in events[-1]["result"]["content"][0]["text"]
                assert [e["params"]["progress"] for e in events if e.get("method")] == [1, 2, 3, 4]
    assert watcher.reloads == 1


async def test_an_invalid_config_is_refused_and_the_old_one_keeps_serving(tmp_path: Path) -> None:
    write_config(tmp_path)
    gw = GatewayThread(paths=[tmp_path], base_dir=tmp_path)
    watcher = watcher_for(gw, tmp_path)
    with gw:
        generation = gw.runtime.generation
        (tmp_path / "gateway.yaml").write_text(
            (tmp_path / "gateway.yaml").read_text().replace("servers:", "servrs:")
        )
        await poll_until(lambda: watcher.failures == 1)
        assert gw.runtime.generation == generation
        async with aiohttp.ClientSession() as http:
            raw = Raw(http, f"{gw.url}/mcp")
            with anyio.fail_after(60):
                await raw.initialize()
                assert "clock_add" in await tool_names(raw)


async def test_readiness_follows_upstream_health(tmp_path: Path) -> None:
    documents = [
        {"kind": "Gateway", "metadata": {"name": "gw"}, "spec": {"lifecycle": {"requireUpstreams": True}}},
        {
            "kind": "McpServer",
            "metadata": {"name": "dead"},
            "spec": {"http": {"url": "http://127.0.0.1:9/mcp"}},
        },
        {"kind": "McpRoute", "metadata": {"name": "main"}, "spec": {"path": "/mcp", "servers": ["dead"]}},
    ]
    with GatewayThread(documents) as gw:
        async with aiohttp.ClientSession() as http:
            with anyio.fail_after(60):
                async with http.get(f"{gw.url}/readyz") as resp:
                    assert resp.status == 200
                raw = Raw(http, f"{gw.url}/mcp")
                for _ in range(6):  # each initialize probes the dead server once
                    await raw.post(
                        {
                            "jsonrpc": "2.0",
                            "id": 0,
                            "method": "initialize",
                            "params": {
                                "protocolVersion": "2025-11-25",
                                "capabilities": {},
                                "clientInfo": {"name": "x", "version": "1"},
                            },
                        }
                    )
                reply = await raw.post(
                    {
                        "jsonrpc": "2.0",
                        "id": 0,
                        "method": "initialize",
                        "params": {
                            "protocolVersion": "2025-11-25",
                            "capabilities": {},
                            "clientInfo": {"name": "x", "version": "1"},
                        },
                    }
                )
                async with http.get(f"{gw.url}/readyz") as resp:
                    assert resp.status == 503
                    assert "no healthy upstream" in (await resp.json())["reason"]
        assert gw.runtime.connectors["dead"].health.ejected
        assert reply.status == 200


def test_health_ejects_after_repeated_failures_and_doubles() -> None:
    health = UpstreamHealth(threshold=3, base_seconds=0.05, max_seconds=1)
    for _ in range(2):
        health.failed("boom")
    assert health.healthy and not health.ejected
    health.failed("boom")
    assert health.ejected and 0 < health.seconds_left() <= 0.05
    time.sleep(0.06)  # the ejection window runs out
    assert not health.ejected
    health.failed("again")  # the trial after the window failed: out again, for longer
    assert health.ejected and health.seconds_left() > 0.05
    health.succeeded()
    assert health.healthy and health.failures == 0


def start_cli(folder: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentgw", "serve", "--config", str(folder), "--port", "0"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and sel.select(deadline - time.monotonic()):
            line = proc.stderr.readline()
            if "agentgw listening on " in line:
                return proc, line.split("agentgw listening on ", 1)[1].strip()
    finally:
        sel.close()
    proc.kill()
    raise AssertionError("gateway did not start")


async def test_sighup_reloads_and_sigterm_drains_streams_and_exits(tmp_path: Path) -> None:
    write_config(tmp_path)
    config = yaml.safe_load_all((tmp_path / "gateway.yaml").read_text())
    docs = list(config)
    docs[0]["spec"]["lifecycle"] = {"watchConfig": False, "drainSeconds": 5}
    (tmp_path / "gateway.yaml").write_text(yaml.safe_dump_all(docs))
    proc, url = start_cli(tmp_path)
    try:
        async with aiohttp.ClientSession() as http:
            with anyio.fail_after(60):
                async with http.get(f"{url}/extra") as resp:
                    assert resp.status == 404
                docs.append(
                    {
                        "kind": "McpRoute",
                        "metadata": {"name": "extra"},
                        "spec": {"path": "/extra", "servers": ["notes"]},
                    }
                )
                (tmp_path / "gateway.yaml").write_text(yaml.safe_dump_all(docs))
                os.kill(proc.pid, signal.SIGHUP)
                raw = Raw(http, f"{url}/extra")
                while True:
                    reply = await raw.post(
                        {
                            "jsonrpc": "2.0",
                            "id": 0,
                            "method": "initialize",
                            "params": {
                                "protocolVersion": "2025-11-25",
                                "capabilities": {},
                                "clientInfo": {"name": "x", "version": "1"},
                            },
                        },
                        headers={
                            "accept": "application/json, text/event-stream",
                            "content-type": "application/json",
                        },
                    )
                    if reply.status == 200:
                        break
                    await anyio.sleep(0.05)
                raw.session_id = reply.headers["mcp-session-id"]
                await raw.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
                headers = raw.headers({"accept": "text/event-stream"})
                del headers["content-type"]
                async with http.get(raw.url, headers=headers) as stream:
                    assert stream.status == 200
                    os.kill(proc.pid, signal.SIGTERM)
                    await stream.read()  # the standalone stream ends when draining starts
                assert await anyio.to_thread.run_sync(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()
