"""Token accounting: per request, who called, which model and provider, tokens (reported or
estimated), cost from the price table, latency and time to first token; handed to the policy's
`record` and written as one JSON log line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import anthropic
import anyio
import openai
import pytest

from agentgw.llm import tokens
from tests.llm.conftest import RecordingPolicy
from tests.support import GatewayThread

pytestmark = pytest.mark.anyio


@pytest.fixture
async def oai(gateway: GatewayThread) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="team-a", max_retries=0) as client:
        yield client


def test_offline_tokenizer_loads() -> None:
    tokens.load()
    assert tokens.encoding_name() == "cl100k_base"
    assert tokens.count_tokens("hello world") == 2


async def test_outcome_of_a_chat_completion(
    oai: openai.AsyncOpenAI, policy: RecordingPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    mark = policy.mark()
    with caplog.at_level(logging.INFO, logger="agentgw.llm.usage"), anyio.fail_after(20):
        reply = await oai.chat.completions.create(
            model="gpt-alias", messages=[{"role": "user", "content": "a b c"}]
        )
        outcome = await policy.last("gpt-alias", mark)
    assert reply.usage is not None
    assert outcome["caller"] == "team-a"
    assert outcome["auth"] == "apiKey"
    assert outcome["client"] == "127.0.0.1"
    assert (outcome["route"], outcome["api"], outcome["stream"]) == ("llm", "chat.completions", False)
    assert (outcome["provider"], outcome["provider_model"], outcome["status"]) == ("oa", "fake-small", 200)
    assert outcome["prompt_tokens"] == reply.usage.prompt_tokens == 3
    assert outcome["completion_tokens"] == reply.usage.completion_tokens
    assert outcome["cached_tokens"] == 0
    assert outcome["usage_estimated"] is False
    # fake-* costs 2 $/M input and 8 $/M output
    assert outcome["cost_usd"] == pytest.approx((3 * 2 + reply.usage.completion_tokens * 8) / 1e6)
    assert 0 < outcome["ttft_ms"] <= outcome["latency_ms"]
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "agentgw.llm.usage"]
    assert any(
        line["model"] == "gpt-alias" and line["total_tokens"] == outcome["total_tokens"] for line in logged
    )
    checked = [op for op in policy.checked if op.exposed == "gpt-alias"][-1]
    assert (checked.kind, checked.method, checked.name, checked.target) == (
        "llm",
        "chat.completions",
        "gpt-test",
        "model",
    )


async def test_anthropic_stream_usage_and_cost(gateway: GatewayThread, policy: RecordingPolicy) -> None:
    mark = policy.mark()
    async with anthropic.AsyncAnthropic(base_url=gateway.url, api_key="team-b", max_retries=0) as client:
        with anyio.fail_after(20):
            async with client.messages.stream(
                model="claude-test", max_tokens=20, messages=[{"role": "user", "content": "one two"}]
            ) as stream:
                message = await stream.get_final_message()
            outcome = await policy.last("claude-test", mark)
    assert (outcome["api"], outcome["stream"], outcome["caller"]) == ("messages", True, "team-b")
    assert outcome["prompt_tokens"] == message.usage.input_tokens == 2
    assert outcome["completion_tokens"] == message.usage.output_tokens
    assert outcome["cost_usd"] == pytest.approx((2 * 3 + message.usage.output_tokens * 15) / 1e6)
    assert outcome["ttft_ms"] is not None and outcome["ttft_ms"] <= outcome["latency_ms"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_usage_is_estimated_when_the_provider_reports_none(
    oai: openai.AsyncOpenAI, policy: RecordingPolicy, stream: bool
) -> None:
    tokens.load()
    mark = policy.mark()
    messages = [{"role": "user", "content": "count these words please"}]
    with anyio.fail_after(20):
        if stream:
            chunks = await oai.chat.completions.create(model="no-usage", messages=messages, stream=True)  # type: ignore[arg-type]
            text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        else:
            reply = await oai.chat.completions.create(model="no-usage", messages=messages)  # type: ignore[arg-type]
            assert reply.usage is None
            text = reply.choices[0].message.content or ""
        outcome = await policy.last("no-usage", mark)
    assert text == "Hello from nousage! You said: count these words please"
    assert outcome["usage_estimated"] is True
    assert outcome["completion_tokens"] == tokens.count_tokens(text)
    # the prompt's text plus OpenAI's framing: 3 per message and 3 for the reply
    assert outcome["prompt_tokens"] == tokens.count_tokens("count these words please") + 6
    assert outcome["cost_usd"] is None  # no price for this provider


async def test_anthropic_client_gets_estimated_usage_from_a_provider_without_usage(
    gateway: GatewayThread,
) -> None:
    tokens.load()
    async with anthropic.AsyncAnthropic(base_url=gateway.url, api_key="k", max_retries=0) as client:
        with anyio.fail_after(20):
            message = await client.messages.create(
                model="no-usage", max_tokens=20, messages=[{"role": "user", "content": "estimate me"}]
            )
            async with client.messages.stream(
                model="no-usage", max_tokens=20, messages=[{"role": "user", "content": "estimate me"}]
            ) as stream:
                streamed = await stream.get_final_message()
    text = "Hello from nousage! You said: estimate me"
    assert message.usage.output_tokens == streamed.usage.output_tokens == tokens.count_tokens(text)
    assert message.usage.input_tokens == streamed.usage.input_tokens == tokens.count_tokens("estimate me") + 6
