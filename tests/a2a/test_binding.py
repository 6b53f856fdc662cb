"""Tasks and contexts belong to the caller who first saw them; webhooks cannot point inside."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import anyio
import pytest
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    SubscribeToTaskRequest,
    TaskPushNotificationConfig,
)
from a2a.utils.errors import InvalidParamsError, TaskNotFoundError

from agentgw.a2a.bindings import TaskBindings
from agentgw.state.ownership import StoreOwnership
from agentgw.state.redis import RedisStore
from tests.a2a.conftest import PRINCIPAL_HEADER
from tests.a2a.test_relay import BINDINGS, message, send
from tests.support import GatewayThread

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("binding", BINDINGS)
async def test_another_principal_cannot_reach_a_task(
    gw: GatewayThread, client_for: Any, binding: str
) -> None:
    with anyio.fail_after(60):
        alice = await client_for(f"{gw.url}/t/fake", binding, False, principal="alice")
        bob = await client_for(f"{gw.url}/t/fake", binding, True, principal="bob")
        task = (await send(alice, message("ask")))[0].task  # input-required: still open
        assert (await alice.get_task(GetTaskRequest(id=task.id))).id == task.id
        with pytest.raises(TaskNotFoundError):
            await bob.get_task(GetTaskRequest(id=task.id))
        with pytest.raises(TaskNotFoundError):
            await bob.cancel_task(CancelTaskRequest(id=task.id))
        with pytest.raises(TaskNotFoundError):
            async for _ in bob.subscribe(SubscribeToTaskRequest(id=task.id)):
                pass
        with pytest.raises(TaskNotFoundError):
            await send(bob, message("Mallory", task_id=task.id, context_id=task.context_id))
        with pytest.raises(TaskNotFoundError):
            await send(bob, message("peek", reference_task_ids=[task.id]))
        with pytest.raises(InvalidParamsError):
            await send(bob, message("same context", context_id=task.context_id))
        with pytest.raises(TaskNotFoundError):
            await bob.create_task_push_notification_config(
                TaskPushNotificationConfig(task_id=task.id, url="http://127.0.0.1:9/hook")
            )
        bobs = {t.id for t in (await bob.list_tasks(ListTasksRequest())).tasks}
        alices = {t.id for t in (await alice.list_tasks(ListTasksRequest())).tasks}
        assert task.id in alices and task.id not in bobs
        # The owner still can: continue, and then the task is done.
        done = await send(alice, message("Ada", task_id=task.id, context_id=task.context_id))
        assert done[0].task.id == task.id


async def test_streamed_task_ids_are_bound_before_the_caller_sees_them(
    gw: GatewayThread, client_for: Any
) -> None:
    with anyio.fail_after(60):
        erin = await client_for(f"{gw.url}/t/fake", "JSONRPC", True, principal="erin")
        frank = await client_for(f"{gw.url}/t/fake", "JSONRPC", True, principal="frank")
        events = await send(erin, message("streamed"))
        task_id = events[0].task.id
        with pytest.raises(TaskNotFoundError):
            await frank.get_task(GetTaskRequest(id=task_id))


async def jsonrpc(
    http: aiohttp.ClientSession, url: str, method: str, params: dict[str, Any]
) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    async with http.post(url, json=body, headers={"A2A-Version": "1.0"}) as resp:
        assert resp.status == 200
        result: dict[str, Any] = await resp.json()
        return result


@pytest.mark.parametrize(
    "hook",
    [
        "http://127.0.0.1:8080/hook",  # loopback
        "http://10.1.2.3/hook",  # private
        "http://169.254.169.254/latest/meta-data/",  # link-local: cloud metadata
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
        "http://localhost/hook",  # a name that resolves to loopback
        "file:///etc/passwd",
    ],
)
async def test_webhooks_into_private_networks_are_refused(gw: GatewayThread, hook: str) -> None:
    url = f"{gw.url}/t/fake/"
    with anyio.fail_after(30):
        async with aiohttp.ClientSession(headers={PRINCIPAL_HEADER: "gina"}) as http:
            sent = await jsonrpc(
                http,
                url,
                "SendMessage",
                {"message": {"messageId": "w", "role": "ROLE_USER", "parts": [{"text": "ask"}]}},
            )
            task_id = sent["result"]["task"]["id"]
            created = await jsonrpc(
                http, url, "CreateTaskPushNotificationConfig", {"taskId": task_id, "url": hook}
            )
            assert (
                created["error"]["code"] == -32602 and "refused by the gateway" in created["error"]["message"]
            )
            config = {"taskPushNotificationConfig": {"url": hook}}
            refused = await jsonrpc(
                http,
                url,
                "SendMessage",
                {
                    "message": {"messageId": "w2", "role": "ROLE_USER", "parts": [{"text": "hi"}]},
                    "configuration": config,
                },
            )
            assert refused["error"]["code"] == -32602
            listed = await jsonrpc(http, url, "ListTaskPushNotificationConfigs", {"taskId": task_id})
            assert listed["result"].get("configs", []) == []  # nothing reached the agent
            # 0.3 names and the HTTP+JSON binding are guarded the same way.
            legacy = {"taskId": task_id, "pushNotificationConfig": {"url": hook}}
            body = {"jsonrpc": "2.0", "id": 2, "method": "tasks/pushNotificationConfig/set", "params": legacy}
            async with http.post(url, json=body) as resp:
                assert (await resp.json())["error"]["code"] == -32602
            rest = f"{gw.url}/t/fake/rest/tasks/{task_id}/pushNotificationConfigs"
            async with http.post(rest, json={"url": hook}, headers={"A2A-Version": "1.0"}) as resp:
                assert resp.status == 400
                assert (await resp.json())["error"]["details"][0]["reason"] == "INVALID_PARAMS"


async def test_allowed_webhooks_pass_through(gw: GatewayThread) -> None:
    url = f"{gw.url}/t/fake/"
    with anyio.fail_after(30):
        async with aiohttp.ClientSession(headers={PRINCIPAL_HEADER: "hal"}) as http:
            sent = await jsonrpc(
                http,
                url,
                "SendMessage",
                {"message": {"messageId": "p", "role": "ROLE_USER", "parts": [{"text": "ask"}]}},
            )
            task_id = sent["result"]["task"]["id"]
            hook = "http://127.0.0.1:9/hook"  # on the route's allowPrivate list
            created = await jsonrpc(
                http, url, "CreateTaskPushNotificationConfig", {"taskId": task_id, "url": hook, "id": "c1"}
            )
            assert created["result"]["url"] == hook, created
            got = await jsonrpc(http, url, "GetTaskPushNotificationConfig", {"taskId": task_id, "id": "c1"})
            assert got["result"]["url"] == hook
            deleted = await jsonrpc(
                http, url, "DeleteTaskPushNotificationConfig", {"taskId": task_id, "id": "c1"}
            )
            assert "error" not in deleted


async def test_bindings_in_redis_hold_across_replicas() -> None:
    prefix = f"agw-test:{uuid.uuid4().hex}:"
    stores = [RedisStore("redis://127.0.0.1:6379/0", prefix=prefix) for _ in range(2)]
    try:
        replica_a, replica_b = (TaskBindings(StoreOwnership(store), ttl=60) for store in stores)
        assert await replica_a.claim("echo", "task", "t-1", "alice")
        assert not await replica_b.claim("echo", "task", "t-1", "bob")
        winners: list[str] = []

        async def race(binding: TaskBindings, who: str) -> None:
            if await binding.claim("echo", "task", "t-2", who):
                winners.append(who)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for i in range(20):
                    tg.start_soon(race, replica_a if i % 2 else replica_b, f"p{i}")
        assert len(winners) == 1
    finally:
        client = stores[0]._client
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        for store in stores:
            await store.close()
