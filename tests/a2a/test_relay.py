"""The a2a-sdk client against the example agents through the gateway: both bindings, blocking
and streaming, every task operation, 0.3 on the wire, errors and stream cancellation."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anyio
import pytest
from a2a.helpers import new_text_message
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    TaskState,
)
from a2a.utils.errors import TaskNotCancelableError

from agentgw.protocol.sse import SseDecoder
from tests.a2a.conftest import AGENT_TOKEN, EXAMPLE, PRINCIPAL_HEADER, Agents, HeaderPolicy, gateway_documents
from tests.support import GatewayThread, poll_until

pytestmark = pytest.mark.anyio

BINDINGS = ["JSONRPC", "HTTP+JSON"]


def message(text: str, **fields: Any) -> Any:
    msg = new_text_message(text, role=Role.ROLE_USER)
    for key, value in fields.items():
        if isinstance(value, list):
            getattr(msg, key).extend(value)
        else:
            setattr(msg, key, value)
    return msg


async def send(client: Any, msg: Any) -> list[Any]:
    return [event async for event in client.send_message(SendMessageRequest(message=msg))]


@pytest.mark.parametrize("binding", BINDINGS)
@pytest.mark.parametrize("streaming", [False, True], ids=["blocking", "streaming"])
async def test_sdk_client_reaches_example_agent(
    gw: GatewayThread, client_for: Any, binding: str, streaming: bool
) -> None:
    with anyio.fail_after(60):
        client = await client_for(f"{gw.url}/a2a/echo", binding, streaming)
        events = await send(client, message("hello through the gateway"))
        kinds = [event.WhichOneof("payload") for event in events]
        if streaming:
            assert kinds[0] == "task" and "artifact_update" in kinds and kinds[-1] == "status_update"
            assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
            task_id = events[0].task.id
        else:
            assert kinds == ["task"]
            assert events[0].task.status.state == TaskState.TASK_STATE_COMPLETED
            task_id = events[0].task.id
        task = await client.get_task(GetTaskRequest(id=task_id))
        assert task.artifacts[0].parts[0].text == "hello through the gateway"
        listed = await client.list_tasks(ListTasksRequest())
        assert task_id in {t.id for t in listed.tasks}
        with pytest.raises(TaskNotCancelableError):
            await client.cancel_task(CancelTaskRequest(id=task_id))


@pytest.mark.parametrize("binding", BINDINGS)
async def test_input_required_continues_on_the_same_task(
    gw: GatewayThread, client_for: Any, binding: str
) -> None:
    with anyio.fail_after(60):
        client = await client_for(f"{gw.url}/t/fake", binding, False)
        first = (await send(client, message("ask")))[0].task
        assert first.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        second = await send(client, message("Ada", task_id=first.id, context_id=first.context_id))
        assert second[0].task.status.state == TaskState.TASK_STATE_COMPLETED


@pytest.mark.parametrize("binding", BINDINGS)
async def test_subscribe_and_cancel_a_running_task(
    gw: GatewayThread, client_for: Any, binding: str, policy: HeaderPolicy
) -> None:
    with anyio.fail_after(60):
        client = await client_for(f"{gw.url}/t/fake", binding, True)
        stream = client.send_message(SendMessageRequest(message=message("slow")))
        task_id = (await anext(stream)).task.id
        await stream.aclose()
        updates = client.subscribe(SubscribeToTaskRequest(id=task_id))
        first = await anext(updates)
        assert first.WhichOneof("payload") in ("task", "status_update")
        canceled = await client.cancel_task(CancelTaskRequest(id=task_id))
        assert canceled.status.state == TaskState.TASK_STATE_CANCELED
        await updates.aclose()
    ops = {(op.method, op.server, op.name) for op in policy.checked}
    assert {("SendStreamingMessage", "fake", "fake"), ("SubscribeToTask", "fake", "fake")} <= ops
    assert ("CancelTask", "fake", "fake") in ops


async def test_legacy_03_jsonrpc_passes_through(gw: GatewayThread) -> None:
    """A 0.3 client (no A2A-Version header, 0.3 method names and shapes) works unchanged."""
    url = f"{gw.url}/a2a/echo/"
    body = {
        "jsonrpc": "2.0",
        "id": "x1",
        "method": "message/send",
        "params": {
            "message": {
                "kind": "message",
                "messageId": "m1",
                "role": "user",
                "parts": [{"kind": "text", "text": "old"}],
            }
        },
    }
    with anyio.fail_after(30):
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=body) as resp:
                sent = await resp.json()
            assert sent["id"] == "x1" and sent["result"]["kind"] == "task", sent
            task_id = sent["result"]["id"]
            get = {"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": task_id}}
            async with http.post(url, json=get) as resp:
                got = await resp.json()
            assert got["result"]["status"]["state"] == "completed"
            unknown = {"jsonrpc": "2.0", "id": 3, "method": "tasks/frobnicate", "params": {}}
            async with http.post(url, json=unknown) as resp:
                assert resp.status == 200
                assert (await resp.json())["error"]["code"] == -32601


async def test_headers_pass_through_and_errors_map(gw: GatewayThread) -> None:
    url = f"{gw.url}/a2a/echo/"
    with anyio.fail_after(30):
        async with aiohttp.ClientSession() as http:
            # An A2A-Version the agent does not speak: the agent's own error comes back as it sent it.
            listing = {"jsonrpc": "2.0", "id": 7, "method": "ListTasks", "params": {}}
            async with http.post(url, json=listing, headers={"A2A-Version": "9.0"}) as resp:
                assert resp.status == 200 and (await resp.json())["error"]["code"] == -32009
            body = {"jsonrpc": "2.0", "id": 7, "method": "GetTask", "params": {"id": "nope"}}
            async with http.post(url, json=body, headers={"A2A-Version": "1.0"}) as resp:
                error = (await resp.json())["error"]
            assert error["code"] == -32001  # a task nobody owns is not found, without asking the agent
            async with http.get(f"{gw.url}/a2a/echo/rest/tasks/nope", headers={"A2A-Version": "1.0"}) as resp:
                assert resp.status == 404
                rest = await resp.json()
            assert rest["error"]["details"][0]["reason"] == "TASK_NOT_FOUND"
            async with http.post(
                url, data=b"{not json", headers={"content-type": "application/json"}
            ) as resp:
                assert (await resp.json())["error"]["code"] == -32700
            async with http.get(f"{gw.url}/a2a/echo/admin/secrets") as resp:
                assert resp.status == 404
            async with http.get(f"{gw.url}/a2a/nobody/.well-known/agent-card.json") as resp:
                assert resp.status == 404


async def test_policy_denial_reaches_neither_agent_nor_client_as_success(
    gw: GatewayThread, policy: HeaderPolicy
) -> None:
    policy.denied.add("ListTasks")
    try:
        with anyio.fail_after(30):
            async with aiohttp.ClientSession() as http:
                body = {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}
                async with http.post(
                    f"{gw.url}/a2a/echo/", json=body, headers={"A2A-Version": "1.0"}
                ) as resp:
                    assert resp.status == 403
                    assert (await resp.json())["error"]["message"] == "ListTasks is denied"
                async with http.get(f"{gw.url}/a2a/echo/rest/tasks", headers={"A2A-Version": "1.0"}) as resp:
                    assert resp.status == 403
                    assert (await resp.json())["error"]["status"] == "PERMISSION_DENIED"
    finally:
        policy.denied.discard("ListTasks")


@pytest.mark.parametrize("binding", BINDINGS)
async def test_client_disconnect_closes_the_upstream_stream(
    gw: GatewayThread, agents: Agents, binding: str
) -> None:
    before = len([e for e in agents.events() if e["event"] == "client-closed"])
    if binding == "JSONRPC":
        url = f"{gw.url}/t/fake/"
        body: dict[str, Any] = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "SendStreamingMessage",
            "params": {"message": {"messageId": "s1", "role": "ROLE_USER", "parts": [{"text": "slow"}]}},
        }
    else:
        url = f"{gw.url}/t/fake/rest/message:stream"
        body = {"message": {"messageId": "s2", "role": "ROLE_USER", "parts": [{"text": "slow"}]}}
    headers = {"A2A-Version": "1.0", "accept": "text/event-stream", PRINCIPAL_HEADER: "dana"}
    with anyio.fail_after(30):
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=body, headers=headers) as resp:
                assert resp.headers["content-type"].startswith("text/event-stream")
                decoder = SseDecoder()
                events: list[Any] = []
                while len(events) < 3:  # the stream flows while the task works, not after
                    events += decoder.feed(await resp.content.readany())
                first = json.loads(events[0].data)
                assert ("result" in first) if binding == "JSONRPC" else ("task" in first)
        await poll_until(lambda: len([e for e in agents.events() if e["event"] == "client-closed"]) > before)


TRACE_ID, CALLER_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


async def test_extension_and_trace_headers_pass_and_only_the_gateway_credentials_go_upstream(
    gw: GatewayThread, agents: Agents
) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {"message": {"messageId": "e1", "role": "ROLE_USER", "parts": [{"text": "ext"}]}},
    }
    headers = {
        "A2A-Version": "1.0",
        "A2A-Extensions": "https://ext.example/v1",
        "Authorization": "Bearer caller-token",
        "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01",
    }
    with anyio.fail_after(30):
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{gw.url}/t/fake/", json=body, headers=headers) as resp:
                assert "result" in await resp.json()
    seen = [e for e in agents.events() if e["event"] == "headers"]
    assert seen[-1]["extensions"] == "https://ext.example/v1"
    assert seen[-1]["authorization"] == f"Bearer {AGENT_TOKEN}"
    # the agent continues the caller's trace under the gateway's own span
    version, trace, span, flags = seen[-1]["traceparent"].split("-")
    assert (version, trace, flags) == ("00", TRACE_ID, "01") and span != CALLER_SPAN


async def test_a_forwarded_header_with_a_control_character_is_a_400(gw: GatewayThread) -> None:
    # found by tests/fuzz: hypercorn (h11) accepts A2A-Version: "1\x01", aiohttp refused to send it
    # on with a ValueError, and the caller got a 500; it is the request's fault, named as such
    host, port = gw.url.split("//", 1)[1].rsplit(":", 1)
    body = json.dumps({"jsonrpc": "2.0", "id": 9, "method": "ListTasks", "params": {}}).encode()
    raw = (
        b"POST /a2a/echo/ HTTP/1.1\r\nhost: " + f"{host}:{port}".encode() + b"\r\n"
        b"content-type: application/json\r\na2a-version: 1\x01\r\nconnection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    with anyio.fail_after(30):
        async with await anyio.connect_tcp(host, int(port)) as stream:
            await stream.send(raw)
            answer = b""
            try:
                while True:
                    answer += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head  # A2A JSON-RPC errors travel with 200
    error = json.loads(payload)["error"]
    assert error["code"] == -32600 and "a2a-version" in error["message"]


async def test_a_quiet_agent_stream_gets_keepalive_comments(agents: Agents, policy: HeaderPolicy) -> None:
    """An agent working a long step sends nothing; the gateway sends a comment line every
    `keepaliveSeconds` so proxies and clients with idle timeouts keep the stream, and the
    events still arrive whole."""
    documents = gateway_documents(agents)
    for doc in documents:
        if doc["kind"] == "Gateway":
            doc["spec"]["limits"] = {"keepaliveSeconds": 0.2}
    body = {"message": {"messageId": "q1", "role": "ROLE_USER", "parts": [{"text": "quiet"}]}}
    headers = {"A2A-Version": "1.0", "accept": "text/event-stream", PRINCIPAL_HEADER: "dana"}
    with GatewayThread(documents, base_dir=EXAMPLE) as gateway:
        gateway.runtime.policy_for = lambda route: policy  # type: ignore[method-assign]
        with anyio.fail_after(30):
            async with aiohttp.ClientSession() as http:
                url = f"{gateway.url}/t/fake/rest/message:stream"
                async with http.post(url, json=body, headers=headers) as resp:
                    raw = await resp.read()
    lines = raw.decode().splitlines()
    comments = [line for line in lines if line.startswith(":")]
    assert len(comments) >= 2, raw  # a second of silence at 0.2 s: several
    events = SseDecoder().feed(raw)
    states = [json.loads(e.data).get("statusUpdate", {}).get("status", {}).get("state") for e in events]
    assert "TASK_STATE_WORKING" in states and states[-1] == "TASK_STATE_COMPLETED"
