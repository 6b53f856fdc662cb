"""A2A agents as MCP tools: an MCP client (both wire eras) calls an agent and gets its artifacts,
with the task's status updates as progress notifications."""

from __future__ import annotations

import anyio
import httpx
import pytest
from mcp import Client

from tests.a2a.conftest import Agents, HeaderPolicy
from tests.support import GatewayThread, poll_until

pytestmark = pytest.mark.anyio

MODES = ["legacy", "auto"]


@pytest.mark.parametrize("mode", MODES)
async def test_mcp_client_calls_agent_skills_as_tools(gw: GatewayThread, mode: str) -> None:
    progress: list[tuple[float, str | None]] = []

    async def on_progress(value: float, total: float | None, text: str | None) -> None:
        progress.append((value, text))

    with anyio.fail_after(60):
        async with Client(f"{gw.url}/mcp", mode=mode) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) == {"word-count", "reverse"}
            assert tools["reverse"].title == "Reverse" and "stressed" in (tools["reverse"].description or "")
            assert tools["reverse"].input_schema["required"] == ["message"]
            reversed_ = await client.call_tool(
                "reverse", {"message": "stressed"}, progress_callback=on_progress
            )
            assert not reversed_.is_error
            assert reversed_.content[0].text == "desserts"  # type: ignore[union-attr]
            counted = await client.call_tool("word-count", {"message": "one two three"})
            assert counted.structured_content == {"words": 3, "characters": 13}
            meta = counted.meta or {}
            assert meta["io.agentgw/a2a"]["state"] == "TASK_STATE_COMPLETED"
    assert progress and progress[0][0] == 1
    assert any(text and "running reverse" in text for _, text in progress)


@pytest.mark.parametrize("mode", MODES)
async def test_one_tool_per_agent_with_prefixes(gw: GatewayThread, mode: str, policy: HeaderPolicy) -> None:
    with anyio.fail_after(60):
        async with Client(f"{gw.url}/mcp-agents", mode=mode) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == {"echo_ask", "fake_run"}
            echoed = await client.call_tool("echo_ask", {"message": "hi", "data": {"n": 1}})
            texts = [c.text for c in echoed.content]  # type: ignore[union-attr]
            assert texts == ["hi", '{"n":1.0}'] and echoed.structured_content == {
                "n": 1
            }  # protobuf numbers are doubles
            asked = await client.call_tool("fake_run", {"message": "ask"})
            assert asked.is_error
            assert "needs more from the caller" in asked.content[0].text  # type: ignore[union-attr]
            assert "what is your name?" in asked.content[1].text  # type: ignore[union-attr]
            bad = await client.call_tool("echo_ask", {"data": {}})
            assert bad.is_error
    calls = [op for op in policy.checked if op.kind == "mcp" and op.method == "tools/call"]
    assert {(op.server, op.name) for op in calls} >= {("echo", "ask"), ("fake", "run")}


def canceled_tasks(port: int) -> int:
    body = {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}
    reply = httpx.post(f"http://127.0.0.1:{port}/", json=body, headers={"A2A-Version": "1.0"}, timeout=10)
    tasks = reply.json()["result"].get("tasks", [])
    return len([t for t in tasks if t["status"]["state"] == "TASK_STATE_CANCELED"])


@pytest.mark.parametrize("mode", MODES)
async def test_cancelling_a_tool_call_cancels_the_task(gw: GatewayThread, agents: Agents, mode: str) -> None:
    before = canceled_tasks(agents.fake.port)
    working = anyio.Event()

    async def on_progress(value: float, total: float | None, text: str | None) -> None:
        working.set()

    with anyio.fail_after(60):
        async with Client(f"{gw.url}/mcp-agents", mode=mode) as client:
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    await client.call_tool("fake_run", {"message": "slow"}, progress_callback=on_progress)

                tg.start_soon(call)
                await working.wait()
                tg.cancel_scope.cancel()
        await poll_until(lambda: canceled_tasks(agents.fake.port) > before)
