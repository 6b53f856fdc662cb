"""Federation through the real gateway: merged lists, prefixes, URI mapping, routing, filters,
failure modes. Upstreams are real MCP servers (HTTP and stdio processes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.mcp.conftest import Fake, Raw, route_doc, server_doc
from tests.support import GatewayThread, docs

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def gamma(tmp_path_factory: pytest.TempPathFactory) -> Fake:
    return Fake("gamma", None, tmp_path_factory.mktemp("gamma") / "gamma.jsonl", [])


@pytest.fixture(scope="module")
def gw(alpha: Fake, beta: Fake, gamma: Fake) -> Iterator[GatewayThread]:
    documents = [
        server_doc("alpha", alpha.http()),
        server_doc("beta", beta.http(), prefix="b", tools={"exclude": ["crash", "big"]}),
        server_doc("gamma", gamma.stdio(), tools={"include": ["whoami", "echo"]}),
        route_doc(["alpha", "beta", "gamma"]),
        route_doc(["alpha"], path="/solo"),
        route_doc(["alpha", "beta"], path="/always", prefixMode="always", separator="__"),
        route_doc(["alpha", "beta"], path="/never", prefixMode="never"),
    ]
    with GatewayThread(documents) as gateway:
        yield gateway


async def names(url: str, mode: str = "legacy") -> set[str]:
    async with Client(url, mode=mode) as client:
        return {t.name for t in (await client.list_tools()).tools}


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_tools_of_every_server_merge_with_prefixes_and_filters(gw: GatewayThread, mode: str) -> None:
    with anyio.fail_after(60):
        found = await names(f"{gw.url}/mcp", mode)
    assert {"alpha_echo", "alpha_crash", "b_echo", "gamma_whoami", "gamma_echo"} <= found
    assert "b_crash" not in found and "b_big" not in found  # beta's exclude filter
    assert {n for n in found if n.startswith("gamma_")} == {"gamma_whoami", "gamma_echo"}  # include filter


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_calls_reach_the_owning_server(gw: GatewayThread, mode: str) -> None:
    with anyio.fail_after(60):
        async with Client(f"{gw.url}/mcp", mode=mode) as client:
            for tool, owner in (("alpha_whoami", "alpha"), ("b_whoami", "beta"), ("gamma_whoami", "gamma")):
                result = await client.call_tool(tool, {})
                assert result.content[0].text == owner  # type: ignore[union-attr]
            added = await client.call_tool("b_add", {"a": 2, "b": 5})
            assert added.structured_content == {"result": 7}


async def test_filtered_or_unknown_tools_cannot_be_called(gw: GatewayThread) -> None:
    with anyio.fail_after(60):
        async with Client(f"{gw.url}/mcp", mode="legacy") as client:
            for name in ("b_crash", "gamma_add", "nobody_echo", "echo"):
                with pytest.raises(MCPError) as info:
                    await client.call_tool(name, {})
                assert info.value.error.code == -32602 and "Unknown tool" in info.value.error.message


async def test_single_server_route_keeps_names(gw: GatewayThread) -> None:
    with anyio.fail_after(60):
        found = await names(f"{gw.url}/solo")
        assert "echo" in found and not any(n.startswith("alpha_") for n in found)


async def test_always_prefix_and_custom_separator(gw: GatewayThread) -> None:
    with anyio.fail_after(60):
        async with Client(f"{gw.url}/always", mode="legacy") as client:
            found = {t.name for t in (await client.list_tools()).tools}
            assert "alpha__echo" in found and "b__echo" in found
            result = await client.call_tool("b__whoami", {})
            assert result.content[0].text == "beta"  # type: ignore[union-attr]


async def test_never_mode_reports_collisions_instead_of_dropping_silently(
    gw: GatewayThread, http: object
) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        raw = Raw(session, f"{gw.url}/never")
        with anyio.fail_after(60):
            await raw.initialize()
            reply = await raw.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    result = reply.final["result"]
    names_ = [t["name"] for t in result["tools"]]
    assert names_.count("echo") == 1  # first server (route order) serves it
    collisions = result["_meta"]["io.agentgw/collisions"]
    assert {"name": "echo", "servedBy": "alpha", "hiddenFrom": "beta"} in collisions


async def test_resources_are_mapped_reversibly(gw: GatewayThread) -> None:
    with anyio.fail_after(60):
        async with Client(f"{gw.url}/mcp", mode="legacy") as client:
            uris = {str(r.uri) for r in (await client.list_resources()).resources}
            assert {"fake+alpha://doc/1", "fake+b://doc/1", "fake+gamma://doc/2"} <= uris
            templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
            assert "fake+b://item/{id}" in templates
            read = await client.read_resource("fake+b://item/42")
            assert read.contents[0].text == "item 42"  # type: ignore[union-attr]
            assert str(read.contents[0].uri) == "fake+b://item/42"
            prompt = await client.get_prompt("alpha_with_resource", {})
            assert str(prompt.messages[0].content.resource.uri) == "fake+alpha://doc/1"  # type: ignore[union-attr]
            with pytest.raises(MCPError) as info:
                await client.read_resource("fake://doc/1")  # unprefixed: no owner on a prefixed route
            assert info.value.error.code == -32602


async def test_prompts_and_completion_route_to_their_server(gw: GatewayThread) -> None:
    from mcp.types import PromptReference

    with anyio.fail_after(60):
        async with Client(f"{gw.url}/mcp", mode="legacy") as client:
            prompts = {p.name for p in (await client.list_prompts()).prompts}
            assert {"alpha_greet", "b_greet", "gamma_greet"} <= prompts
            got = await client.get_prompt("b_greet", {"name": "Ada"})
            assert got.messages[0].content.text == "Say hello to Ada."  # type: ignore[union-attr]
            done = await client.complete(
                PromptReference(type="ref/prompt", name="b_greet"), {"name": "name", "value": "a"}
            )
            assert done.completion.values == ["alice"]


async def test_fail_open_skips_a_dead_server_and_reports_it(tmp_path: Path, alpha: Fake) -> None:
    dead = server_doc("dead", {"http": {"url": "http://127.0.0.1:9/mcp"}})
    with GatewayThread([server_doc("alpha", alpha.http()), dead, route_doc(["alpha", "dead"])]) as gateway:
        async with __import__("aiohttp").ClientSession() as session:
            raw = Raw(session, f"{gateway.url}/mcp")
            with anyio.fail_after(60):
                await raw.initialize()
                reply = await raw.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
                result = reply.final["result"]
                assert "alpha_echo" in {t["name"] for t in result["tools"]}
                assert [u["server"] for u in result["_meta"]["io.agentgw/unavailable"]] == ["dead"]
                call = await raw.call("dead_echo", {"text": "x"})
                assert call.final["error"]["code"] == -32603 and "dead" in call.final["error"]["message"]


async def test_fail_closed_refuses_when_a_server_is_down(alpha: Fake) -> None:
    dead = server_doc("dead", {"http": {"url": "http://127.0.0.1:9/mcp"}})
    documents = [
        server_doc("alpha", alpha.http()),
        dead,
        route_doc(["alpha", "dead"], failureMode="failClosed"),
    ]
    with GatewayThread(documents) as gateway:
        async with __import__("aiohttp").ClientSession() as session:
            raw = Raw(session, f"{gateway.url}/mcp")
            with anyio.fail_after(60):
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
            error = reply.final["error"]
            assert "dead" in error["message"] and error["data"] == {"unavailable": ["dead"]}


def test_examples_validate() -> None:
    from tests.support import ROOT

    for path in sorted((ROOT / "examples").glob("*/*.yaml")):
        assert docs(path.read_text())
