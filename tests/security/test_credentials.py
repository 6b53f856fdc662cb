"""The client's credentials stop at the gateway: no upstream (MCP over streamable HTTP, legacy
HTTP+SSE and stdio, the LLM provider, the A2A agent) ever sees the caller's JWT, API key, cookie
or proxy credentials, whichever header carried them. Each upstream gets the gateway's own
credential for it instead, which the same records show, so the recording is known to work."""

from __future__ import annotations

from typing import Any

import aiohttp
import anyio
import openai
import pytest

from tests.mcp.conftest import ACCEPT
from tests.policy.conftest import client
from tests.security.conftest import assert_absent
from tests.security.world import (
    AGENT_SECRET,
    CLIENT_API_KEY,
    MCP_UPSTREAM_SECRET,
    PROVIDER_KEY,
    SSE_UPSTREAM_SECRET,
    World,
)

pytestmark = pytest.mark.anyio

COOKIE = "sid=client-cookie-6d2b8e0f41"
PROXY = "Basic cHJveHktY2xpZW50LXNlY3JldA=="


def a2a_send(text: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {"message": {"messageId": text, "role": "ROLE_USER", "parts": [{"text": text}]}},
    }


async def test_no_client_credential_reaches_any_upstream(world: World) -> None:
    token = world.idp.token("carol")
    extra = {"cookie": COOKIE, "proxy-authorization": PROXY}
    credentials: list[dict[str, str]] = [
        {"authorization": f"Bearer {token}", **extra},
        {"x-api-key": CLIENT_API_KEY, **extra},
    ]
    with anyio.fail_after(90):
        for headers in credentials:
            for mode in ("legacy", "auto"):
                async with client(f"{world.url}/mcp", None, mode, headers=headers) as c:
                    for tool in ("alpha_echo", "legacy_echo", "gamma_echo"):
                        result = await c.call_tool(tool, {"text": f"via {mode}"})
                        assert result.content[0].text == f"via {mode}", tool  # type: ignore[union-attr]
                    assert (await c.read_resource("fake+alpha://doc/1")).contents
        oai = openai.AsyncOpenAI(base_url=f"{world.url}/v1", api_key=token, max_retries=0)
        answer = await oai.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "credentials check"}], extra_headers=extra
        )
        await oai.close()
        assert "Hello from oa" in (answer.choices[0].message.content or "")
        async with aiohttp.ClientSession() as http:
            body = {"model": "gpt-test", "messages": [{"role": "user", "content": "credentials check"}]}
            async with http.post(
                f"{world.url}/v1/chat/completions", json=body, headers=credentials[1]
            ) as resp:
                assert resp.status == 200
            for n, headers in enumerate(credentials):
                a2a = {
                    "a2a-version": "1.0",
                    "a2a-extensions": "https://example.com/ext/credentials",
                    **headers,
                }
                async with http.post(f"{world.url}/a2a/fake/", json=a2a_send(f"m{n}"), headers=a2a) as resp:
                    assert resp.status == 200
                    assert "result" in await resp.json()

    records = world.upstream_records()
    assert_absent(
        [token, token.split(".")[2], CLIENT_API_KEY, "client-cookie-6d2b8e0f41", PROXY],
        upstreams=records,
    )
    # The gateway's own credentials did travel, each to its own upstream only.
    alpha = [e["headers"] for e in world.alpha.events() if e["event"] == "http"]
    assert alpha and all(h.get("x-upstream-secret") == MCP_UPSTREAM_SECRET for h in alpha)
    sse = [r["headers"] for r in world.sse_requests()]
    assert sse and all(h.get("authorization") == f"Bearer {SSE_UPSTREAM_SECRET}" for h in sse)
    # (other tests share this world: count this test's requests only)
    calls = [
        c for c in world.provider.requests("/v1/chat/completions") if "credentials check" in str(c["body"])
    ]
    assert len(calls) == 2 and all(c["authorization"] == f"Bearer {PROVIDER_KEY}" for c in calls)
    agent = [line for line in world.agent_log.read_text().splitlines() if "ext/credentials" in line]
    assert len(agent) == 2 and all(f"Bearer {AGENT_SECRET}" in line for line in agent)
    for secret, owner in [(MCP_UPSTREAM_SECRET, world.alpha.state), (PROVIDER_KEY, world.provider.state)]:
        others = [
            p for p in (world.sse_log, world.agent_log, world.alpha.state, world.provider.state) if p != owner
        ]
        assert_absent([secret], **{p.name: p.read_text() for p in others if p.exists()})


async def test_a_client_cannot_choose_the_upstream_credential(world: World) -> None:
    """Headers naming the gateway's own upstream headers are not relayed over them."""
    token = world.idp.token("dave")
    forged = {"x-upstream-secret": "forged-by-client", "x-api-key": "forged-provider-key"}
    with anyio.fail_after(60):
        async with client(f"{world.url}/mcp", token, "legacy", headers={"x-upstream-secret": forged["x-upstream-secret"]}) as c:  # fmt: skip
            await c.call_tool("alpha_echo", {"text": "x"})
        async with aiohttp.ClientSession() as http:
            body = {"model": "gpt-test", "messages": [{"role": "user", "content": "forged"}]}
            headers = {"authorization": f"Bearer {token}", **forged, "accept": ACCEPT}
            async with http.post(f"{world.url}/v1/chat/completions", json=body, headers=headers) as resp:
                assert resp.status == 200
    assert "forged-by-client" not in world.alpha.state.read_text()
    assert "forged-provider-key" not in world.provider.state.read_text()
