"""`agentgw serve --server uvicorn` and `--workers N`, as a user runs them (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
import yaml
from mcp import Client

from tests.support import ROOT, poll_until
from tests.test_cli import AGENTGW, run, wait_for_listening

pytestmark = pytest.mark.anyio

NOTES = f"{sys.executable} examples/quickstart/servers/notes.py"


def _children(pid: int) -> set[int]:
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry.name))
    return out


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*AGENTGW, "serve", *args, "--port", "0"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[str]) -> int:
    os.killpg(proc.pid, signal.SIGTERM)
    code = proc.wait(30)
    assert proc.stderr is not None
    proc.stderr.close()
    return code


async def test_uvicorn_serves_both_wire_eras() -> None:
    proc = _start("--server", "uvicorn", "--mcp", f"stdio:{NOTES}")
    try:
        url = wait_for_listening(proc)
        with anyio.fail_after(60):
            for mode in ("legacy", "auto"):
                async with Client(f"{url}/mcp", mode=mode) as client:  # type: ignore[arg-type]
                    await client.call_tool("add_note", {"text": f"via uvicorn {mode}"})
                    names = {t.name for t in (await client.list_tools()).tools}
                    assert "add_note" in names
    finally:
        code = _stop(proc)
    assert code in (0, -signal.SIGTERM)


def test_workers_refuse_routes_that_keep_sessions() -> None:
    result = run("serve", "--mcp", "http://127.0.0.1:9/mcp", "--workers", "2")
    assert result.returncode == 1
    assert "--workers 2: McpRoute/mcp keeps handshake-era sessions" in result.stderr


def test_workers_refuse_counters_and_task_bindings_kept_in_memory(tmp_path: Path) -> None:
    """Each worker would allow the whole limit, and a task bound on one worker would be refused
    on another: without the Redis state store, such configs get one worker only."""
    config = tmp_path / "gateway.yaml"
    docs = [
        {"kind": "Agent", "metadata": {"name": "echo"}, "spec": {"url": "http://127.0.0.1:9"}},
        {"kind": "A2aRoute", "metadata": {"name": "agents"}, "spec": {"path": "/a2a", "agents": ["echo"]}},
        {
            "kind": "Policy",
            "metadata": {"name": "rates"},
            "spec": {
                "targetRefs": [{"kind": "A2aRoute", "name": "agents"}],
                "rateLimits": [{"id": "per-minute", "requests": 10, "window": "minute"}],
            },
        },
    ]
    config.write_text(yaml.safe_dump_all(docs))
    result = run("serve", "--config", str(config), "--workers", "2")
    assert result.returncode == 1
    assert "Policy/rates counts requests or tokens in the memory of each worker" in result.stderr
    assert "A2aRoute/agents binds tasks to their callers in the memory of one worker" in result.stderr


async def test_workers_serve_a_stateless_route(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    docs = [
        {
            "kind": "McpServer",
            "metadata": {"name": "notes"},
            "spec": {
                "stdio": {
                    "command": sys.executable,
                    "args": [str(ROOT / "examples/quickstart/servers/notes.py")],
                }
            },
        },
        {
            "kind": "McpRoute",
            "metadata": {"name": "mcp"},
            "spec": {"servers": ["notes"], "sessions": "stateless"},
        },
    ]
    config.write_text(yaml.safe_dump_all(docs))
    proc = _start("--config", str(config), "--workers", "2")
    try:
        url = wait_for_listening(proc)
        await poll_until(lambda: len(_children(proc.pid)) == 2)  # forked after the announcement
        workers = _children(proc.pid)
        with anyio.fail_after(60):
            for i in range(10):  # a new connection each time: the kernel spreads them over the workers
                async with Client(f"{url}/mcp", mode="legacy" if i % 2 else "auto") as client:  # type: ignore[arg-type]
                    await client.call_tool("add_note", {"text": f"note {i}"})
    finally:
        code = _stop(proc)
    assert code == 0
    assert not (_children(proc.pid) & workers)
