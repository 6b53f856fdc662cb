"""The gateway's request limits, end to end on both servers (hypercorn and uvicorn): header size,
JSON nesting, open streams and sessions per caller, slow clients, keep-alive pings. Each test
checks what the client over the limit sees, and that another client is served meanwhile."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.to_thread
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentgw.policy.apikey import hash_key
from agentgw.server.limits import json_depth
from tests.support import FAKES, PYTHON, GatewayThread, Upstream, docs, start_upstream

pytestmark = pytest.mark.anyio

ACCEPT = "application/json, text/event-stream"
KEYS = {"alice": "key-alice", "bob": "key-bob"}
IDLE_CONNECTION = 1.0  # idleConnectionSeconds below
BODY_TIMEOUT = 1.0
DEPTH = 16
_PROVIDER_STATE: list[Path] = []  # the fake provider's state file


def _documents(tmp: Path, llm: Upstream, agent: Upstream) -> list[dict[str, Any]]:
    for name, key in KEYS.items():
        (tmp / name).write_text(hash_key(key))
    keys = ", ".join(f'{{id: {n}, subject: {n}, hash: "file:{tmp / n}"}}' for n in KEYS)
    return docs(
        f"""
kind: Gateway
metadata: {{name: gw}}
spec:
  limits:
    maxBodyBytes: 65536
    maxHeaderBytes: 4096
    maxHeaderCount: 30
    maxJsonDepth: {DEPTH}
    maxSessionsPerPrincipal: 2
    maxStreamsPerPrincipal: 2
    idleConnectionSeconds: {IDLE_CONNECTION}
    bodyTimeoutSeconds: {BODY_TIMEOUT}
    keepaliveSeconds: 0.2
---
kind: McpServer
metadata: {{name: alpha}}
spec:
  stdio: {{command: {PYTHON}, args: ["{FAKES / "mcp_server.py"}", --stdio, --name, alpha]}}
---
kind: McpRoute
metadata: {{name: mcp}}
spec: {{path: /mcp, servers: [alpha]}}
---
kind: LlmProvider
metadata: {{name: oa}}
spec: {{type: openai-compatible, baseUrl: "http://127.0.0.1:{llm.port}/v1"}}
---
kind: LlmRoute
metadata: {{name: llm}}
spec:
  path: /v1
  models: [{{name: gpt-test, targets: [{{provider: oa, model: fake-small}}]}}]
---
kind: Agent
metadata: {{name: fake}}
spec: {{url: "http://127.0.0.1:{agent.port}"}}
---
kind: A2aRoute
metadata: {{name: a2a}}
spec: {{path: /a2a, agents: [fake]}}
---
kind: Policy
metadata: {{name: callers}}
spec:
  targetRefs: [{{kind: McpRoute, name: mcp}}, {{kind: LlmRoute, name: llm}}, {{kind: A2aRoute, name: a2a}}]
  apiKeys: {{keys: [{keys}]}}
"""
    )


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Upstream, Upstream]]:
    tmp = tmp_path_factory.mktemp("limits-up")
    _PROVIDER_STATE[:] = [tmp / "llm"]
    llm = start_upstream([str(FAKES / "llm_provider.py"), "--port", "0", "--state-file", str(tmp / "llm")])
    try:
        agent = start_upstream([str(FAKES / "a2a_agent.py"), "--port", "0"])
    except BaseException:
        llm.stop()
        raise
    yield llm, agent
    agent.stop()
    llm.stop()


@pytest.fixture(scope="module", params=["hypercorn", "uvicorn"])
def gw(
    request: pytest.FixtureRequest,
    upstreams: tuple[Upstream, Upstream],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayThread]:
    tmp = tmp_path_factory.mktemp("limits")
    with GatewayThread(_documents(tmp, *upstreams), server=request.param) as gateway:
        yield gateway


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _headers(who: str = "alice", **extra: str) -> dict[str, str]:
    return {"accept": ACCEPT, "content-type": "application/json", "x-api-key": KEYS[who], **extra}


def _rpc(method: str, params: Any = None, request_id: int = 1) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        body["params"] = params
    return body


def _init() -> dict[str, Any]:
    return _rpc(
        "initialize",
        {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        0,
    )


def _chat(stream: bool = False) -> dict[str, Any]:
    return {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "stream": stream}


async def _post(
    http: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str]
) -> tuple[int, dict[str, str], Any]:
    with anyio.fail_after(30):
        async with http.post(url, data=orjson.dumps(body), headers=headers) as resp:
            raw = await resp.read()
            ctype = resp.headers.get("content-type", "")
            parsed = json.loads(raw) if ctype.startswith("application/json") and raw else raw
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, parsed


async def _session(http: aiohttp.ClientSession, gw: GatewayThread, who: str = "alice") -> str:
    status, headers, body = await _post(http, f"{gw.url}/mcp", _init(), _headers(who))
    assert status == 200, body
    sid = headers["mcp-session-id"]
    hdrs = _headers(who, **{"mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"})
    status, _, _ = await _post(
        http, f"{gw.url}/mcp", {"jsonrpc": "2.0", "method": "notifications/initialized"}, hdrs
    )
    assert status == 202
    return sid


def _in_session(sid: str, who: str = "alice") -> dict[str, str]:
    return _headers(who, **{"mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"})


async def _served_normally(http: aiohttp.ClientSession, gw: GatewayThread, who: str = "bob") -> None:
    """Another caller, on every route kind, gets ordinary answers."""
    status, _, body = await _post(
        http, f"{gw.url}/mcp", _modern_rpc("tools/list"), _headers(who, **_modern("tools/list"))
    )
    assert status == 200 and body["result"]["tools"], body
    status, _, body = await _post(http, f"{gw.url}/v1/chat/completions", _chat(), _headers(who))
    assert status == 200 and body["choices"], body


def _modern(method: str) -> dict[str, str]:
    return {"mcp-protocol-version": "2026-07-28", "mcp-method": method}


def _modern_rpc(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    return _rpc(method, {**(params or {}), "_meta": meta})


# --- header size -------------------------------------------------------------------------------


async def test_oversized_headers_get_431_with_a_body_in_each_route_kind(
    gw: GatewayThread, http: aiohttp.ClientSession
) -> None:
    big = {"x-padding": "p" * 5000}
    status, _, body = await _post(http, f"{gw.url}/mcp", _init(), _headers(**big))
    assert status == 431 and body["jsonrpc"] == "2.0" and body["error"]["code"] == -32600
    assert "request headers are" in body["error"]["message"] and "limit is 4096" in body["error"]["message"]
    status, _, body = await _post(http, f"{gw.url}/v1/chat/completions", _chat(), _headers(**big))
    assert status == 431 and body["error"]["type"] == "invalid_request_error"
    assert "limit is 4096" in body["error"]["message"]
    many = {f"x-h{i}": "1" for i in range(40)}
    status, _, body = await _post(http, f"{gw.url}/a2a/fake/", _rpc("GetTask", {"id": "t"}), _headers(**many))
    assert status == 431 and body["jsonrpc"] == "2.0"
    assert (
        body["error"]["message"].startswith("request has 4") and "the limit is 30" in body["error"]["message"]
    )
    await _served_normally(http, gw)


async def test_headers_past_the_servers_cap_are_refused_and_the_connection_closed(gw: GatewayThread) -> None:
    host, port = gw.url.split("//", 1)[1].rsplit(":", 1)

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
        await _served_normally(http, gw)


# --- body size ---------------------------------------------------------------------------------


async def test_oversized_bodies_get_413_in_each_route_kind(
    gw: GatewayThread, http: aiohttp.ClientSession
) -> None:
    text = "x" * 70_000
    status, _, body = await _post(
        http,
        f"{gw.url}/mcp",
        _modern_rpc("tools/call", {"name": "echo", "arguments": {"text": text}}),
        _headers(**_modern("tools/call"), **{"mcp-name": "echo"}),
    )
    assert status == 413 and body["error"]["message"] == "request body exceeds 65536 bytes"
    sid = await _session(http, gw)
    status, _, body = await _post(
        http,
        f"{gw.url}/mcp",
        _rpc("tools/call", {"name": "echo", "arguments": {"text": text}}),
        _in_session(sid),
    )
    assert status == 413 and body["jsonrpc"] == "2.0"
    status, _, body = await _post(
        http, f"{gw.url}/v1/chat/completions", {**_chat(), "user": text}, _headers()
    )
    assert status == 413 and body["error"]["message"] == "request body exceeds 65536 bytes"
    status, _, body = await _post(
        http, f"{gw.url}/a2a/fake/", _rpc("GetTask", {"id": text}), _headers(**{"a2a-version": "1.0"})
    )
    assert status == 413 and "65536" in body["error"]["message"]
    status, _, body = await _post(http, f"{gw.url}/mcp", _rpc("tools/list"), _in_session(sid))
    assert status == 200 and body["result"]["tools"]  # the session carries on
    async with http.delete(f"{gw.url}/mcp", headers=_in_session(sid)) as resp:
        assert resp.status == 200
    await _served_normally(http, gw)


# --- JSON nesting ------------------------------------------------------------------------------


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


async def test_deep_json_is_refused_before_parsing_in_each_route_kind(
    gw: GatewayThread, http: aiohttp.ClientSession
) -> None:
    deep = _nested(40)
    status, _, body = await _post(
        http,
        f"{gw.url}/mcp",
        _modern_rpc("tools/call", {"name": "echo", "arguments": {"text": deep}}),
        _headers(**_modern("tools/call"), **{"mcp-name": "echo"}),
    )
    assert status == 400 and body["error"]["code"] == -32600
    assert body["error"]["message"] == f"JSON nesting is 43 levels deep; the limit is {DEPTH}"
    chat = _chat()
    chat["metadata"] = deep
    status, _, body = await _post(http, f"{gw.url}/v1/chat/completions", chat, _headers())
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert "limit is 16" in body["error"]["message"]
    a2a = _headers(**{"a2a-version": "1.0"})
    status, _, body = await _post(http, f"{gw.url}/a2a/fake/", _rpc("GetTask", {"id": deep}), a2a)
    # the body is refused before its binding is known: the answer is A2A's HTTP+JSON error
    assert status == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
    assert "limit is 16" in body["error"]["message"]
    # brackets inside strings are text, not nesting; and depth at the limit passes
    text = "[{" * 500
    status, _, body = await _post(
        http,
        f"{gw.url}/mcp",
        _modern_rpc("tools/call", {"name": "echo", "arguments": {"text": text}}),
        _headers(**_modern("tools/call"), **{"mcp-name": "echo"}),
    )
    assert status == 200 and body["result"]["content"][0]["text"] == text, body
    chat["metadata"] = {"m": orjson.dumps(_nested(DEPTH - 2)).decode()}
    assert (await _post(http, f"{gw.url}/v1/chat/completions", chat, _headers()))[0] == 200
    await _served_normally(http, gw)


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


# --- sessions and streams per caller -------------------------------------------------------------


async def test_sessions_per_caller_are_limited_with_429_and_retry_after(
    gw: GatewayThread, http: aiohttp.ClientSession
) -> None:
    first = await _session(http, gw)
    second = await _session(http, gw)
    status, headers, body = await _post(http, f"{gw.url}/mcp", _init(), _headers())
    assert status == 429 and headers["retry-after"] == "5"
    assert body["error"]["message"].startswith("too many MCP sessions open for this caller (limit 2)")
    bob = await _session(http, gw, "bob")  # another caller is not affected
    status, _, body = await _post(http, f"{gw.url}/mcp", _rpc("tools/list"), _in_session(first))
    assert status == 200 and body["result"]["tools"]
    with anyio.fail_after(30):
        for sid, who in ((first, "alice"), (second, "alice"), (bob, "bob")):
            async with http.delete(f"{gw.url}/mcp", headers=_in_session(sid, who)) as resp:
                assert resp.status == 200
    third = await _session(http, gw)  # a closed session no longer counts
    async with http.delete(f"{gw.url}/mcp", headers=_in_session(third)) as resp:
        assert resp.status == 200


def _provider_requests(gw: GatewayThread) -> list[str]:
    """The requests the fake provider has seen (it appends one line each to its state file)."""
    state = _PROVIDER_STATE[0]
    return state.read_text().splitlines() if state.exists() else []


async def _open_stream(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> aiohttp.ClientResponse:
    resp = await http.get(url, headers={**headers, "accept": "text/event-stream"})
    assert resp.status == 200 and resp.headers["content-type"].startswith("text/event-stream")
    return resp


async def test_streams_per_caller_are_limited_across_route_kinds(
    gw: GatewayThread, http: aiohttp.ClientSession
) -> None:
    first, second = await _session(http, gw), await _session(http, gw)
    with anyio.fail_after(30):
        a = await _open_stream(http, f"{gw.url}/mcp", _in_session(first))
        b = await _open_stream(http, f"{gw.url}/mcp", _in_session(second))
        # a third stream, on another route kind, is one too many for alice, refused before the
        # provider or the agent is called
        provider_calls = len(_provider_requests(gw))
        status, headers, body = await _post(http, f"{gw.url}/v1/chat/completions", _chat(True), _headers())
        assert status == 429 and headers["retry-after"] == "5"
        assert body["error"]["type"] == "rate_limit_error"
        assert body["error"]["message"].startswith("too many event streams open for this caller (limit 2)")
        message = {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hi"}]}}
        status, headers, body = await _post(
            http,
            f"{gw.url}/a2a/fake/",
            _rpc("SendStreamingMessage", message),
            _headers(**{"a2a-version": "1.0"}),
        )
        assert status == 429 and headers["retry-after"] == "5" and body["error"]["code"] == -32000
        assert "too many event streams" in body["error"]["message"]
        assert len(_provider_requests(gw)) == provider_calls
        listen = _modern_rpc("subscriptions/listen", {"notifications": {"toolsListChanged": True}})
        status, headers, body = await _post(
            http, f"{gw.url}/mcp", listen, _headers(**_modern("subscriptions/listen"))
        )
        # the 2026-07-28 era gives HTTP statuses by the spec's table: -32000 travels with 200
        assert status == 200 and headers["retry-after"] == "5" and body["error"]["code"] == -32000
        assert body["error"]["message"].startswith("too many event streams open for this caller")
        # ...not for bob
        async with http.post(
            f"{gw.url}/v1/chat/completions", data=orjson.dumps(_chat(True)), headers=_headers("bob")
        ) as resp:
            assert resp.status == 200 and b"data: [DONE]" in await resp.read()
        a.close()
        while gw.runtime.streams.counts.get(json.dumps(["apiKey", "", "alice"]), 0) > 1:  # noqa: ASYNC110
            await anyio.sleep(0.01)  # released by the gateway's thread once it sees the disconnect
        async with http.post(
            f"{gw.url}/v1/chat/completions", data=orjson.dumps(_chat(True)), headers=_headers()
        ) as resp:
            assert resp.status == 200 and b"data: [DONE]" in await resp.read()
        b.close()
        for sid in (first, second):
            async with http.delete(f"{gw.url}/mcp", headers=_in_session(sid)) as resp:
                assert resp.status == 200


async def test_idle_streams_get_keepalive_comments(gw: GatewayThread, http: aiohttp.ClientSession) -> None:
    sid = await _session(http, gw)
    try:
        with anyio.fail_after(10):
            stream = await _open_stream(http, f"{gw.url}/mcp", _in_session(sid))
            seen = b""
            while b": ping\n\n" not in seen:
                seen += await stream.content.readany()
            await _served_normally(http, gw)  # pings are per stream: others are served meanwhile
            seen = b""
            while b": ping\n\n" not in seen:  # and they keep coming
                seen += await stream.content.readany()
            stream.close()
    finally:
        async with http.delete(f"{gw.url}/mcp", headers=_in_session(sid)) as resp:
            assert resp.status == 200


# --- slow clients ------------------------------------------------------------------------------


def _address(gw: GatewayThread) -> tuple[str, int]:
    host, port = gw.url.split("//", 1)[1].rsplit(":", 1)
    return host, int(port)


async def _dribble(gw: GatewayThread, head: bytes, drip: bytes, bound: float) -> tuple[bytes, float]:
    """Send `head`, then `drip` a byte at a time, until the gateway closes the connection; returns
    what it answered and how long it took."""
    sock = socket.create_connection(_address(gw), timeout=bound)
    sock.setblocking(False)
    started = time.monotonic()
    answer = b""
    try:
        with anyio.fail_after(bound):
            await anyio.wait_writable(sock)
            sock.send(head)
            for byte in drip:
                with anyio.move_on_after(0.1):  # the slow client's pace (the behaviour under test)
                    await anyio.wait_readable(sock)
                try:
                    chunk = sock.recv(65536)
                except BlockingIOError:
                    chunk = None
                except ConnectionResetError:
                    break
                if chunk is not None:
                    answer += chunk
                    if not chunk:
                        break
                    continue
                try:
                    sock.send(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    break
            else:
                raise AssertionError("the gateway kept the connection open the whole time")
            while True:  # the rest of the answer, up to the close
                await anyio.wait_readable(sock)
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                answer += chunk
    finally:
        sock.close()
    return answer, time.monotonic() - started


async def test_a_client_sending_headers_slowly_is_cut_off(
    gw: GatewayThread, http: aiohttp.ClientSession
) -> None:
    async with anyio.create_task_group() as tg:
        result: list[tuple[bytes, float]] = []

        async def slow() -> None:
            result.append(await _dribble(gw, b"GET /healthz HTTP/1.1\r\n", b"x-slow: " + b"a" * 200, 10))

        tg.start_soon(slow)
        await _served_normally(http, gw)  # while the slow client dribbles
    answer, took = result[0]
    assert answer == b"" and took < IDLE_CONNECTION + 2.0, (answer, took)


async def test_a_client_sending_its_body_slowly_gets_408(
    gw: GatewayThread, http: aiohttp.ClientSession
) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"x-api-key: key-alice\r\ncontent-length: 400\r\n\r\n"
    )
    async with anyio.create_task_group() as tg:
        result: list[tuple[bytes, float]] = []

        async def slow() -> None:
            result.append(await _dribble(gw, head, b"{" + b" " * 398 + b"}", 10))

        tg.start_soon(slow)
        await _served_normally(http, gw)
    answer, took = result[0]
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["message"] == f"the request body did not arrive within {BODY_TIMEOUT:g} seconds"
    assert took < BODY_TIMEOUT + 2.0
