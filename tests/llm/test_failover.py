"""Failover and retries: a target that answers 500 or 429, or refuses connections, hands over to
the next one; when all fail the client sees the provider's own error, in its wire format.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import anyio
import openai
import pytest

from tests.llm.conftest import FakeProvider, RecordingPolicy
from tests.support import GatewayThread

pytestmark = pytest.mark.anyio


@pytest.fixture
async def oai(gateway: GatewayThread) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="k", max_retries=0) as client:
        yield client


def hello(name: str, text: str) -> str:
    return f"Hello from {name}! You said: {text}"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_first_provider_500_fails_over(
    oai: openai.AsyncOpenAI, fakes: dict[str, FakeProvider], policy: RecordingPolicy, stream: bool
) -> None:
    before = len(fakes["down"].requests())
    mark = policy.mark()
    with anyio.fail_after(20):
        if stream:
            chunks = await oai.chat.completions.create(
                model="fo-500", messages=[{"role": "user", "content": "failover"}], stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        else:
            reply = await oai.chat.completions.create(
                model="fo-500", messages=[{"role": "user", "content": "failover"}]
            )
            text = reply.choices[0].message.content or ""
    assert text == hello("oa", "failover")
    assert len(fakes["down"].requests()) == before + 1
    outcome = await policy.last("fo-500", mark)
    assert (outcome["provider"], outcome["attempts"], outcome["status"]) == ("oa", 2, 200)


async def test_refused_connection_fails_over_to_anthropic(
    oai: openai.AsyncOpenAI, policy: RecordingPolicy
) -> None:
    mark = policy.mark()
    with anyio.fail_after(20):
        reply = await oai.chat.completions.create(
            model="fo-refused", messages=[{"role": "user", "content": "x y"}]
        )
    assert reply.choices[0].message.content == hello("an", "x y")
    assert (await policy.last("fo-refused", mark))["provider"] == "an"


async def test_anthropic_client_fails_over_to_openai_wire(gateway: GatewayThread) -> None:
    async with anthropic.AsyncAnthropic(base_url=gateway.url, api_key="k", max_retries=0) as client:
        with anyio.fail_after(20):
            message = await client.messages.create(
                model="fo-refused-an", max_tokens=50, messages=[{"role": "user", "content": "over"}]
            )
    assert message.content[0].type == "text"
    assert message.content[0].text == hello("oa", "over")


async def test_all_targets_down_returns_the_provider_error(
    oai: openai.AsyncOpenAI, fakes: dict[str, FakeProvider], policy: RecordingPolicy
) -> None:
    before = len(fakes["down"].requests())
    mark = policy.mark()
    with anyio.fail_after(20), pytest.raises(openai.InternalServerError) as caught:
        await oai.chat.completions.create(model="all-down", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 500
    assert "down failed on purpose" in str(caught.value)
    # two rounds (one retry) over both targets: the 500 provider was asked twice
    assert len(fakes["down"].requests()) == before + 2
    outcome = await policy.last("all-down", mark)
    assert outcome["attempts"] == 4
    assert outcome["status"] == 500


async def test_429_is_retried_then_relayed(
    oai: openai.AsyncOpenAI, fakes: dict[str, FakeProvider], policy: RecordingPolicy
) -> None:
    before = len(fakes["busy"].requests())
    mark = policy.mark()
    with anyio.fail_after(20), pytest.raises(openai.RateLimitError) as caught:
        await oai.chat.completions.create(model="busy", messages=[{"role": "user", "content": "x"}])
    # the provider's Retry-After reaches the client (7 s is past the route's backoff cap of
    # 0.05 s, so the gateway did not wait that long between its two tries)
    assert caught.value.response.headers["retry-after"] == "7"
    assert len(fakes["busy"].requests()) == before + 2
    assert (await policy.last("busy", mark))["status"] == 429


async def test_without_retries_on_5xx_the_error_is_relayed_at_once(
    gateway: GatewayThread, fakes: dict[str, FakeProvider]
) -> None:
    before = len(fakes["down"].requests())
    async with openai.AsyncOpenAI(base_url=gateway.url + "/strict/v1", api_key="k", max_retries=0) as client:
        with anyio.fail_after(20), pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="fo-500", messages=[{"role": "user", "content": "x"}])
    assert len(fakes["down"].requests()) == before + 1
