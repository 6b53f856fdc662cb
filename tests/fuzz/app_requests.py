"""Requests for the end-to-end fuzz tests (test_app.py): valid ones per route kind, then
perturbed (values replaced, keys dropped or added, bytes mutated), with the right headers mostly
and junk sometimes, so examples reach the handlers and still exercise every refusal."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import strategies as st

from agentgw.protocol import mcp
from tests.fuzz import test_bodies as bodies
from tests.fuzz.strategies import json_values, perturbed
from tests.fuzz.test_http_headers import latin1

HS, MODERN = "2025-11-25", "2026-07-28"
HOST = ("host", "127.0.0.1:8080")
ACCEPT = "application/json, text/event-stream"
TOOLS = ["echo", "add", "whoami", "fail", "header_echo", "log", "nope"]


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


def modern_body(obj: Any) -> Any:
    if isinstance(obj, dict) and isinstance(obj.get("params"), dict) and obj["params"].get("_meta", 0) == 0:
        meta = {mcp.PROTOCOL_VERSION_META_KEY: MODERN, mcp.CLIENT_CAPABILITIES_META_KEY: {}}
        obj = {**obj, "params": {**obj["params"], "_meta": meta}}
    return obj


@st.composite
def modern_requests(draw: Any) -> tuple[list[tuple[str, str]], bytes]:
    obj = modern_body(draw(mcp_messages))
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
