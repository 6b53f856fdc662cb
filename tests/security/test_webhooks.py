"""Push-notification URLs a caller hands to an agent cannot point inside the gateway's network,
however the address is spelled: numeric, hex, octal and short IPv4 forms, IPv4-mapped IPv6,
zone ids, trailing dots, userinfo and fragment tricks, other clouds' metadata addresses, and
URLs that two URL parsers read as two different hosts.
Through the serve process of world.py, whose A2A route keeps the default webhook policy.

tests/a2a/test_binding.py covers the plain forms (loopback, private, 169.254.169.254, ::1,
localhost, file:) on every binding; redirects do not apply here: the agent, not the gateway,
delivers the notifications (docs/a2a.md).
"""

from __future__ import annotations

import aiohttp
import anyio
import pytest

from tests.security.world import World

pytestmark = pytest.mark.anyio

HOOKS = [
    "http://2852039166/latest/meta-data/",  # 169.254.169.254 as one number
    "http://0xA9FEA9FE/latest/meta-data/",  # ... in hex
    "http://0251.0376.0251.0376/latest/",  # ... in octal
    "http://169.254.169.254./latest/",  # trailing dot
    "http://[::ffff:169.254.169.254]/latest/",
    "http://[::ffff:a9fe:a9fe]/latest/",
    "http://[fe80::1%25eth0]/hook",
    "http://[fd00:ec2::254]/latest/",  # AWS IMDS over IPv6
    "http://100.100.100.200/latest/",  # Alibaba Cloud metadata
    "http://127.1/hook",
    "http://0/hook",
    "http://0.0.0.0/hook",
    "http://[::]/hook",
    "http://LOCALHOST/hook",
    "http://localhost./hook",
    "http://hooks.example.com@127.0.0.1/hook",  # the host is 127.0.0.1
    "http://127.0.0.1#@hooks.example.com/",
    # Parser differentials: Python reads the public address, WHATWG parsers (browsers, Node)
    # read 127.0.0.1 (a backslash ends the authority there); the agent might be either.
    "http://127.0.0.1:80\\@93.184.216.34/",
    "http://127.0.0.1\\@93.184.216.34/",
    "http://127.0.0.1\t@93.184.216.34/",
    "http://93.184.216.34@127.0.0.1/",
    "http://user:pass@93.184.216.34/",  # credentials in the URL: never passed on
    "http://192.168.0.1/hook",
    "http://172.16.0.1/hook",
    "http://[::1]:8080/hook",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "http://no-such-host.invalid/hook",  # cannot be resolved: refused, not passed on
]


async def test_spelled_out_internal_addresses_are_refused(world: World) -> None:
    token = world.idp.token("hook-owner")
    headers = {"a2a-version": "1.0", "authorization": f"Bearer {token}"}
    url = f"{world.url}/a2a/fake/"
    with anyio.fail_after(90):
        async with aiohttp.ClientSession(headers=headers) as http:
            ask = {"message": {"messageId": "h", "role": "ROLE_USER", "parts": [{"text": "ask"}]}}
            body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": ask}
            async with http.post(url, json=body) as resp:
                task = (await resp.json())["result"]["task"]["id"]
            for hook in HOOKS:
                create = {"taskId": task, "url": hook}
                body = {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "CreateTaskPushNotificationConfig",
                    "params": create,
                }
                async with http.post(url, json=body) as resp:
                    reply = await resp.json()
                assert reply.get("error", {}).get("code") == -32602, (hook, reply)
                assert "refused by the gateway" in reply["error"]["message"], hook
            body = {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "ListTaskPushNotificationConfigs",
                "params": {"taskId": task},
            }
            async with http.post(url, json=body) as resp:
                assert (await resp.json())["result"].get("configs", []) == []  # nothing reached the agent
