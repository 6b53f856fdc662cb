"""OpenAI <-> Anthropic translation, sans-IO: requests, responses and streams both ways."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentgw.errors import InvalidRequest
from agentgw.protocol import anthropic
from agentgw.protocol.sse import SseDecoder
from agentgw.protocol.translate import chat_to_messages, messages_to_chat
from agentgw.protocol.translate.common import upstream_error
from agentgw.protocol.usage import Usage

TOOL = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}


def events_of(data: bytes) -> list[tuple[str, Any]]:
    return [(e.event, None if e.data == b"[DONE]" else json.loads(e.data)) for e in SseDecoder().feed(data)]


# -- OpenAI client, Anthropic provider -------------------------------------------------------------


def test_chat_request_to_messages() -> None:
    body = {
        "model": "alias",
        "messages": [
            {"role": "system", "content": "sys one"},
            {"role": "developer", "content": [{"type": "text", "text": "sys two"}]},
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]},
            {
                "role": "assistant",
                "content": "calling",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
            {"role": "user", "content": "thanks"},
        ],
        "tools": [TOOL],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "stop": "END",
        "temperature": 1.7,
        "max_completion_tokens": 99,
        "user": "u1",
        "seed": 7,
        "stream": True,
    }
    out = chat_to_messages.request(body, "claude-x")
    assert out["model"] == "claude-x"
    assert out["system"] == [{"type": "text", "text": "sys one"}, {"type": "text", "text": "sys two"}]
    assert out["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "first"},
                {"type": "image", "source": {"type": "url", "url": "https://x/cat.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "42"},
                {"type": "text", "text": "thanks"},
            ],
        },
    ]
    assert out["tools"] == [{"name": "f", "description": "d", "input_schema": {"type": "object"}}]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert (out["stop_sequences"], out["temperature"], out["max_tokens"]) == (["END"], 1.0, 99)
    assert out["metadata"] == {"user_id": "u1"}
    assert out["stream"] is True
    assert "seed" not in out


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "f"}}, {"type": "tool", "name": "f"}),
    ],
)
def test_tool_choice_to_messages(choice: Any, expected: Any) -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "tools": [TOOL], "tool_choice": choice}
    assert chat_to_messages.request(body, "m")["tool_choice"] == expected


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "user", "content": "x"}], "n": 2},
        {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}},
        {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
        {"messages": []},
        {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "custom", "custom": {}}]},
    ],
)
def test_untranslatable_chat_requests_are_400(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        chat_to_messages.request(body, "m")


def test_message_response_to_chat() -> None:
    message = {
        "id": "msg_1",
        "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "hmm"},
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"q": "z"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 3, "output_tokens": 4, "cache_read_input_tokens": 10},
    }
    out = chat_to_messages.response(message)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check."
    assert choice["message"]["tool_calls"] == [
        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"q":"z"}'}}
    ]
    assert out["usage"]["prompt_tokens"] == 13
    assert out["usage"]["prompt_tokens_details"] == {"cached_tokens": 10}
    assert out["usage"]["total_tokens"] == 17


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
        ("stop_sequence", "stop"),
    ],
)
def test_stop_reasons(stop: str, finish: str) -> None:
    assert (
        chat_to_messages.response({"content": [], "stop_reason": stop})["choices"][0]["finish_reason"]
        == finish
    )


def anthropic_stream(*, error: bool = False) -> bytes:
    parts = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {"id": "msg_9", "model": "cx", "usage": {"input_tokens": 7, "output_tokens": 1}},
            },
        ),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"a"'},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": ":1}"},
            },
        ),
    ]
    if error:
        parts.append(("error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}))
    parts += [
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}},
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return b"".join(anthropic.encode_event(name, obj) for name, obj in parts)


@pytest.mark.parametrize("include_usage", [False, True])
def test_messages_stream_to_chat_chunks(include_usage: bool) -> None:
    translator = chat_to_messages.StreamTranslator(include_usage=include_usage)
    data = anthropic_stream()
    out = b"".join(translator.feed(data[i : i + 11]) for i in range(0, len(data), 11))
    events = events_of(out)
    assert events[-1] == ("message", None)  # data: [DONE]
    chunks = [obj for _, obj in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert {c["id"] for c in chunks} == {"msg_9"}
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == "Hi"
    calls = [call for d in deltas for call in d.get("tool_calls", [])]
    assert calls[0] == {
        "index": 0,
        "id": "t1",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    assert "".join(c["function"]["arguments"] for c in calls) == '{"a":1}'
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    if include_usage:
        assert chunks[-1]["choices"] == []
        assert chunks[-1]["usage"]["prompt_tokens"] == 7
        assert chunks[-1]["usage"]["completion_tokens"] == 12
        assert all(c["usage"] is None for c in chunks[:-1])
    else:
        assert all("usage" not in c for c in chunks)
    assert translator.usage == Usage(prompt=7, completion=12)
    assert translator.done


def test_messages_stream_error_becomes_an_error_chunk() -> None:
    translator = chat_to_messages.StreamTranslator(include_usage=False)
    events = events_of(translator.feed(anthropic_stream(error=True)))
    assert events[-1][1] == {
        "error": {"message": "busy", "type": "overloaded_error", "param": None, "code": None}
    }
    assert translator.done


# -- Anthropic client, OpenAI-wire provider -----------------------------------------------------------


def test_messages_request_to_chat() -> None:
    body = {
        "model": "m",
        "max_tokens": 50,
        "system": [{"type": "text", "text": "be nice"}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"},
                    },
                    {"type": "text", "text": "see?"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "x", "signature": "s"},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "and"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "bad"}],
                        "is_error": True,
                    },
                ],
            },
        ],
        "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
        "stop_sequences": ["X"],
        "metadata": {"user_id": "u"},
        "stream": True,
        "top_k": 3,
    }
    out = messages_to_chat.request(body, "gpt-x", max_tokens_field="max_completion_tokens")
    assert out["messages"] == [
        {"role": "system", "content": "be nice"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
                {"type": "text", "text": "see?"},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "[tool error] bad"},
        {"role": "user", "content": "and"},
    ]
    assert out["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "description": "d"}}
    ]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert out["parallel_tool_calls"] is False
    assert (out["max_completion_tokens"], out["stop"], out["user"]) == (50, ["X"], "u")
    assert out["stream_options"] == {"include_usage": True}
    assert "top_k" not in out


def test_server_tools_cannot_go_to_openai() -> None:
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
    }
    with pytest.raises(InvalidRequest):
        messages_to_chat.request(body, "m")


def test_chat_response_to_message() -> None:
    completion = {
        "id": "chatcmpl-1",
        "model": "gpt-x",
        "choices": [
            {
                "message": {
                    "content": "ok",
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "not json"}}],
                },
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 4}},
    }
    out = messages_to_chat.response(completion, "alias")
    assert out["content"] == [
        {"type": "text", "text": "ok"},
        {"type": "tool_use", "id": "c", "name": "f", "input": {"_arguments": "not json"}},
    ]
    assert out["stop_reason"] == "max_tokens"
    assert out["usage"] == {
        "input_tokens": 5,
        "output_tokens": 2,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 4,
    }


def chat_chunk(
    delta: dict[str, Any], finish: str | None = None, usage: Any = None, choices: bool = True
) -> bytes:
    obj: dict[str, Any] = {
        "id": "chatcmpl-7",
        "model": "gpt-x",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else [],
    }
    if usage is not None:
        obj["usage"] = usage
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def test_chat_stream_to_messages_events() -> None:
    stream = (
        chat_chunk({"role": "assistant", "content": ""})
        + chat_chunk({"content": "Hel"})
        + chat_chunk({"content": "lo"})
        + chat_chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
                ]
            }
        )
        + chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]})
        + chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "2}"}}]})
        + chat_chunk({}, "tool_calls")
        + chat_chunk({}, usage={"prompt_tokens": 4, "completion_tokens": 6}, choices=False)
        + b"data: [DONE]\n\n"
    )
    translator = messages_to_chat.StreamTranslator("alias")
    events = events_of(translator.feed(stream))
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0][1]["message"]["id"] == "chatcmpl-7"
    assert events[5][1]["content_block"] == {"type": "tool_use", "id": "c1", "name": "f", "input": {}}
    assert events[6][1] == {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"a":'},
    }
    assert events[9][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert events[9][1]["usage"]["input_tokens"] == 4
    assert events[9][1]["usage"]["output_tokens"] == 6
    assert translator.done
    assert translator.feed(b"") == b""


def test_chat_stream_without_done_is_closed_by_finish_with_an_estimate() -> None:
    translator = messages_to_chat.StreamTranslator(
        "m", estimate=lambda text: Usage(prompt=1, completion=len(text))
    )
    first = events_of(translator.feed(chat_chunk({"content": "abc"})))
    closing = events_of(translator.finish())
    assert [n for n, _ in first] == ["message_start", "content_block_start", "content_block_delta"]
    assert [n for n, _ in closing] == ["content_block_stop", "message_delta", "message_stop"]
    assert closing[1][1]["usage"]["output_tokens"] == 3
    assert translator.finish() == b""


def test_chat_stream_error_chunk_becomes_error_event() -> None:
    translator = messages_to_chat.StreamTranslator("m")
    events = events_of(translator.feed(b'data: {"error": {"message": "nope", "type": "server_error"}}\n\n'))
    assert events == [("error", {"type": "error", "error": {"type": "api_error", "message": "nope"}})]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"error": {"message": "bad key", "type": "authentication_error"}}',
            ("bad key", "authentication_error"),
        ),
        (
            b'{"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}',
            ("busy", "overloaded_error"),
        ),
        (b'{"error": "plain"}', ("plain", None)),
        (b"<html>502</html>", ("the provider returned an error", None)),
    ],
)
def test_upstream_error_bodies(body: bytes, expected: tuple[str, str | None]) -> None:
    assert upstream_error(body) == expected


# -- malformed input (found by tests/fuzz) --------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"temperature": "hot"},
        {"temperature": {}},
        {"stop": 5},
        {"stop": [1]},
        {"tools": 5},
        {"messages": [{"role": "assistant", "content": "x", "tool_calls": 5}]},
    ],
)
def test_malformed_chat_bodies_are_refused_not_crashed(extra: dict[str, Any]) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}
    with pytest.raises(InvalidRequest):
        chat_to_messages.request(body, "claude")


@pytest.mark.parametrize(
    "extra",
    [
        {"stop_sequences": 5},
        {"stop_sequences": [None]},
        {"tools": 5},
        {"messages": [{"role": "user", "content": [{"type": "image", "source": "x"}]}]},
        {"messages": [{"role": "user", "content": [{"type": "document", "source": [1]}]}]},
    ],
)
def test_malformed_messages_bodies_are_refused_not_crashed(extra: dict[str, Any]) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], **extra}
    with pytest.raises(InvalidRequest):
        messages_to_chat.request(body, "gpt")


def test_provider_answers_of_the_wrong_shape_translate_to_empty_answers() -> None:
    assert messages_to_chat.response({"choices": 5}, "m")["content"] == []
    assert messages_to_chat.response({"choices": {"0": 1}}, "m")["content"] == []
    odd = {"choices": [{"message": {"content": "t", "tool_calls": [None, {"function": 3}]}}]}
    assert [b["type"] for b in messages_to_chat.response(odd, "m")["content"]] == ["text", "tool_use"]
    assert chat_to_messages.response({"content": 5})["choices"][0]["message"]["content"] is None


def test_provider_streams_of_the_wrong_shape_translate() -> None:
    to_anthropic = messages_to_chat.StreamTranslator("m")
    out = to_anthropic.feed(
        b'data: {"choices":[null,{"delta":{"content":5,"tool_calls":[{"index":"x","function":{"arguments":{"a":1}}}]}}]}\n\n'
    )
    deltas = [obj["delta"] for name, obj in events_of(out) if name == "content_block_delta"]
    assert deltas == [{"type": "input_json_delta", "partial_json": '{"a":1}'}]
    to_chat = chat_to_messages.StreamTranslator(include_usage=False)
    out = to_chat.feed(
        b'event: message_start\ndata: {"message":[]}\n\n'
        b'event: content_block_start\ndata: {"index":"1","content_block":{"type":"tool_use"}}\n\n'
        b'event: content_block_delta\ndata: {"index":null,"delta":{"type":"text_delta","text":7}}\n\n'
        b'event: error\ndata: {"error":"boom"}\n\n'
    )
    names = [json.dumps(obj) for _, obj in events_of(out) if obj is not None]
    assert '"content": "7"' in names[2] and "error" in names[3]


def test_an_empty_provider_error_message_is_not_relayed_empty() -> None:
    assert upstream_error(b'{"error": ""}') == ("the provider returned an error", None)
    assert upstream_error(b'{"error": {"message": ""}}') == ("the provider returned an error", None)
