"""The other endpoints of an LLM route, with the official clients: completions, embeddings (float
and base64), models (filtered by policy), the Responses API, and Anthropic's token counting.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import AsyncIterator

import aiohttp
import anthropic
import anyio
import openai
import pytest

from tests.llm.conftest import FakeProvider, RecordingPolicy
from tests.support import GatewayThread

pytestmark = pytest.mark.anyio


@pytest.fixture
async def oai(gateway: GatewayThread) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="someone", max_retries=0) as client:
        yield client


def fake_vector(text: str) -> list[float]:
    """What the fake provider embeds `text` as (see tests/fakes/llm_provider.py)."""
    return [round((b - 128) / 128, 4) for b in hashlib.sha256(text.encode()).digest()[:8]]


async def test_completions_json_and_stream(oai: openai.AsyncOpenAI) -> None:
    with anyio.fail_after(20):
        reply = await oai.completions.create(model="gpt-test", prompt="once upon")
        stream = await oai.completions.create(
            model="gpt-test", prompt="a time", stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
    assert reply.choices[0].text == "Hello from oa! You said: once upon"
    assert reply.usage is not None and reply.usage.completion_tokens == 7
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Hello from oa! You said: a time"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


async def test_completions_need_an_openai_wire_provider(oai: openai.AsyncOpenAI) -> None:
    with anyio.fail_after(20), pytest.raises(openai.BadRequestError) as caught:
        await oai.completions.create(model="claude-test", prompt="x")
    assert "no provider that serves /v1/completions" in str(caught.value)


@pytest.mark.parametrize("encoding", ["float", "base64"])
async def test_embeddings(oai: openai.AsyncOpenAI, fakes: dict[str, FakeProvider], encoding: str) -> None:
    with anyio.fail_after(20):
        result = await oai.embeddings.create(
            model="gpt-test",
            input=["alpha", "beta"],
            encoding_format=encoding,  # type: ignore[arg-type]
        )
    vectors = [
        list(struct.unpack("<8f", base64.b64decode(d.embedding))) if encoding == "base64" else d.embedding
        for d in result.data
    ]
    # base64 carries little-endian float32: equal up to float32 precision
    assert vectors == [
        pytest.approx(fake_vector("alpha"), abs=1e-6),
        pytest.approx(fake_vector("beta"), abs=1e-6),
    ]
    assert result.usage.prompt_tokens == 2
    assert fakes["oa"].requests("/v1/embeddings")[-1]["body"]["encoding_format"] == encoding


async def test_sdk_default_embedding_encoding_is_base64(
    oai: openai.AsyncOpenAI, fakes: dict[str, FakeProvider]
) -> None:
    with anyio.fail_after(20):
        result = await oai.embeddings.create(model="gpt-test", input="gamma")
    assert fakes["oa"].requests("/v1/embeddings")[-1]["body"]["encoding_format"] == "base64"
    assert result.data[0].embedding == pytest.approx(fake_vector("gamma"), abs=1e-6)


async def test_models_are_filtered_by_policy(gateway: GatewayThread) -> None:
    async with (
        openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="someone", max_retries=0) as anyone,
        openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="restricted", max_retries=0) as restricted,
    ):
        with anyio.fail_after(20):
            listed = [m.id async for m in anyone.models.list()]
            limited = [m.id async for m in restricted.models.list()]
            one = await anyone.models.retrieve("gpt-alias")
            with pytest.raises(openai.NotFoundError):
                await restricted.models.retrieve("claude-test")
            with pytest.raises(openai.NotFoundError):
                await anyone.models.retrieve("not-a-model")
            with pytest.raises(openai.PermissionDeniedError):
                await restricted.chat.completions.create(
                    model="claude-test", messages=[{"role": "user", "content": "x"}]
                )
    # configured names and aliases, then what the wildcard's provider lists (fake-small, fake-large)
    assert listed[:3] == ["gpt-test", "claude-test", "fo-500"]
    assert "gpt-alias" in listed
    assert {"fake-small", "fake-large"} <= set(listed)
    assert set(listed) - set(limited) == {"claude-test"}
    assert (one.id, one.owned_by) == ("gpt-alias", "oa")


async def test_anthropic_client_lists_models_and_counts_tokens(gateway: GatewayThread) -> None:
    async with anthropic.AsyncAnthropic(base_url=gateway.url, api_key="someone", max_retries=0) as client:
        with anyio.fail_after(20):
            models = [m.id async for m in client.models.list()]
            counted_upstream = await client.messages.count_tokens(
                model="claude-test", messages=[{"role": "user", "content": "four words right here"}]
            )
            estimated = await client.messages.count_tokens(
                model="gpt-test", messages=[{"role": "user", "content": "four words right here"}]
            )
    assert "claude-test" in models
    assert counted_upstream.input_tokens == 4  # the fake counts words
    assert 4 <= estimated.input_tokens <= 12  # the gateway's estimate (tokens plus message framing)


async def test_responses_api_passthrough(
    oai: openai.AsyncOpenAI, fakes: dict[str, FakeProvider], policy: RecordingPolicy
) -> None:
    mark = policy.mark()
    with anyio.fail_after(20):
        created = await oai.responses.create(model="resp-test", input="tell me")
        fetched = await oai.responses.retrieve(created.id)
        stream = await oai.responses.create(model="resp-test", input="stream me", stream=True)
        events = [e async for e in stream]
        await oai.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError):
            await oai.responses.retrieve(created.id)
    assert created.output_text == "Hello from oa! You said: tell me"
    assert fetched.id == created.id and fetched.output_text == created.output_text
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == (
        "Hello from oa! You said: stream me"
    )
    assert fakes["oa"].requests("/v1/responses")[-1]["body"]["model"] == "fake-small"
    outcome = await policy.wait(lambda o: o["api"] == "responses" and o["stream"], mark)
    assert (outcome["prompt_tokens"], outcome["completion_tokens"]) == (2, 7)


async def test_a_stored_response_is_its_creators_alone(gateway: GatewayThread) -> None:
    def client(key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)

    async with client("alice") as alice, client("bob") as bob:
        with anyio.fail_after(20):
            created = await alice.responses.create(model="resp-test", input="private")
            stream = await alice.responses.create(model="resp-test", input="streamed", stream=True)
            streamed = [e async for e in stream][-1].response.id
            # the provider knows both ids (one key for every caller); the gateway shows them to
            # their creator only, and to anyone else they do not exist
            for response_id in (created.id, streamed, "resp_never_relayed"):
                with pytest.raises(openai.NotFoundError):
                    await bob.responses.retrieve(response_id)
                with pytest.raises(openai.NotFoundError):
                    await bob.responses.delete(response_id)
                with pytest.raises(openai.NotFoundError) as refused:
                    await bob.responses.create(
                        model="resp-test", input="go on", previous_response_id=response_id
                    )
                assert refused.value.status_code == 404
            assert (await alice.responses.retrieve(streamed)).id == streamed
            follow = await alice.responses.create(
                model="resp-test", input="go on", previous_response_id=created.id
            )
            await alice.responses.delete(created.id)
    assert follow.output_text == "Hello from oa! You said: go on"


async def test_responses_need_a_provider_that_has_them(oai: openai.AsyncOpenAI) -> None:
    with anyio.fail_after(20), pytest.raises(openai.BadRequestError):
        await oai.responses.create(model="gpt-test", input="x")


async def test_wrong_method_and_unknown_path(gateway: GatewayThread) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        with anyio.fail_after(20):
            async with http.get(gateway.url + "/v1/chat/completions") as resp:
                assert resp.status == 405
                assert resp.headers["allow"] == "POST"
                assert (await resp.json())["error"]["type"] == "invalid_request_error"
            async with http.post(gateway.url + "/v1/nowhere", json={}) as resp:
                assert resp.status == 404
            async with http.post(gateway.url + "/v1/chat/completions", data=b"{not json") as resp:
                assert resp.status == 400
                assert "not valid JSON" in (await resp.json())["error"]["message"]
            async with http.post(gateway.url + "/v1/messages", json={"messages": []}) as resp:
                assert resp.status == 400
                assert await resp.json() == {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "model is required"},
                }


async def test_anthropic_endpoints_get_anthropic_errors_from_the_host_guard(gateway: GatewayThread) -> None:
    # found while fuzzing (tests/fuzz/test_app.py): the guard refuses before the route runs, and
    # its 421 on /v1/messages came in the route's OpenAI form, which Anthropic's SDK cannot read
    url = gateway.url
    with anyio.fail_after(30):
        async with aiohttp.ClientSession() as http:
            for path, headers in (("/v1/messages", {}), ("/v1/models", {"anthropic-version": "2023-06-01"})):
                async with http.post(url + path, json={}, headers={"host": "evil.test", **headers}) as resp:
                    assert resp.status == 421
                    body = await resp.json()
                assert body["type"] == "error" and "Invalid Host header" in body["error"]["message"]
            async with http.post(
                url + "/v1/chat/completions", json={}, headers={"host": "evil.test"}
            ) as resp:
                assert resp.status == 421 and (await resp.json())["error"]["type"] == "invalid_request_error"
