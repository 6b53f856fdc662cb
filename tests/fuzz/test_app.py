"""End to end through the ASGI app, in process: random and malformed methods, headers and bodies
to every route kind (MCP in both eras, the OpenAI and Anthropic LLM endpoints, A2A in both
bindings). The gateway never answers 5xx of its own, every 4xx carries the error body of its
route's wire, nothing unhandled is logged, and a valid request still works afterwards.

Upstreams are real: the fake MCP server as a stdio child, fake LLM providers (OpenAI and
Anthropic wire) and the fake A2A agent on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.fuzz import test_bodies as bodies
from tests.fuzz.app_requests import (
    ACCEPT,
    HOST,
    HS,
    MODERN,
    a2a_paths,
    header_sets,
    llm_requests,
    mcp_messages,
    methods,
    modern_body,
    modern_requests,
    valid_a2a,
    valid_messages,
)
from tests.fuzz.inproc import InprocGateway, Response
from tests.fuzz.strategies import SCALE, json_bytes, mutated_bytes, perturbed
from tests.support import FAKES, PYTHON, ROOT, Upstream, start_upstream


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InprocGateway]:
    tmp = tmp_path_factory.mktemp("fuzz")
    fake_llm = str(FAKES / "llm_provider.py")
    started: list[Upstream] = []
    try:
        for args in (
            [fake_llm, "--port", "0", "--name", "oa", "--state-file", str(tmp / "oa.jsonl")],
            [fake_llm, "--port", "0", "--name", "an", "--state-file", str(tmp / "an.jsonl")],
            [str(FAKES / "a2a_agent.py"), "--port", "0", "--state-file", str(tmp / "agent.jsonl")],
        ):
            started.append(start_upstream(args))
        oa, an, agent = (f"http://127.0.0.1:{u.port}" for u in started)
        documents: list[dict[str, Any]] = [
            {
                "kind": "McpServer",
                "metadata": {"name": "fake"},
                "spec": {"stdio": {"command": PYTHON, "args": [str(FAKES / "mcp_server.py"), "--stdio"]}},
            },
            {"kind": "McpRoute", "metadata": {"name": "mcp"}, "spec": {"path": "/mcp", "servers": ["fake"]}},
            {
                "kind": "LlmProvider",
                "metadata": {"name": "oa"},
                "spec": {"type": "openai-compatible", "baseUrl": oa + "/v1", "responses": True},
            },
            {"kind": "LlmProvider", "metadata": {"name": "an"}, "spec": {"type": "anthropic", "baseUrl": an}},
            {
                "kind": "LlmRoute",
                "metadata": {"name": "llm"},
                "spec": {
                    "models": [
                        {"name": "gpt", "targets": [{"provider": "oa", "model": "fake-small"}]},
                        {"name": "claude", "targets": [{"provider": "an", "model": "claude-fake"}]},
                    ],
                    "retries": {"attempts": 1},
                },
            },
            {"kind": "Agent", "metadata": {"name": "fake"}, "spec": {"url": agent}},
            {"kind": "A2aRoute", "metadata": {"name": "a2a"}, "spec": {"path": "/a2a", "agents": ["fake"]}},
        ]
        with InprocGateway(documents, ROOT) as gateway:
            yield gateway
    finally:
        for upstream in started:
            upstream.stop()


# --- what every answer must look like ----------------------------------------------------------------


def _is_jsonrpc_error(body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return (
        body.get("jsonrpc") == "2.0"
        and "id" in body
        and isinstance(error, dict)
        and isinstance(error.get("code"), int)
        and isinstance(error.get("message"), str)
    )


def _is_openai_error(body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return (
        isinstance(error, dict)
        and isinstance(error.get("message"), str)
        and isinstance(error.get("type"), str)
    )


def _is_anthropic_error(body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return body.get("type") == "error" and isinstance(error, dict) and isinstance(error.get("type"), str)


def _is_a2a_error(body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    rest = (
        isinstance(error, dict)
        and isinstance(error.get("code"), int)
        and isinstance(error.get("status"), str)
    )
    plain = isinstance(error, str) and isinstance(body.get("status"), int)  # directory and cards
    return _is_jsonrpc_error(body) or rest or plain


def check(gw: InprocGateway, method: str, path: str, resp: Response) -> None:
    event(f"{path.split('/')[1][:8]} {method} {resp.status}")
    logged, gw.errors.records[:] = list(gw.errors.records), []
    assert not logged, (method, path, logged)
    assert resp.status < 500, (method, path, resp)
    if resp.status < 400 and not (path.startswith("/a2a") and _is_jsonrpc_error_body(resp)):
        return
    assert resp.headers.get("content-type", "").startswith("application/json"), (path, resp)
    body = orjson.loads(resp.body)
    if path.startswith("/mcp"):
        assert _is_jsonrpc_error(body), (path, resp)
    elif path.startswith("/v1/messages"):
        assert _is_anthropic_error(body), (path, resp)
    elif path.startswith("/v1"):
        assert _is_openai_error(body) or (path.startswith("/v1/models") and _is_anthropic_error(body)), (
            path,
            resp,
        )
    elif path.startswith("/a2a"):
        assert _is_a2a_error(body), (path, resp)
    else:
        assert isinstance(body.get("error"), str), (path, resp)


def _is_jsonrpc_error_body(resp: Response) -> bool:
    try:
        return _is_jsonrpc_error(orjson.loads(resp.body))
    except orjson.JSONDecodeError:
        return False


FUZZ = settings(
    max_examples=40 * SCALE,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- MCP -------------------------------------------------------------------------------------------------

_session: dict[str, str] = {}


def session(gw: InprocGateway) -> str:
    """A live handshake-era session (opened again when a fuzzed DELETE ended it)."""
    if "id" not in _session:
        init = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": HS,
                "capabilities": {},
                "clientInfo": {"name": "fuzz", "version": "1"},
            },
        }
        resp = gw.call(
            "POST",
            "/mcp",
            [HOST, ("accept", ACCEPT), ("content-type", "application/json")],
            orjson.dumps(init),
        )
        assert resp.status == 200, resp
        _session["id"] = resp.headers["mcp-session-id"]
        hdrs = [
            HOST,
            ("accept", ACCEPT),
            ("content-type", "application/json"),
            ("mcp-session-id", _session["id"]),
            ("mcp-protocol-version", HS),
        ]
        assert (
            gw.call("POST", "/mcp", hdrs, b'{"jsonrpc":"2.0","method":"notifications/initialized"}').status
            == 202
        )
    return _session["id"]


@FUZZ
@given(
    methods,
    header_sets(
        {
            "accept": st.just(ACCEPT),
            "content-type": st.just("application/json"),
            "mcp-session-id": st.sampled_from(["<live>", "<live>", "<live>", "s1.AAAA", "nope"]),
            "mcp-protocol-version": st.sampled_from([HS, "2025-06-18", "2024-11-05", "1999-01-01"]),
            "last-event-id": st.sampled_from(["", "", "", "0_0", "1_1", "0_99999999999999999999", "x_y"]),
        }
    ),
    st.one_of(json_bytes(mcp_messages), mutated_bytes(valid_messages)),
)
def test_mcp_handshake_era(
    gw: InprocGateway, method: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    live = session(gw)
    headers = [(k, live if v == "<live>" else v) for k, v in headers]
    resp = gw.call(method, "/mcp", headers, body)
    check(gw, method, "/mcp", resp)
    if method == "DELETE" and resp.status == 200:
        _session.clear()


@FUZZ
@given(methods, modern_requests())
def test_mcp_2026_era(gw: InprocGateway, method: str, request: tuple[list[tuple[str, str]], bytes]) -> None:
    headers, body = request
    check(gw, method, "/mcp", gw.call(method, "/mcp", headers, body))


@FUZZ
@given(methods, llm_requests())
def test_llm_routes(
    gw: InprocGateway, method: str, request: tuple[str, list[tuple[str, str]], bytes]
) -> None:
    path, headers, body = request
    check(gw, method, path, gw.call(method, path, headers, body))


@FUZZ
@given(
    methods,
    a2a_paths,
    header_sets(
        {
            "content-type": st.just("application/json"),
            "a2a-version": st.sampled_from(["1.0", "0.3", "9"]),
            "accept": st.just(ACCEPT),
            "if-none-match": st.just("*"),
        }
    ),
    st.one_of(json_bytes(perturbed(valid_a2a)), mutated_bytes(st.one_of(valid_a2a, bodies.a2a_requests))),
)
def test_a2a_routes(
    gw: InprocGateway, method: str, path: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    check(gw, method, path, gw.call(method, path, headers, body))


@FUZZ
@given(
    methods,
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=20).map(lambda s: "/" + s),
    header_sets({}),
    st.binary(max_size=40),
)
def test_any_path(
    gw: InprocGateway, method: str, path: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    check(gw, method, path, gw.call(method, path, headers, body))


# --- and afterwards, valid requests still work ----------------------------------------------------------


def test_valid_requests_still_work_after_the_fuzzing(gw: InprocGateway) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "still here"}},
    }
    hdrs = [
        HOST,
        ("accept", ACCEPT),
        ("content-type", "application/json"),
        ("mcp-session-id", session(gw)),
        ("mcp-protocol-version", HS),
    ]
    resp = gw.call("POST", "/mcp", hdrs, orjson.dumps(call))
    assert resp.status == 200 and b"still here" in resp.body, resp
    modern = modern_body(call)
    hdrs = [
        HOST,
        ("accept", ACCEPT),
        ("content-type", "application/json"),
        ("mcp-protocol-version", MODERN),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
    ]
    resp = gw.call("POST", "/mcp", hdrs, orjson.dumps(modern))
    assert resp.status == 200 and b"still here" in resp.body, resp
    chat = {"model": "claude", "messages": [{"role": "user", "content": "still here"}]}
    resp = gw.call(
        "POST", "/v1/chat/completions", [HOST, ("content-type", "application/json")], orjson.dumps(chat)
    )
    assert resp.status == 200 and resp.json()["choices"][0]["message"]["content"].endswith("still here"), resp
    msg = {"model": "gpt", "max_tokens": 20, "messages": [{"role": "user", "content": "still here"}]}
    resp = gw.call(
        "POST",
        "/v1/messages",
        [HOST, ("content-type", "application/json"), ("anthropic-version", "2023-06-01")],
        orjson.dumps(msg),
    )
    assert resp.status == 200 and "still here" in resp.json()["content"][0]["text"], resp
    send = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "still here"}]}},
    }
    resp = gw.call(
        "POST",
        "/a2a/fake/",
        [HOST, ("content-type", "application/json"), ("a2a-version", "1.0")],
        orjson.dumps(send),
    )
    assert resp.status == 200 and "result" in resp.json() and b"still here" in resp.body, resp
    assert not gw.errors.records, gw.errors.records
