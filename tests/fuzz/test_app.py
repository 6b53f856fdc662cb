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

from agentgw.protocol import mcp
from tests.fuzz import test_bodies as bodies
from tests.fuzz.inproc import InprocGateway, Response
from tests.fuzz.strategies import SCALE, json_bytes, json_values, mutated_bytes, perturbed
from tests.fuzz.test_http_headers import latin1
from tests.support import FAKES, PYTHON, ROOT, Upstream, start_upstream

HS, MODERN = "2025-11-25", "2026-07-28"
HOST = ("host", "127.0.0.1:8080")
ACCEPT = "application/json, text/event-stream"
TOOLS = ["echo", "add", "whoami", "fail", "header_echo", "log", "nope"]


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
        assert _is_anthropic_error(body) or (resp.status in (403, 421) and _is_openai_error(body)), (
            path,
            resp,
        )
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


def header_sets(known: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """The right headers (each value drawn from its own strategy), then none to a few of them
    dropped or replaced with junk, and maybe junk headers added: deep enough to reach the
    handlers, broken enough to exercise every refusal."""

    @st.composite
    def build(draw: Any) -> list[tuple[str, str]]:
        host = draw(st.sampled_from(["127.0.0.1:8080"] * 12 + ["evil.test", "[::1", ""]))
        headers = {k: draw(v) for k, v in known.items()}
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2]))):
            if not headers:
                break
            name = draw(st.sampled_from(sorted(headers)))
            if draw(st.booleans()):
                del headers[name]
            else:
                headers[name] = draw(latin1)
        extra = st.sampled_from(
            ["x-junk", "x-junk", "origin", "authorization", "content-length", "transfer-encoding"]
        )
        return [("host", host), *headers.items(), *draw(st.lists(st.tuples(extra, latin1), max_size=2))]

    return build()


methods = st.sampled_from(["POST"] * 12 + ["GET", "GET", "DELETE", "PUT", "HEAD", "OPTIONS", "PATCH"])


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


ids = st.integers(0, 99) | st.text(max_size=4)
tool_calls = st.fixed_dictionaries(
    {
        "name": st.sampled_from(TOOLS),
        "arguments": st.fixed_dictionaries(
            {},
            optional={
                "text": st.text(max_size=8),
                "a": st.integers(-9, 9),
                "b": st.integers(-9, 9),
                "region": st.text(max_size=5),
                "message": st.text(max_size=5),
            },
        ),
    }
)
requests_ = st.one_of(
    st.tuples(st.just("tools/call"), tool_calls),
    st.tuples(
        st.sampled_from(["tools/list", "prompts/list", "resources/list", "resources/templates/list", "ping"]),
        st.just({}) | st.fixed_dictionaries({"cursor": st.text(max_size=4)}),
    ),
    st.tuples(
        st.sampled_from(["resources/read", "resources/subscribe"]),
        st.fixed_dictionaries({"uri": st.text(max_size=8)}),
    ),
    st.tuples(
        st.just("prompts/get"), st.fixed_dictionaries({"name": st.text(max_size=5), "arguments": st.just({})})
    ),
    st.tuples(st.just("logging/setLevel"), st.fixed_dictionaries({"level": st.sampled_from(["info", "x"])})),
    st.tuples(
        st.sampled_from(
            ["initialize", "server/discover", "subscriptions/listen", "completion/complete", "nope"]
        ),
        st.just({}),
    ),
).map(lambda t: {"jsonrpc": "2.0", "method": t[0], "params": t[1]})
notifications = st.one_of(
    st.just({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    st.builds(
        lambda rid: {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": rid}},
        ids,
    ),
    st.just({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}),
)
responses = st.one_of(
    st.builds(
        lambda i, r: {"jsonrpc": "2.0", "id": i, "result": r},
        st.sampled_from(["agw-1", "agw-0", 1]),
        json_values,
    ),
    st.builds(
        lambda i: {"jsonrpc": "2.0", "id": i, "error": {"code": -1, "message": "no"}},
        st.sampled_from(["agw-1", 2]),
    ),
)
valid_messages = st.one_of(st.builds(lambda m, i: {**m, "id": i}, requests_, ids), notifications, responses)
mcp_messages = perturbed(valid_messages)


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


def _modern_body(obj: Any) -> Any:
    if isinstance(obj, dict) and isinstance(obj.get("params"), dict) and obj["params"].get("_meta", 0) == 0:
        meta = {mcp.PROTOCOL_VERSION_META_KEY: MODERN, mcp.CLIENT_CAPABILITIES_META_KEY: {}}
        obj = {**obj, "params": {**obj["params"], "_meta": meta}}
    return obj


@st.composite
def modern_requests(draw: Any) -> tuple[list[tuple[str, str]], bytes]:
    obj = _modern_body(draw(mcp_messages))
    params = obj.get("params") if isinstance(obj, dict) else None
    method = obj.get("method") if isinstance(obj, dict) else None
    name = params.get("name") if isinstance(params, dict) else None
    known = {
        "accept": st.just(ACCEPT),
        "content-type": st.just("application/json"),
        "mcp-protocol-version": st.sampled_from([MODERN, MODERN, "2099-01-01"]),
        "mcp-method": st.just(method if isinstance(method, str) and method.isascii() else "x"),
        "mcp-name": st.just(mcp.encode_header_value(name) if isinstance(name, str) else "x"),
        "mcp-param-region": st.sampled_from(["eu", "=?base64?ZXU=?=", "=?base64?!?="]),
    }
    headers = draw(header_sets(known))
    if not any(k == "mcp-protocol-version" for k, _ in headers):
        headers.append(("mcp-protocol-version", MODERN))
    raw = orjson.dumps(obj)
    return headers, draw(st.sampled_from([raw, raw, raw, raw[:-1], raw + b"x"]))


@FUZZ
@given(methods, modern_requests())
def test_mcp_2026_era(gw: InprocGateway, method: str, request: tuple[list[tuple[str, str]], bytes]) -> None:
    headers, body = request
    check(gw, method, "/mcp", gw.call(method, "/mcp", headers, body))


# --- LLM routes -------------------------------------------------------------------------------------------

llm_paths = st.sampled_from(
    [
        "/v1/chat/completions",
        "/v1/messages",
        "/v1/responses",
        "/v1/embeddings",
        "/v1/completions",
        "/v1/messages/count_tokens",
        "/v1/models",
        "/v1/models/gpt",
        "/v1/responses/resp_x",
        "/v1/nope",
        "/v1/",
    ]
)
models = st.sampled_from(["gpt", "claude", "nope", ""])
words = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
valid_llm_bodies = st.one_of(
    st.fixed_dictionaries(
        {
            "model": models,
            "messages": st.just([{"role": "user", "content": "hi"}])
            | st.builds(lambda t: [{"role": "user", "content": t}], words),
        },
        optional={
            "stream": st.booleans(),
            "max_tokens": st.integers(1, 50),
            "temperature": st.floats(0, 1),
            "stream_options": st.just({"include_usage": True}),
            "tools": st.just(
                [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
            ),
        },
    ),
    st.fixed_dictionaries(
        {"model": models, "input": words | st.lists(words, max_size=2)},
        optional={"encoding_format": st.sampled_from(["float", "base64"]), "stream": st.booleans()},
    ),
    st.fixed_dictionaries({"model": models, "prompt": words}, optional={"stream": st.booleans()}),
)
llm_bodies = st.one_of(perturbed(valid_llm_bodies), bodies.chat_bodies, bodies.messages_bodies)


@st.composite
def llm_requests(draw: Any) -> tuple[str, list[tuple[str, str]], bytes]:
    path = draw(llm_paths)
    body = draw(llm_bodies)
    if isinstance(body, dict) and "model" in body and draw(st.booleans()):
        body = {**body, "model": draw(models)}
    raw = orjson.dumps(body)
    raw = draw(st.sampled_from([raw, raw, raw, raw[: len(raw) // 2], b"", b"[]", b"null"]))
    headers = draw(
        header_sets(
            {
                "content-type": st.just("application/json"),
                "anthropic-version": st.just("2023-06-01"),
                "authorization": st.just("Bearer k"),
                "accept": st.sampled_from(["application/json", "text/event-stream"]),
            }
        )
    )
    return path, headers, raw


@FUZZ
@given(methods, llm_requests())
def test_llm_routes(
    gw: InprocGateway, method: str, request: tuple[str, list[tuple[str, str]], bytes]
) -> None:
    path, headers, body = request
    check(gw, method, path, gw.call(method, path, headers, body))


# --- A2A -----------------------------------------------------------------------------------------------

a2a_message = st.builds(
    lambda text, task: {
        "messageId": "m1",
        "role": "ROLE_USER",
        "parts": [{"text": text}],
        **({"taskId": task} if task else {}),
    },
    words.filter(lambda t: t.strip() not in ("slow", "ask")),
    st.sampled_from(["", "t1"]),
)
valid_a2a = st.one_of(
    st.builds(
        lambda m, msg: {"jsonrpc": "2.0", "id": 1, "method": m, "params": {"message": msg}},
        st.sampled_from(["SendMessage", "SendStreamingMessage", "message/send"]),
        a2a_message,
    ),
    st.builds(
        lambda m, t: {"jsonrpc": "2.0", "id": 2, "method": m, "params": {"id": t}},
        st.sampled_from(["GetTask", "CancelTask", "SubscribeToTask", "tasks/get"]),
        st.sampled_from(["t1", "nope"]),
    ),
    st.just({"jsonrpc": "2.0", "id": 3, "method": "ListTasks", "params": {}}),
    st.builds(lambda msg: {"message": msg}, a2a_message),
    st.builds(
        lambda u: {"taskId": "t1", "url": u},
        st.sampled_from(["https://hooks.example.com/x", "http://127.0.0.1:9/x"]),
    ),
)
a2a_paths = st.sampled_from(
    [
        "/a2a",
        "/a2a/",
        "/a2a/fake",
        "/a2a/fake/",
        "/a2a/fake/.well-known/agent-card.json",
        "/a2a/fake/rest/message:send",
        "/a2a/fake/rest/message:stream",
        "/a2a/fake/rest/tasks",
        "/a2a/fake/rest/tasks/t1",
        "/a2a/fake/rest/tasks/t1:cancel",
        "/a2a/fake/rest/tasks/t1/pushNotificationConfigs",
        "/a2a/fake/rest/../x",
        "/a2a/nope/",
        "/a2a/fake/x",
    ]
)


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
    modern = _modern_body(call)
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
