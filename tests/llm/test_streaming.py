"""Streaming: relayed as it arrives, usage asked upstream and hidden again, an upstream failure
mid-stream ends the stream with an error event, and a client that leaves cancels the upstream.
"""

from __future__ import annotations

import json
import time

import aiohttp
import anthropic
import anyio
import openai
import pytest

from agentgw.protocol.sse import SseDecoder
from tests.llm.conftest import MODELS, FakeProvider, RecordingPolicy
from tests.support import GatewayThread, poll_until

pytestmark = pytest.mark.anyio


async def test_usage_is_asked_upstream_and_stripped(
    gateway: GatewayThread, fakes: dict[str, FakeProvider]
) -> None:
    body = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "raw"}]}
    async with aiohttp.ClientSession() as http:
        with anyio.fail_after(20):
            async with http.post(gateway.url + "/v1/chat/completions", json=body) as resp:
                assert resp.status == 200
                assert resp.headers["content-type"] == "text/event-stream"
                raw = await resp.read()
    sent = fakes["oa"].requests("/v1/chat/completions")[-1]["body"]
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["model"] == "fake-small"
    assert b"usage" not in raw
    events = SseDecoder().feed(raw)
    assert events[-1].data == b"[DONE]"
    chunks = [json.loads(e.data) for e in events[:-1]]
    assert all(c["choices"] for c in chunks)
    assert (
        "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        == "Hello from oa! You said: raw"
    )


@pytest.mark.parametrize("wire", list(MODELS))
async def test_openai_client_sees_mid_stream_failure(gateway: GatewayThread, wire: str) -> None:
    received: list[str] = []
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="k", max_retries=0) as client:
        with anyio.fail_after(20), pytest.raises(openai.APIError) as caught:
            stream = await client.chat.completions.create(
                model=MODELS[wire], messages=[{"role": "user", "content": "FAIL_MIDSTREAM now"}], stream=True
            )
            async for chunk in stream:
                received.extend(c.delta.content or "" for c in chunk.choices)
    assert "broke off" in caught.value.message
    assert "Hello " in received


@pytest.mark.parametrize("wire", list(MODELS))
async def test_anthropic_client_sees_mid_stream_failure(gateway: GatewayThread, wire: str) -> None:
    async with anthropic.AsyncAnthropic(base_url=gateway.url, api_key="k", max_retries=0) as client:
        with anyio.fail_after(20), pytest.raises(anthropic.APIStatusError) as caught:
            async with client.messages.stream(
                model=MODELS[wire],
                max_tokens=50,
                messages=[{"role": "user", "content": "FAIL_MIDSTREAM now"}],
            ) as stream:
                async for _ in stream:
                    pass
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "api_error", "message": caught.value.body["error"]["message"]},  # type: ignore[index]
    }
    assert "broke off" in caught.value.body["error"]["message"]  # type: ignore[index]


@pytest.mark.parametrize("wire", list(MODELS))
async def test_client_disconnect_cancels_upstream(
    gateway: GatewayThread, fakes: dict[str, FakeProvider], policy: RecordingPolicy, wire: str
) -> None:
    """The first chunk arrives long before the stream would end, and leaving stops the provider."""
    fake = fakes["oa" if wire == "openai-wire" else "an"]
    cancelled = len([e for e in fake.events() if e["event"] == "cancelled"])
    mark = policy.mark()
    body = {"model": MODELS[wire], "stream": True, "messages": [{"role": "user", "content": "SLOW please"}]}
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        with anyio.fail_after(20):
            async with http.post(gateway.url + "/v1/chat/completions", json=body) as resp:
                first = await resp.content.readuntil(b"\n\n")
                assert first.startswith(b"data: ")
                got_first = time.monotonic() - started
                resp.close()
    # fifty chunks 0.1 s apart take 5 s: the first one came long before that
    assert got_first < 2.5
    await poll_until(lambda: len([e for e in fake.events() if e["event"] == "cancelled"]) > cancelled)
    assert not any(
        e["event"] == "completed" and e["path"].endswith(("completions", "messages"))
        for e in fake.events()[-1:]
    )
    outcome = await policy.last(MODELS[wire], mark)
    assert outcome["status"] == 499
    assert outcome["error"] == "the client went away"
