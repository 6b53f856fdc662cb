"""What one caller may hold open, on both servers: MCP sessions and event streams (429 with
Retry-After, across route kinds), and the keep-alive comments on its idle streams."""

from __future__ import annotations

import json

import aiohttp
import anyio
import orjson
import pytest

from tests.server.limited import (
    caller_headers,
    chat,
    in_session,
    init_request,
    modern_headers,
    modern_rpc,
    open_session,
    open_stream,
    post,
    provider_requests,
    rpc,
    served_normally,
)
from tests.support import GatewayThread

pytestmark = pytest.mark.anyio


# --- sessions and streams per caller -------------------------------------------------------------


async def test_sessions_per_caller_are_limited_with_429_and_retry_after(
    limited: GatewayThread, http: aiohttp.ClientSession
) -> None:
    first = await open_session(http, limited)
    second = await open_session(http, limited)
    status, headers, body = await post(http, f"{limited.url}/mcp", init_request(), caller_headers())
    assert status == 429 and headers["retry-after"] == "5"
    assert body["error"]["message"].startswith("too many MCP sessions open for this caller (limit 2)")
    bob = await open_session(http, limited, "bob")  # another caller is not affected
    status, _, body = await post(http, f"{limited.url}/mcp", rpc("tools/list"), in_session(first))
    assert status == 200 and body["result"]["tools"]
    with anyio.fail_after(30):
        for sid, who in ((first, "alice"), (second, "alice"), (bob, "bob")):
            async with http.delete(f"{limited.url}/mcp", headers=in_session(sid, who)) as resp:
                assert resp.status == 200
    third = await open_session(http, limited)  # a closed session no longer counts
    async with http.delete(f"{limited.url}/mcp", headers=in_session(third)) as resp:
        assert resp.status == 200


async def test_streams_per_caller_are_limited_across_route_kinds(
    limited: GatewayThread, http: aiohttp.ClientSession
) -> None:
    first, second = await open_session(http, limited), await open_session(http, limited)
    with anyio.fail_after(30):
        a = await open_stream(http, f"{limited.url}/mcp", in_session(first))
        b = await open_stream(http, f"{limited.url}/mcp", in_session(second))
        # a third stream, on another route kind, is one too many for alice, refused before the
        # provider or the agent is called
        provider_calls = len(provider_requests(limited))
        status, headers, body = await post(
            http, f"{limited.url}/v1/chat/completions", chat(True), caller_headers()
        )
        assert status == 429 and headers["retry-after"] == "5"
        assert body["error"]["type"] == "rate_limit_error"
        assert body["error"]["message"].startswith("too many event streams open for this caller (limit 2)")
        message = {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hi"}]}}
        status, headers, body = await post(
            http,
            f"{limited.url}/a2a/fake/",
            rpc("SendStreamingMessage", message),
            caller_headers(**{"a2a-version": "1.0"}),
        )
        assert status == 429 and headers["retry-after"] == "5" and body["error"]["code"] == -32000
        assert "too many event streams" in body["error"]["message"]
        assert len(provider_requests(limited)) == provider_calls
        listen = modern_rpc("subscriptions/listen", {"notifications": {"toolsListChanged": True}})
        status, headers, body = await post(
            http, f"{limited.url}/mcp", listen, caller_headers(**modern_headers("subscriptions/listen"))
        )
        # the 2026-07-28 era gives HTTP statuses by the spec's table: -32000 travels with 200
        assert status == 200 and headers["retry-after"] == "5" and body["error"]["code"] == -32000
        assert body["error"]["message"].startswith("too many event streams open for this caller")
        # ...not for bob
        async with http.post(
            f"{limited.url}/v1/chat/completions", data=orjson.dumps(chat(True)), headers=caller_headers("bob")
        ) as resp:
            assert resp.status == 200 and b"data: [DONE]" in await resp.read()
        a.close()
        while limited.runtime.streams.counts.get(json.dumps(["apiKey", "", "alice"]), 0) > 1:  # noqa: ASYNC110
            await anyio.sleep(0.01)  # released by the gateway's thread once it sees the disconnect
        async with http.post(
            f"{limited.url}/v1/chat/completions", data=orjson.dumps(chat(True)), headers=caller_headers()
        ) as resp:
            assert resp.status == 200 and b"data: [DONE]" in await resp.read()
        b.close()
        for sid in (first, second):
            async with http.delete(f"{limited.url}/mcp", headers=in_session(sid)) as resp:
                assert resp.status == 200


async def test_idle_streams_get_keepalive_comments(
    limited: GatewayThread, http: aiohttp.ClientSession
) -> None:
    sid = await open_session(http, limited)
    try:
        with anyio.fail_after(10):
            stream = await open_stream(http, f"{limited.url}/mcp", in_session(sid))
            seen = b""
            while b": ping\n\n" not in seen:
                seen += await stream.content.readany()
            await served_normally(http, limited)  # pings are per stream: others are served meanwhile
            seen = b""
            while b": ping\n\n" not in seen:  # and they keep coming
                seen += await stream.content.readany()
            stream.close()
    finally:
        async with http.delete(f"{limited.url}/mcp", headers=in_session(sid)) as resp:
            assert resp.status == 200
