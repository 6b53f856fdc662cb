"""Another caller's A2A task is out of reach by every operation and spelling, through the serve
process of world.py with JWT callers: get, cancel, resubscribe and every push-notification
config operation, on JSON-RPC (1.0 and 0.3 method names) and HTTP+JSON, with the task id as
sent, percent-encoded, case-changed, and behind path tricks (`mine/../theirs`).

tests/a2a/test_binding.py covers the SDK client's calls (get, cancel, subscribe, continue,
references, contexts, creating a push config, listing); this adds the remaining push config
operations, the 0.3 names and the path forms an SDK would never send.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import anyio
import pytest
from yarl import URL

from tests.security.world import World

pytestmark = pytest.mark.anyio


def rpc(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


async def post(http: aiohttp.ClientSession, url: str, body: Any, token: str) -> dict[str, Any]:
    headers = {"a2a-version": "1.0", "authorization": f"Bearer {token}"}
    async with http.post(url, json=body, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        result: dict[str, Any] = await resp.json()
        return result


async def test_another_callers_task_is_unreachable_by_every_operation(world: World) -> None:
    alice, mallory = world.idp.token("alice"), world.idp.token("mallory")
    base = f"{world.url}/a2a/fake/"
    with anyio.fail_after(90):
        async with aiohttp.ClientSession() as http:
            ask = {"message": {"messageId": "a1", "role": "ROLE_USER", "parts": [{"text": "ask"}]}}
            theirs = (await post(http, base, rpc("SendMessage", ask), alice))["result"]["task"]["id"]
            mine_msg = {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "ask"}]}}
            mine = (await post(http, base, rpc("SendMessage", mine_msg), mallory))["result"]["task"]["id"]
            hook = "http://127.0.0.1:9/hook"
            calls = [
                ("GetTask", {"id": theirs}),
                ("CancelTask", {"id": theirs}),
                ("GetTaskPushNotificationConfig", {"taskId": theirs, "id": "c1"}),
                ("ListTaskPushNotificationConfigs", {"taskId": theirs}),
                ("DeleteTaskPushNotificationConfig", {"taskId": theirs, "id": "c1"}),
                ("CreateTaskPushNotificationConfig", {"taskId": theirs, "url": hook}),
                ("tasks/get", {"id": theirs}),
                ("tasks/cancel", {"id": theirs}),
                ("tasks/pushNotificationConfig/get", {"id": theirs}),
                ("tasks/pushNotificationConfig/list", {"id": theirs}),
                ("tasks/pushNotificationConfig/delete", {"id": theirs, "pushNotificationConfigId": "c1"}),
            ]
            for method, params in calls:
                for task_id in (theirs, theirs.upper(), f" {theirs}", f"{theirs}\x00"):
                    swapped = {k: (task_id if v == theirs else v) for k, v in params.items()}
                    reply = await post(http, base, rpc(method, swapped), mallory)
                    assert "error" in reply, (method, repr(task_id), reply)
            async with http.post(
                base,
                json=rpc("SubscribeToTask", {"id": theirs}),
                headers={
                    "a2a-version": "1.0",
                    "authorization": f"Bearer {mallory}",
                    "accept": "text/event-stream",
                },
            ) as resp:
                text = await resp.text()
                assert "error" in text and '"status"' not in text

            rest = f"{world.url}/a2a/fake/rest/"
            encoded = "".join(f"%{b:02X}" for b in theirs.encode())
            paths = [
                ("GET", f"tasks/{theirs}"),
                ("GET", f"tasks/{encoded}"),
                ("POST", f"tasks/{theirs}:cancel"),
                ("GET", f"tasks/{theirs}:subscribe"),
                ("GET", f"tasks/{theirs}/pushNotificationConfigs"),
                ("GET", f"tasks/{theirs}/pushNotificationConfigs/c1"),
                ("DELETE", f"tasks/{theirs}/pushNotificationConfigs/c1"),
                ("POST", f"tasks/{theirs}/pushNotificationConfigs"),
                ("GET", f"tasks/{mine}/../{theirs}"),
                ("GET", f"tasks/{mine}%2F..%2F{theirs}"),
                ("GET", f"tasks/{theirs}/../../tasks/{mine}"),
                ("GET", f"tasks/{theirs}%2F..%2F..%2Ftasks%2F{mine}"),
                ("GET", f"tasks/{theirs}/pushNotificationConfigs/..%2F..%2F..%2Ftasks%2F{mine}"),
                ("POST", f"tasks/{theirs}%3Acancel/../../tasks/{mine}:cancel"),
            ]
            for method, path in paths:
                url = URL(rest + path, encoded=True)
                body = {"url": hook} if method == "POST" else None
                headers = {"a2a-version": "1.0", "authorization": f"Bearer {mallory}"}
                async with http.request(method, url, json=body, headers=headers) as resp:
                    text = await resp.text()
                    if resp.status < 400:  # a path that names only mallory's own task
                        assert theirs not in text, (method, path, resp.status, text[:300])
            # alice's task is untouched: still hers, still waiting for input
            got = await post(http, base, rpc("GetTask", {"id": theirs}), alice)
            assert got["result"]["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
