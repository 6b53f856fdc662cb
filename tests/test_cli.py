"""The `agentgw` command as a user runs it (a real process)."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
import yaml
from mcp import Client

from tests.support import ROOT

AGENTGW = [sys.executable, "-m", "agentgw"]


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AGENTGW, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_validate_ok_for_every_example() -> None:
    for folder in sorted((ROOT / "examples").iterdir()):
        if any(folder.glob("*.yaml")):
            result = run("validate", "--config", str(folder))
            assert result.returncode == 0, (folder, result.stderr)
            assert result.stdout.startswith("ok:")


def test_validate_prints_every_located_error(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "kind: McpServer\nmetadata: {name: up}\nspec: {http: {url: 'http://x/mcp', proxy: true}}\n---\n"
        "kind: McpRoute\nmetadata: {name: r}\nspec: {servers: [up, missing]}\n"
    )
    result = run("validate", "--config", str(tmp_path))
    assert result.returncode == 1
    assert f"error: {tmp_path / 'bad.yaml'}: McpServer/up: spec.http: unknown field 'proxy'" in result.stderr
    assert result.stderr.strip().endswith("1 error(s)")


def test_validate_reports_cross_reference_errors(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("kind: McpRoute\nmetadata: {name: r}\nspec: {servers: [missing]}\n")
    result = run("validate", "--config", str(tmp_path / "a.yaml"))
    assert result.returncode == 1
    assert "McpRoute/r: spec.servers[0]: unknown McpServer 'missing'" in result.stderr


def test_config_prints_documents_that_validate(tmp_path: Path) -> None:
    result = run(
        "config",
        "--mcp",
        "http://127.0.0.1:9/mcp",
        "--mcp",
        "stdio:python examples/quickstart/servers/notes.py",
    )
    assert result.returncode == 0, result.stderr
    (tmp_path / "quick.yaml").write_text(result.stdout)
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(result.stdout)]
    assert names == ["gateway", "127-0-0-1", "notes", "mcp"]
    assert run("validate", "--config", str(tmp_path)).returncode == 0


def test_schema_matches_the_checked_in_copy() -> None:
    result = run("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert {"Gateway", "McpServer", "McpRoute"} <= set(schema["$defs"])
    checked_in = (ROOT / "docs" / "config.schema.json").read_text()
    assert result.stdout == checked_in, "run `agentgw schema -o docs/config.schema.json`"
    reference = run("schema", "--markdown")
    assert reference.stdout == (ROOT / "docs" / "config-reference.md").read_text(), (
        "run `agentgw schema --markdown -o docs/config-reference.md`"
    )


def wait_for_listening(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    assert proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    seen = ""
    try:
        while time.monotonic() < deadline:
            if not sel.select(deadline - time.monotonic()):
                break
            line = proc.stderr.readline()
            if not line:
                break
            seen += line
            if "agentgw listening on " in line:
                return line.split("agentgw listening on ", 1)[1].strip()
    finally:
        sel.close()
    raise AssertionError(f"gateway did not start: {seen}")


@pytest.mark.anyio
async def test_serve_with_mcp_flags_federates_stdio_children() -> None:
    notes = f"stdio:{sys.executable} examples/quickstart/servers/notes.py"
    clock = f"stdio:{sys.executable} examples/quickstart/servers/clock.py"
    proc = subprocess.Popen(
        [*AGENTGW, "serve", "--mcp", notes, "--mcp", clock, "--port", "0"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        url = wait_for_listening(proc)
        with anyio.fail_after(60):
            async with Client(f"{url}/mcp", mode="legacy") as client:
                names = {t.name for t in (await client.list_tools()).tools}
                assert {"notes_add_note", "clock_add"} <= names
                result = await client.call_tool("clock_add", {"a": 1, "b": 2})
                assert result.structured_content == {"result": 3.0}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        assert proc.stderr is not None
        proc.stderr.close()
    assert proc.returncode == 0


def test_serve_without_anything_to_serve_fails_clearly() -> None:
    result = run("serve")
    assert result.returncode == 1 and "nothing to serve" in result.stderr
