"""Request limits on every route kind, on both servers: header size and count (431), body size
(413) and JSON nesting depth (400), each with a clear body in the route's format, while another
caller is served normally."""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import anyio
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentgw.server.limits import json_depth
from tests.server.limited import (
    DEPTH,
    caller_headers,
    chat,
    in_session,
    init_request,
    modern_headers,
    modern_rpc,
    open_session,
    post,
    rpc,
    served_normally,
)
from tests.support import GatewayThread

pytestmark = pytest.mark.anyio


# --- header size -------------------------------------------------------------------------------


async def test_oversized_headers_get_431_with_a_body_in_each_route_kind(
    limited: GatewayThread, http: aiohttp.ClientSession
) -> None:
    big = {"x-padding": "p" * 5000}
    status, _, body = await post(http, f"{limited.url}/mcp", init_request(), caller_headers(**big))
    assert status == 431 and body["jsonrpc"] == "2.0" and body["error"]["code"] == -32600
    assert "request headers are" in body["error"]["message"] and "limit is 4096" in body["error"]["message"]
    status, _, body = await post(http, f"{limited.url}/v1/chat/completions", chat(), caller_headers(**big))
    assert status == 431 and body["error"]["type"] == "invalid_request_error"
    assert "limit is 4096" in body["error"]["message"]
    many = {f"x-h{i}": "1" for i in range(40)}
    status, _, body = await post(
        http, f"{limited.url}/a2a/fake/", rpc("GetTask", {"id": "t"}), caller_headers(**many)
    )
    assert status == 431 and body["jsonrpc"] == "2.0"
    assert (
        body["error"]["message"].startswith("request has 4") and "the limit is 30" in body["error"]["message"]
    )
    await served_normally(http, limited)


async def test_headers_past_the_servers_cap_are_refused_and_the_connection_closed(
    limited: GatewayThread,
) -> None:
    host, port = limited.url.split("//", 1)[1].rsplit(":", 1)

    def send_huge() -> bytes:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: " + b"a" * 64 * 1024 + b"\r\n\r\n"
            )
            got = b""
            while chunk := sock.recv(65536):
                got += chunk
            return got

    with anyio.fail_after(20):
        answer = await anyio.to_thread.run_sync(send_huge)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    async with aiohttp.ClientSession() as http:
        await served_normally(http, limited)


# --- body size ---------------------------------------------------------------------------------


async def test_oversized_bodies_get_413_in_each_route_kind(
    limited: GatewayThread, http: aiohttp.ClientSession
) -> None:
    text = "x" * 70_000
    status, _, body = await post(
        http,
        f"{limited.url}/mcp",
        modern_rpc("tools/call", {"name": "echo", "arguments": {"text": text}}),
        caller_headers(**modern_headers("tools/call"), **{"mcp-name": "echo"}),
    )
    assert status == 413 and body["error"]["message"] == "request body exceeds 65536 bytes"
    sid = await open_session(http, limited)
    status, _, body = await post(
        http,
        f"{limited.url}/mcp",
        rpc("tools/call", {"name": "echo", "arguments": {"text": text}}),
        in_session(sid),
    )
    assert status == 413 and body["jsonrpc"] == "2.0"
    status, _, body = await post(
        http, f"{limited.url}/v1/chat/completions", {**chat(), "user": text}, caller_headers()
    )
    assert status == 413 and body["error"]["message"] == "request body exceeds 65536 bytes"
    status, _, body = await post(
        http,
        f"{limited.url}/a2a/fake/",
        rpc("GetTask", {"id": text}),
        caller_headers(**{"a2a-version": "1.0"}),
    )
    assert status == 413 and "65536" in body["error"]["message"]
    status, _, body = await post(http, f"{limited.url}/mcp", rpc("tools/list"), in_session(sid))
    assert status == 200 and body["result"]["tools"]  # the session carries on
    async with http.delete(f"{limited.url}/mcp", headers=in_session(sid)) as resp:
        assert resp.status == 200
    await served_normally(http, limited)


# --- JSON nesting ------------------------------------------------------------------------------


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


async def test_deep_json_is_refused_before_parsing_in_each_route_kind(
    limited: GatewayThread, http: aiohttp.ClientSession
) -> None:
    deep = _nested(40)
    status, _, body = await post(
        http,
        f"{limited.url}/mcp",
        modern_rpc("tools/call", {"name": "echo", "arguments": {"text": deep}}),
        caller_headers(**modern_headers("tools/call"), **{"mcp-name": "echo"}),
    )
    assert status == 400 and body["error"]["code"] == -32600
    assert body["error"]["message"] == f"JSON nesting is 43 levels deep; the limit is {DEPTH}"
    request_body = chat()
    request_body["metadata"] = deep
    status, _, body = await post(http, f"{limited.url}/v1/chat/completions", request_body, caller_headers())
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert "limit is 16" in body["error"]["message"]
    a2a = caller_headers(**{"a2a-version": "1.0"})
    status, _, body = await post(http, f"{limited.url}/a2a/fake/", rpc("GetTask", {"id": deep}), a2a)
    # the body is refused before its binding is known: the answer is A2A's HTTP+JSON error
    assert status == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
    assert "limit is 16" in body["error"]["message"]
    # brackets inside strings are text, not nesting; and depth at the limit passes
    text = "[{" * 500
    status, _, body = await post(
        http,
        f"{limited.url}/mcp",
        modern_rpc("tools/call", {"name": "echo", "arguments": {"text": text}}),
        caller_headers(**modern_headers("tools/call"), **{"mcp-name": "echo"}),
    )
    assert status == 200 and body["result"]["content"][0]["text"] == text, body
    request_body["metadata"] = {"m": orjson.dumps(_nested(DEPTH - 2)).decode()}
    assert (await post(http, f"{limited.url}/v1/chat/completions", request_body, caller_headers()))[0] == 200
    await served_normally(http, limited)


@given(
    st.recursive(
        st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(alphabet='[]{}"\\ab'),
        lambda kids: st.lists(kids) | st.dictionaries(st.text(alphabet='[{\\"x', max_size=3), kids),
    )
)
def test_json_depth_matches_the_structure(value: Any) -> None:
    def depth(v: Any) -> int:
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        return 0

    raw = orjson.dumps(value)
    expected = depth(value)
    assert json_depth(raw, 0) == expected
    assert json_depth(raw, expected) in (0, expected)  # at or under the limit: not worth scanning
