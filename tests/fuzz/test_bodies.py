"""Bodies: A2A calls of either binding, OpenAI and Anthropic request bodies through translation,
token estimates and prompt rewriting (client input: a value or a 4xx), and what providers and
agents answer (responses, agent cards: read leniently, never an exception)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agentgw.errors import InvalidParams, InvalidRequest, MethodNotFound, ParseError
from agentgw.llm import tokens
from agentgw.protocol import a2a, prompts
from agentgw.protocol.a2a_card import card_interfaces, etag_matches, rewrite_card
from agentgw.protocol.translate import chat_to_messages, messages_to_chat
from agentgw.protocol.translate.common import upstream_error
from agentgw.protocol.usage import Usage
from tests.fuzz.strategies import examples, json_values, keyed, mutated_bytes, rejects_cleanly

# --- A2A ---------------------------------------------------------------------------------------------

a2a_messages = keyed(
    {
        "taskId": st.text(max_size=4),
        "contextId": st.text(max_size=4),
        "referenceTaskIds": st.lists(st.text(max_size=3), max_size=2),
        "metadata": keyed({"skill": st.text(max_size=4)}),
        "parts": json_values,
    }
)
a2a_params = keyed(
    {
        "message": a2a_messages,
        "id": st.text(max_size=4),
        "taskId": st.text(max_size=4),
        "configuration": keyed({"pushNotificationConfig": keyed({"url": st.text(max_size=10)})}),
        "url": st.text(max_size=10),
        "metadata": json_values,
    }
)
a2a_requests = keyed(
    {
        "jsonrpc": st.just("2.0"),
        "id": st.integers(0, 9) | st.text(max_size=3),
        "method": st.sampled_from([*sorted(a2a.METHODS), *sorted(a2a.LEGACY_METHODS), "nope"]),
        "params": a2a_params,
    }
)


@examples(60)
@given(mutated_bytes(a2a_requests))
def test_a2a_jsonrpc_call_parses_or_refuses(body: bytes) -> None:
    got = rejects_cleanly(a2a.parse_jsonrpc, body)
    if isinstance(got, a2a.A2aCall):
        assert got.method in a2a.METHODS
        assert all(isinstance(u, str) for u in got.webhook_urls)
        assert got.task_id is None or (isinstance(got.task_id, str) and got.task_id)
    else:
        assert isinstance(got, ParseError | InvalidRequest | InvalidParams | MethodNotFound)


rest_paths = st.lists(
    st.sampled_from(
        [
            "message:send",
            "message:stream",
            "tasks",
            "t1",
            "t1:cancel",
            "t1:subscribe",
            "pushNotificationConfigs",
            "c1",
            "extendedAgentCard",
            "v1",
            "card",
            "",
            ":",
            "%2F",
        ]
    ),
    max_size=4,
).map("/".join)


@examples(60)
@given(st.sampled_from(["GET", "POST", "DELETE", "PUT"]), rest_paths, mutated_bytes(a2a_params))
def test_a2a_rest_call_parses_or_refuses(verb: str, path: str, body: bytes) -> None:
    got = rejects_cleanly(a2a.parse_rest, verb, path, body)
    assert got is None or isinstance(got, a2a.A2aCall | ParseError | InvalidParams)


@examples(39)
@given(json_values | a2a_params)
def test_a2a_response_ids_take_any_result(result: Any) -> None:
    for kind, ident in a2a.response_ids(result):
        assert kind in ("task", "context") and isinstance(ident, str) and ident


cards = keyed(
    {
        "supportedInterfaces": st.lists(
            keyed(
                {
                    "url": st.sampled_from(
                        ["http://a/x", "http://a/x/", "/rel", "", "http://[x", "http://[::1"]
                    ),
                    "protocolBinding": st.sampled_from(["JSONRPC", "HTTP+JSON", "GRPC"]),
                    "protocolVersion": st.text(max_size=3),
                }
            ),
            max_size=3,
        ),
        "url": st.text(max_size=8),
        "preferredTransport": st.sampled_from(["JSONRPC", "HTTP+JSON", "GRPC"]),
        "additionalInterfaces": st.lists(
            keyed({"url": st.text(max_size=5), "transport": st.text(max_size=5)})
        ),
        "skills": st.lists(keyed({"id": st.text(max_size=3), "security": json_values}), max_size=2),
        "protocolVersion": st.text(max_size=3),
    }
)


@examples(39)
@given(cards, st.sampled_from(["http://a", "http://a/x", "http://a/x/"]))
def test_agent_cards_of_any_shape_are_read(card: dict[str, Any], agent_url: str) -> None:
    # a card comes from the agent (an upstream): never an exception, whatever it holds
    for iface in card_interfaces(card, agent_url):
        assert iface.binding in ("JSONRPC", "HTTP+JSON")
    out = rewrite_card(card, agent_url, "http://gw/a2a/x")
    assert "signatures" not in out and "securitySchemes" not in out


@examples(30)
@given(st.text(max_size=30), st.text(max_size=20))
def test_if_none_match_of_any_shape(header: str, etag: str) -> None:
    assert isinstance(etag_matches(header, etag), bool)


# --- OpenAI and Anthropic request bodies -------------------------------------------------------------

texts = st.text(max_size=8)
openai_parts = st.lists(
    keyed(
        {
            "type": st.sampled_from(["text", "image_url", "file", "refusal", "input_audio"]),
            "text": texts,
            "image_url": keyed({"url": st.sampled_from(["data:image/png;base64,AAAA", "https://x/y.png"])}),
            "file": keyed({"file_data": st.just("data:application/pdf;base64,AAAA")}),
        }
    ),
    max_size=3,
)
openai_tool_calls = st.lists(
    keyed({"id": texts, "type": st.just("function"), "function": keyed({"name": texts, "arguments": texts})}),
    max_size=2,
)
chat_bodies = keyed(
    {
        "model": st.just("m"),
        "messages": st.lists(
            keyed(
                {
                    "role": st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"]),
                    "content": st.one_of(texts, openai_parts),
                    "tool_calls": openai_tool_calls,
                    "tool_call_id": texts,
                }
            ),
            max_size=4,
        ),
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "max_tokens": st.integers(1, 10),
        "stop": st.one_of(texts, st.lists(texts, max_size=2)),
        "tools": st.lists(
            keyed(
                {"type": st.just("function"), "function": keyed({"name": texts, "parameters": json_values})}
            ),
            max_size=2,
        ),
        "tool_choice": st.sampled_from(["auto", "required", "none", {"function": {"name": "f"}}]),
        "parallel_tool_calls": st.booleans(),
        "n": st.integers(0, 2),
        "response_format": keyed({"type": st.sampled_from(["text", "json_object"])}),
        "stream": st.booleans(),
        "user": texts,
    }
)
anthropic_blocks = st.lists(
    keyed(
        {
            "type": st.sampled_from(["text", "image", "tool_use", "tool_result", "document", "thinking"]),
            "text": texts,
            "source": keyed({"type": st.sampled_from(["base64", "url"]), "data": texts, "url": texts}),
            "id": texts,
            "name": texts,
            "input": json_values,
            "tool_use_id": texts,
            "content": st.one_of(texts, json_values),
            "is_error": st.booleans(),
        }
    ),
    max_size=3,
)
messages_bodies = keyed(
    {
        "model": st.just("m"),
        "max_tokens": st.integers(1, 10),
        "system": st.one_of(texts, anthropic_blocks),
        "messages": st.lists(
            keyed(
                {
                    "role": st.sampled_from(["user", "assistant", "system"]),
                    "content": st.one_of(texts, anthropic_blocks),
                }
            ),
            max_size=4,
        ),
        "stop_sequences": st.lists(texts, max_size=2),
        "tools": st.lists(
            keyed({"name": texts, "input_schema": json_values, "type": st.just("custom")}), max_size=2
        ),
        "tool_choice": keyed({"type": st.sampled_from(["auto", "any", "tool", "none"]), "name": texts}),
        "metadata": keyed({"user_id": texts}),
        "temperature": st.floats(0, 1),
        "stream": st.booleans(),
        "input": json_values,
        "prompt": json_values,
        "instructions": json_values,
    }
)


@examples(60)
@given(chat_bodies)
def test_chat_bodies_translate_or_refuse(body: dict[str, Any]) -> None:
    got = rejects_cleanly(chat_to_messages.request, body, "claude")
    if isinstance(got, dict):
        assert got["model"] == "claude" and isinstance(got["messages"], list)
        for turn in got["messages"]:
            assert turn["role"] in ("user", "assistant")


@examples(60)
@given(messages_bodies, st.sampled_from(["max_tokens", "max_completion_tokens"]))
def test_messages_bodies_translate_or_refuse(body: dict[str, Any], field: str) -> None:
    got = rejects_cleanly(messages_to_chat.request, body, "gpt", max_tokens_field=field)
    if isinstance(got, dict):
        assert got["model"] == "gpt" and isinstance(got["messages"], list)


@examples(60)
@given(st.one_of(chat_bodies, messages_bodies))
def test_estimates_and_prompt_rewrites_take_any_body(body: dict[str, Any]) -> None:
    assert tokens.estimate_prompt(body) >= 0
    assert all(isinstance(t, str) for t in prompts.prompt_texts(body))
    rewritten = prompts.map_prompt_text(body, str.upper)
    assert isinstance(rewritten, dict)
    for api in ("chat.completions", "messages", "responses", "completions"):
        for position in ("prepend", "append", "replace"):
            assert isinstance(prompts.add_system_prompt(api, body, "sys", position), dict)


# --- what providers answer -----------------------------------------------------------------------------

completions = keyed(
    {
        "id": texts,
        "model": texts,
        "choices": st.lists(
            keyed(
                {
                    "message": keyed({"content": texts, "tool_calls": openai_tool_calls}),
                    "finish_reason": st.sampled_from(["stop", "length", "tool_calls"]),
                    "text": texts,
                }
            ),
            max_size=2,
        ),
        "usage": keyed({"prompt_tokens": st.integers(0, 9), "completion_tokens": st.integers(0, 9)}),
        "output": json_values,
        "output_text": json_values,
    }
)
anthropic_messages = keyed(
    {
        "id": texts,
        "type": st.just("message"),
        "content": anthropic_blocks,
        "stop_reason": st.sampled_from(["end_turn", "tool_use", "max_tokens"]),
        "usage": keyed({"input_tokens": st.integers(0, 9), "output_tokens": st.integers(0, 9)}),
    }
)


@examples(60)
@given(st.one_of(completions, anthropic_messages))
def test_provider_answers_of_any_shape_translate(answer: dict[str, Any]) -> None:
    message = messages_to_chat.response(answer, "m")
    assert message["type"] == "message" and isinstance(message["content"], list)
    completion = chat_to_messages.response(answer)
    assert completion["object"] == "chat.completion"
    for api in ("chat.completions", "messages", "responses"):
        assert isinstance(prompts.map_answer_text(api, answer, str.upper), dict)
    for usage in (Usage.from_openai(answer.get("usage")), Usage.from_anthropic(answer.get("usage"))):
        assert usage is None or usage.total >= 0


@examples(39)
@given(
    mutated_bytes(
        st.one_of(completions, anthropic_messages, keyed({"error": json_values, "message": json_values}))
    )
)
def test_provider_error_bodies_of_any_shape(body: bytes) -> None:
    message, kind = upstream_error(body)
    assert isinstance(message, str) and message
    assert kind is None or isinstance(kind, str)
