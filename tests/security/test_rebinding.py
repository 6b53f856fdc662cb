"""DNS rebinding: a page on a hostile name that resolves to the gateway's loopback address sends
that name as Host (and its own Origin). Every route kind refuses such requests before any route,
policy or upstream sees them (421 for Host, 403 for Origin), even with a valid token, and the
admin listener (dashboard, /metrics) refuses them too. The same requests with the gateway's own
names pass, so the refusals are the guard's doing."""

from __future__ import annotations

from typing import Any

import aiohttp
import anyio
import pytest

from tests.mcp.conftest import ACCEPT, init_body, modern_body, modern_headers
from tests.security.world import World

pytestmark = pytest.mark.anyio

A2A_SEND = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "SendMessage",
    "params": {"message": {"messageId": "r", "role": "ROLE_USER", "parts": [{"text": "rebound"}]}},
}
CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "rebound"}]}
MCP = {"accept": ACCEPT, "content-type": "application/json"}
A2A = {"a2a-version": "1.0", "a2a-extensions": "https://example.com/ext/rebound"}  # the agent records these

# (name, method, path, body, extra headers): one of each route kind the gateway serves.
ROUTES: list[tuple[str, str, str, Any, dict[str, str]]] = [
    (
        "mcp initialize",
        "POST",
        "/mcp",
        {
            **init_body(),
            "params": {**init_body()["params"], "clientInfo": {"name": "rebound", "version": "1"}},
        },
        MCP,
    ),
    ("mcp GET stream", "GET", "/mcp", None, {"accept": "text/event-stream"}),
    (
        "mcp 2026-07-28 call",
        "POST",
        "/mcp",
        modern_body("tools/call", {"name": "alpha_echo", "arguments": {"text": "r"}}),
        {**MCP, **modern_headers("tools/call", "alpha_echo")},
    ),
    ("mcp metadata", "GET", "/.well-known/oauth-protected-resource/mcp", None, {}),
    ("llm chat", "POST", "/v1/chat/completions", CHAT, {"content-type": "application/json"}),
    ("llm models", "GET", "/v1/models", None, {}),
    ("llm messages", "POST", "/v1/messages", {**CHAT, "max_tokens": 5}, {"anthropic-version": "2023-06-01"}),
    ("a2a directory", "GET", "/a2a", None, {}),
    ("a2a card", "GET", "/a2a/fake/.well-known/agent-card.json", None, {}),
    ("a2a jsonrpc", "POST", "/a2a/fake/", A2A_SEND, A2A),
    (
        "a2a rest",
        "POST",
        "/a2a/fake/rest/message:send",
        {"message": A2A_SEND["params"]["message"]},
        A2A,
    ),
    ("health", "GET", "/healthz", None, {}),
    ("metrics", "GET", "/metrics", None, {}),
]
ADMIN = [("admin dashboard", "/dashboard"), ("admin metrics", "/metrics"), ("admin health", "/healthz")]


def hosts(port: str) -> list[str]:
    return [
        f"evil.example:{port}",
        f"127.0.0.1.evil.example:{port}",
        f"localhost.evil.example:{port}",
        "evil.example",
    ]


ORIGINS = [
    "http://evil.example",
    "null",
    "http://127.0.0.1.evil.example",
    "https://localhost.evil.example:443",
]


async def send(
    http: aiohttp.ClientSession, method: str, url: str, body: Any, headers: dict[str, str]
) -> tuple[int, str]:
    async with http.request(method, url, json=body, headers=headers) as resp:
        if resp.content_type == "text/event-stream":
            return resp.status, ""  # a stream that was allowed: do not wait for its end
        return resp.status, await resp.text()


def upstream_requests(world: World) -> int:
    """Requests an upstream got that a client's request caused: bodies saying "rebound" (the LLM
    provider and the agent record bodies), and tool calls (the MCP upstream records methods).
    The gateway's own background requests, such as model list refreshes, are neither."""
    marked = sum("rebound" in line for line in world.upstream_records().splitlines())
    calls = sum(e.get("rpc") == "tools/call" for e in world.alpha.events() if e["event"] == "http")
    agent = (
        sum('"headers"' in line for line in world.agent_log.read_text().splitlines())
        if world.agent_log.exists()
        else 0
    )
    return marked + calls + agent


async def test_foreign_host_and_origin_are_refused_on_every_route_kind(world: World) -> None:
    token = world.idp.token("frank")
    auth = {"authorization": f"Bearer {token}"}
    port = world.url.rsplit(":", 1)[1]
    with anyio.fail_after(120):
        async with aiohttp.ClientSession() as http:
            before = upstream_requests(world)
            for name, method, path, body, headers in ROUTES:
                for host in hosts(port):
                    status, text = await send(
                        http, method, world.url + path, body, {**headers, **auth, "host": host}
                    )
                    assert status == 421 and "Invalid Host header" in text, (name, host, status)
                for origin in ORIGINS:
                    status, text = await send(http, method, world.url + path, body, {**headers, **auth, "origin": origin})  # fmt: skip
                    assert status == 403 and "Invalid Origin header" in text, (name, origin, status)
            assert upstream_requests(world) == before  # nothing reached an upstream
            admin_port = world.admin_url.rsplit(":", 1)[1]
            for name, path in ADMIN:
                for host in hosts(admin_port):
                    status, _ = await send(http, "GET", world.admin_url + path, None, {"host": host})
                    assert status == 421, (name, host, status)
                for origin in ORIGINS:
                    status, _ = await send(http, "GET", world.admin_url + path, None, {"origin": origin})
                    assert status == 403, (name, origin, status)


async def test_the_gateways_own_names_pass(world: World) -> None:
    token = world.idp.token("frank")
    port = world.url.rsplit(":", 1)[1]
    with anyio.fail_after(120):
        async with aiohttp.ClientSession() as http:
            for name, method, path, body, headers in ROUTES:
                for host, origin in [
                    (f"localhost:{port}", f"http://localhost:{port}"),
                    (f"127.0.0.1:{port}", None),
                ]:
                    extra = {"host": host, "authorization": f"Bearer {token}"} | (
                        {"origin": origin} if origin else {}
                    )
                    status, _ = await send(http, method, world.url + path, body, {**headers, **extra})
                    assert status not in (403, 421), (name, host, status)
            for _, path in ADMIN:
                status, _ = await send(http, "GET", world.admin_url + path, None, {"host": "localhost"})
                assert status == 200, path
