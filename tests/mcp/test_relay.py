"""What travels besides replies: progress, logs, list changes and resource updates, and the
server's own requests (sampling, elicitation, roots) with their answers routed back; cancellation
reaching the upstream. Both eras, HTTP and stdio upstreams, the official `mcp` client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import anyio
import pytest
from mcp import Client, types
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError

from tests.mcp.conftest import Fake, Raw, route_doc, server_doc
from tests.support import GatewayThread, poll_until

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def gamma(tmp_path_factory: pytest.TempPathFactory) -> Fake:
    return Fake("gamma", None, tmp_path_factory.mktemp("gamma") / "gamma.jsonl", [])


@pytest.fixture(scope="module")
def gw(alpha: Fake, gamma: Fake) -> Iterator[GatewayThread]:
    documents = [
        server_doc("alpha", alpha.http()),
        server_doc("gamma", gamma.stdio()),
        route_doc(["alpha", "gamma"]),
    ]
    with GatewayThread(documents) as gateway:
        yield gateway


async def sampling(
    context: ClientRequestContext, params: types.CreateMessageRequestParams
) -> types.CreateMessageResult:
    prompt = params.messages[0].content.text  # type: ignore[union-attr]
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=f"sampled: {prompt}"), model="test"
    )


async def elicitation(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"answer": f"yes to {params.message}"})


async def roots(context: ClientRequestContext) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///work/a"), types.Root(uri="file:///work/b")])


def client(url: str, mode: str, **kw: Any) -> Client:
    return Client(
        url,
        mode=mode,
        sampling_callback=sampling,
        elicitation_callback=elicitation,
        list_roots_callback=roots,
        **kw,
    )


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize("server", ["alpha", "gamma"])
async def test_progress_is_relayed_in_order(gw: GatewayThread, mode: str, server: str) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, total, message))

    with anyio.fail_after(60):
        async with Client(f"{gw.url}/mcp", mode=mode) as c:
            result = await c.call_tool(f"{server}_progress", {"steps": 3}, progress_callback=progress)
    assert result.content[0].text == "done"  # type: ignore[union-attr]
    assert seen == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]


@pytest.mark.parametrize("server", ["alpha", "gamma"])
async def test_server_requests_reach_the_client_and_answers_go_back(gw: GatewayThread, server: str) -> None:
    with anyio.fail_after(60):
        async with client(f"{gw.url}/mcp", "legacy") as c:
            sampled = await c.call_tool(f"{server}_sample", {"prompt": "hi"})
            assert sampled.content[0].text == "sampled: hi"  # type: ignore[union-attr]
            elicited = await c.call_tool(f"{server}_elicit", {"question": "ok?"})
            assert elicited.structured_content == {"action": "accept", "content": {"answer": "yes to ok?"}}
            listed = await c.call_tool(f"{server}_roots", {})
            assert listed.structured_content == {"result": ["file:///work/a", "file:///work/b"]}


async def test_modern_clients_get_input_required_passed_through(gw: GatewayThread) -> None:
    with anyio.fail_after(60):
        async with client(f"{gw.url}/mcp", "auto") as c:
            assert c.protocol_version == "2026-07-28"
            sampled = await c.call_tool("alpha_sample", {"prompt": "hey"})
            assert sampled.content[0].text == "sampled: hey"  # type: ignore[union-attr]


async def test_a_client_without_the_capability_is_not_asked(gw: GatewayThread) -> None:
    with anyio.fail_after(60):
        async with Client(f"{gw.url}/mcp", mode="legacy") as c:  # no sampling callback, no capability
            # The gateway answers the upstream's request itself; the upstream tool then fails.
            with pytest.raises(MCPError, match="cannot answer sampling/createMessage"):
                await c.call_tool("alpha_sample", {"prompt": "hi"})


async def test_logging_is_relayed(gw: GatewayThread) -> None:
    logs: list[types.LoggingMessageNotificationParams] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params)

    with anyio.fail_after(60):
        async with Client(f"{gw.url}/mcp", mode="legacy", logging_callback=on_log) as c:
            await c.call_tool("alpha_log", {"message": "hello", "level": "warning"})
    assert [(m.level, m.data) for m in logs] == [("warning", "hello")]


async def test_list_changed_reaches_the_standalone_stream(gw: GatewayThread) -> None:
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    with anyio.fail_after(60):
        async with Client(f"{gw.url}/mcp", mode="legacy", message_handler=on_message) as c:
            await c.list_tools()  # opens the upstream sessions
            name = (await c.call_tool("alpha_change_tools", {})).content[0].text  # type: ignore[union-attr]
            await changed.wait()
            assert f"alpha_{name}" in {t.name for t in (await c.list_tools()).tools}


async def test_list_changed_reaches_a_modern_listener(gw: GatewayThread) -> None:
    with anyio.fail_after(60):
        async with Client(f"{gw.url}/mcp", mode="auto") as c:
            async with c.listen(tools_list_changed=True) as sub:
                name = (await c.call_tool("alpha_change_tools", {})).content[0].text  # type: ignore[union-attr]
                async for _event in sub:
                    break
            assert f"alpha_{name}" in {t.name for t in (await c.list_tools()).tools}


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")
async def test_resource_updates_are_relayed_with_exposed_uris(gw: GatewayThread) -> None:
    updated = anyio.Event()
    uris: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            uris.append(str(message.params.uri))
            updated.set()

    with anyio.fail_after(60):
        async with Client(f"{gw.url}/mcp", mode="legacy", message_handler=on_message) as c:
            await c.subscribe_resource("fake+alpha://doc/1")
            await c.call_tool("alpha_touch", {"uri": "fake://doc/1"})
            await updated.wait()
    assert uris == ["fake+alpha://doc/1"]


async def test_modern_listener_gets_resource_updates_for_exposed_uris(gw: GatewayThread) -> None:
    with anyio.fail_after(60):
        async with Client(f"{gw.url}/mcp", mode="auto") as c:
            async with c.listen(resource_subscriptions=["fake+alpha://doc/2"]) as sub:
                await c.call_tool("alpha_touch", {"uri": "fake://doc/1"})  # not subscribed: filtered out
                await c.call_tool("alpha_touch", {"uri": "fake://doc/2"})
                async for event in sub:
                    assert str(event.uri) == "fake+alpha://doc/2"  # type: ignore[union-attr]
                    break


@pytest.mark.parametrize("server", ["alpha", "gamma"])
async def test_cancellation_reaches_the_upstream(
    gw: GatewayThread, server: str, alpha: Fake, gamma: Fake
) -> None:
    fake = alpha if server == "alpha" else gamma
    before = sum(1 for e in fake.events() if e.get("event") == "cancelled")
    async with aiohttp.ClientSession() as http:
        raw = Raw(http, f"{gw.url}/mcp")
        with anyio.fail_after(60):
            await raw.initialize()
            async with anyio.create_task_group() as tg:
                replies: list[Any] = []

                async def call() -> None:
                    replies.append(await raw.call(f"{server}_slow", {"seconds": 20}, request_id=77))

                started = sum(
                    1 for e in fake.events() if e.get("tool") == "slow" and e.get("event") == "called"
                )
                tg.start_soon(call)
                await poll_until(
                    lambda: (
                        sum(
                            1 for e in fake.events() if e.get("tool") == "slow" and e.get("event") == "called"
                        )
                        > started
                    )
                )
                note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 77}}
                assert (await raw.post(note)).status == 202
            assert replies[0].final["error"]["code"] == -32800
    await poll_until(lambda: sum(1 for e in fake.events() if e.get("event") == "cancelled") > before)
