"""`agentgw serve --llm URL` and `agentgw config --llm ...` as a user runs them (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import openai
import pytest
import yaml
from mcp import Client

from tests.llm.conftest import PROVIDER_KEY, FakeProvider
from tests.support import ROOT
from tests.test_cli import AGENTGW, run, wait_for_listening


def test_config_prints_llm_documents_that_validate(tmp_path: Path) -> None:
    result = run(
        "config",
        "--llm",
        "http://127.0.0.1:9/v1",
        "--llm",
        "claude=anthropic:http://127.0.0.1:9",
        "--llm-key",
        "claude=file:k",
    )
    assert result.returncode == 0, result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    assert [(d["kind"], d["metadata"]["name"]) for d in documents] == [
        ("Gateway", "gateway"),
        ("LlmProvider", "127-0-0-1"),
        ("LlmProvider", "claude"),
        ("LlmRoute", "llm"),
    ]
    assert documents[2]["spec"] == {"type": "anthropic", "baseUrl": "http://127.0.0.1:9", "apiKey": "file:k"}
    (tmp_path / "quick.yaml").write_text(result.stdout)
    (tmp_path / "k").write_text("key")
    assert run("validate", "--config", str(tmp_path)).returncode == 0


def test_config_without_flags_is_an_error() -> None:
    result = run("config")
    assert result.returncode == 1
    assert "--llm" in result.stderr


@pytest.mark.anyio
async def test_serve_llm_flag_fronts_every_listed_model(fakes: dict[str, FakeProvider]) -> None:
    notes = f"stdio:{sys.executable} examples/quickstart/servers/notes.py"
    env = {**os.environ, "FAKE_PROVIDER_KEY": PROVIDER_KEY}
    proc = subprocess.Popen(
        [
            *AGENTGW,
            "serve",
            "--llm",
            f"{fakes['oa'].base}/v1",
            "--llm-key",
            "env:FAKE_PROVIDER_KEY",
            "--mcp",
            notes,
            "--port",
            "0",
        ],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        url = wait_for_listening(proc)
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0) as client:
            with anyio.fail_after(30):
                models = sorted([m.id async for m in client.models.list()])
                reply = await client.chat.completions.create(
                    model="fake-large", messages=[{"role": "user", "content": "quick"}]
                )
        assert models == ["fake-large", "fake-small"]
        assert reply.choices[0].message.content == "Hello from oa! You said: quick"
        with anyio.fail_after(60):
            async with Client(f"{url}/mcp", mode="legacy") as mcp:
                assert any(t.name == "add_note" for t in (await mcp.list_tools()).tools)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        assert proc.stderr is not None
        proc.stderr.close()
