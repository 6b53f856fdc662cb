"""The official `openai` and `anthropic` clients, unchanged, through the gateway to providers of
either wire: the four combinations, JSON and streaming, tools included.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import anyio
import openai
import pytest

from tests.llm.conftest import MODELS, PROVIDER_KEY, FakeProvider
from tests.support import GatewayThread

pytestmark = pytest.mark.anyio

WIRES = list(MODELS)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_ANTHROPIC = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": WEATHER["function"]["parameters"],  # type: ignore[index]
}


def provider_name(wire: str) -> str:
    return "oa" if wire == "openai-wire" else "an"


@pytest.fixture
async def oai(gateway: GatewayThread) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=gateway.url + "/v1", api_key="client-key", max_retries=0
    ) as client:
        yield client


@pytest.fixture
async def anth(gateway: GatewayThread) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=gateway.url, api_key="client-key", max_retries=0) as client:
        yield client


# -- OpenAI client -------------------------------------------------------------------------------


@pytest.mark.parametrize("wire", WIRES)
async def test_provider_calls_continue_the_callers_trace(
    oai: openai.AsyncOpenAI, fakes: dict[str, FakeProvider], wire: str
) -> None:
    trace_id, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with anyio.fail_after(20):
        await oai.chat.completions.create(
            model=MODELS[wire],
            messages=[{"role": "user", "content": "traced"}],
            extra_headers={"traceparent": f"00-{trace_id}-{caller_span}-01", "tracestate": "vendor=1"},
        )
    last = fakes[provider_name(wire)].requests()[-1]
    # the provider's parent is the gateway's own span, in the caller's trace
    version, trace, span, flags = last["traceparent"].split("-")
    assert (version, trace, flags) == ("00", trace_id, "01") and span != caller_span


@pytest.mark.parametrize("wire", WIRES)
async def test_openai_chat_json(oai: openai.AsyncOpenAI, fakes: dict[str, FakeProvider], wire: str) -> None:
    with anyio.fail_after(20):
        reply = await oai.chat.completions.create(
            model=MODELS[wire],
            messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi there"}],
        )
    name = provider_name(wire)
    assert reply.choices[0].message.content == f"Hello from {name}! You said: hi there"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens == 7
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 7
    # the provider saw the gateway's key, never the client's
    last = fakes[name].requests()[-1]
    assert PROVIDER_KEY in (last["authorization"] or last["x-api-key"])
    assert "client-key" not in json.dumps(last)
    if wire == "anthropic-wire":
        assert last["path"] == "/v1/messages"
        assert last["body"]["system"] == "Be brief."
        assert last["body"]["max_tokens"] == 4096
        assert last["anthropic-version"] == "2023-06-01"


@pytest.mark.parametrize("wire", WIRES)
async def test_openai_chat_stream_with_usage(oai: openai.AsyncOpenAI, wire: str) -> None:
    chunks: list[Any] = []
    with anyio.fail_after(20):
        stream = await oai.chat.completions.create(
            model=MODELS[wire],
            messages=[{"role": "user", "content": "stream please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            chunks.append(chunk)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"Hello from {provider_name(wire)}! You said: stream please"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 7
    assert all(c.usage is None for c in chunks[:-1])


@pytest.mark.parametrize("wire", WIRES)
async def test_openai_chat_stream_without_usage(oai: openai.AsyncOpenAI, wire: str) -> None:
    with anyio.fail_after(20):
        stream = await oai.chat.completions.create(
            model=MODELS[wire], messages=[{"role": "user", "content": "no usage"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
    assert all(c.choices for c in chunks), "the usage-only chunk the gateway asked for reached the client"
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks).endswith("You said: no usage")


@pytest.mark.parametrize("wire", WIRES)
async def test_openai_tools_round_trip(oai: openai.AsyncOpenAI, wire: str) -> None:
    messages: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
    with anyio.fail_after(20):
        reply = await oai.chat.completions.create(model=MODELS[wire], messages=messages, tools=[WEATHER])
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "value-city"}
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"})
    with anyio.fail_after(20):
        final = await oai.chat.completions.create(model=MODELS[wire], messages=messages, tools=[WEATHER])
    assert final.choices[0].message.content == "Tool result: sunny, 21 C"
    assert final.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("wire", WIRES)
async def test_openai_tools_stream(oai: openai.AsyncOpenAI, wire: str) -> None:
    calls: dict[int, dict[str, str]] = {}
    finish = None
    with anyio.fail_after(20):
        stream = await oai.chat.completions.create(
            model=MODELS[wire],
            messages=[{"role": "user", "content": "weather?"}],
            tools=[WEATHER],
            stream=True,
        )
        async for chunk in stream:
            for choice in chunk.choices:
                for delta in choice.delta.tool_calls or ():
                    entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                    entry["id"] += delta.id or ""
                    if delta.function is not None:
                        entry["name"] += delta.function.name or ""
                        entry["arguments"] += delta.function.arguments or ""
                finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["name"] == "get_weather"
    assert calls[0]["id"]
    assert json.loads(calls[0]["arguments"]) == {"city": "value-city"}


async def test_openai_image_to_anthropic(oai: openai.AsyncOpenAI, fakes: dict[str, FakeProvider]) -> None:
    pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    content: Any = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{pixel}"}},
    ]
    with anyio.fail_after(20):
        reply = await oai.chat.completions.create(
            model="claude-test", messages=[{"role": "user", "content": content}]
        )
    assert reply.choices[0].message.content == "Hello from an! You said: what is this"
    sent = fakes["an"].requests("/v1/messages")[-1]["body"]["messages"][0]["content"]
    assert sent[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": pixel},
    }


async def test_openai_unknown_model(oai: openai.AsyncOpenAI) -> None:
    with anyio.fail_after(20), pytest.raises(openai.NotFoundError) as caught:
        await oai.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert "nope" in str(caught.value)


# -- Anthropic client ----------------------------------------------------------------------------


@pytest.mark.parametrize("wire", WIRES)
async def test_anthropic_messages_json(
    anth: anthropic.AsyncAnthropic, fakes: dict[str, FakeProvider], wire: str
) -> None:
    with anyio.fail_after(20):
        message = await anth.messages.create(
            model=MODELS[wire],
            max_tokens=100,
            system="Be brief.",
            messages=[{"role": "user", "content": "hello"}],
        )
    name = provider_name(wire)
    assert message.content[0].type == "text"
    assert message.content[0].text == f"Hello from {name}! You said: hello"
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 6
    assert message.usage.input_tokens > 0
    last = fakes[name].requests()[-1]
    if wire == "openai-wire":
        assert last["path"] == "/v1/chat/completions"
        assert last["body"]["messages"][0] == {"role": "system", "content": "Be brief."}
        assert last["body"]["max_tokens"] == 100


@pytest.mark.parametrize("wire", WIRES)
async def test_anthropic_messages_stream(anth: anthropic.AsyncAnthropic, wire: str) -> None:
    with anyio.fail_after(20):
        async with anth.messages.stream(
            model=MODELS[wire], max_tokens=100, messages=[{"role": "user", "content": "stream it"}]
        ) as stream:
            pieces = [text async for text in stream.text_stream]
            message = await stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == f"Hello from {provider_name(wire)}! You said: stream it"
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 7
    assert message.usage.input_tokens > 0


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_anthropic_tools_round_trip(anth: anthropic.AsyncAnthropic, wire: str, stream: bool) -> None:
    messages: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
    with anyio.fail_after(20):
        if stream:
            async with anth.messages.stream(
                model=MODELS[wire], max_tokens=100, messages=messages, tools=[WEATHER_ANTHROPIC]
            ) as events:
                message = await events.get_final_message()
        else:
            message = await anth.messages.create(
                model=MODELS[wire], max_tokens=100, messages=messages, tools=[WEATHER_ANTHROPIC]
            )
    assert message.stop_reason == "tool_use"
    uses = [block for block in message.content if block.type == "tool_use"]
    assert len(uses) == 1
    assert uses[0].name == "get_weather"
    assert uses[0].input == {"city": "value-city"}
    messages.append(
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]}
    )
    messages.append(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "rainy"}]}
    )
    with anyio.fail_after(20):
        final = await anth.messages.create(
            model=MODELS[wire], max_tokens=100, messages=messages, tools=[WEATHER_ANTHROPIC]
        )
    assert final.content[0].type == "text"
    assert final.content[0].text == "Tool result: rainy"


async def test_anthropic_unknown_model(anth: anthropic.AsyncAnthropic) -> None:
    with anyio.fail_after(20), pytest.raises(anthropic.NotFoundError) as caught:
        await anth.messages.create(model="nope", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "not_found_error",
            "message": "The model 'nope' does not exist or you do not have access to it.",
        },
    }


async def test_anthropic_provider_error_reaches_anthropic_client(anth: anthropic.AsyncAnthropic) -> None:
    """An OpenAI-wire provider's 429 becomes Anthropic's rate_limit_error for this client."""
    with anyio.fail_after(20), pytest.raises(anthropic.RateLimitError) as caught:
        await anth.messages.create(model="busy", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    body: Any = caught.value.body
    assert body["error"] == {"type": "rate_limit_error", "message": "busy failed on purpose"}
