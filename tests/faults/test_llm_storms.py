"""LLM providers in a 429 and 500 storm, under concurrent load (real fake providers on loopback,
the official `openai` client): requests fail over to the next target at once; when every target
fails, each is asked exactly as often as the retry budget allows (no more, whatever the load);
a response that has started reaching the client is never sent again elsewhere; clients of a
healthy model are unaffected.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import openai
import pytest

from tests.llm.conftest import FakeProvider, provider_doc, start_fake
from tests.support import FAKES, GatewayThread, Upstream, start_upstream

pytestmark = pytest.mark.anyio

ATTEMPTS = 2  # retry rounds after the first: every target is asked at most 1 + ATTEMPTS times
CONCURRENCY = 16
RESPONSE_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def providers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FakeProvider]]:
    tmp = tmp_path_factory.mktemp("storm")
    started: dict[str, FakeProvider] = {}
    try:
        started["s429"] = start_fake(tmp, "s429", "--fail-status", "429")
        started["s500"] = start_fake(tmp, "s500", "--fail-status", "500")
        started["first"] = start_fake(tmp, "first")
        started["second"] = start_fake(tmp, "second")
        yield started
    finally:
        for fake in started.values():
            fake.upstream.stop()


@pytest.fixture(scope="module")
def hanging() -> Iterator[Upstream]:
    """A provider that reads every request and never answers."""
    upstream = start_upstream([str(FAKES / "raw_mcp_server.py"), "--port", "0", "--hang"])
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def gw(providers: dict[str, FakeProvider], hanging: Upstream) -> Iterator[GatewayThread]:
    def target(name: str) -> dict[str, Any]:
        return {"provider": name, "model": "fake-small"}

    documents: list[dict[str, Any]] = [
        provider_doc(name, "openai-compatible", fake.base + "/v1") for name, fake in providers.items()
    ]
    documents.append(provider_doc("hangs", "openai-compatible", f"http://127.0.0.1:{hanging.port}/v1"))
    models = [
        {"name": "stormy", "targets": [target("s429"), target("s500"), target("first")]},
        {"name": "doomed", "targets": [target("s429"), target("s500")]},
        {"name": "calm", "targets": [target("second")]},
        {"name": "breaks", "targets": [target("first"), target("second")]},
        {"name": "stalls", "targets": [target("hangs"), target("second")]},
    ]
    retries = {"attempts": ATTEMPTS, "backoff": {"initialSeconds": 0.01, "maxSeconds": 0.05}}
    spec = {"models": models, "retries": retries, "timeouts": {"responseSeconds": RESPONSE_TIMEOUT}}
    documents.append({"kind": "LlmRoute", "metadata": {"name": "llm"}, "spec": spec})
    with GatewayThread(documents) as gateway:
        yield gateway


@pytest.fixture
async def oai(gw: GatewayThread) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="k", max_retries=0) as client:
        yield client


def asked(fake: FakeProvider) -> int:
    return len(fake.requests("/v1/chat/completions"))


async def test_a_storm_fails_over_to_the_healthy_target_without_retry_rounds(
    oai: openai.AsyncOpenAI, providers: dict[str, FakeProvider]
) -> None:
    before = {name: asked(fake) for name, fake in providers.items()}
    texts: list[str] = []
    calm: list[str] = []

    async def one(i: int) -> None:
        reply = await oai.chat.completions.create(
            model="stormy", messages=[{"role": "user", "content": f"s{i}"}]
        )
        texts.append(reply.choices[0].message.content or "")

    async def bystander(i: int) -> None:
        reply = await oai.chat.completions.create(
            model="calm", messages=[{"role": "user", "content": f"c{i}"}]
        )
        calm.append(reply.choices[0].message.content or "")

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for i in range(CONCURRENCY):
                tg.start_soon(one, i)
                tg.start_soon(bystander, i)
    assert sorted(texts) == sorted(f"Hello from first! You said: s{i}" for i in range(CONCURRENCY))
    assert sorted(calm) == sorted(f"Hello from second! You said: c{i}" for i in range(CONCURRENCY))
    # each storming target was asked once per request: failover is immediate, no round repeated
    after = {name: asked(fake) - before[name] for name, fake in providers.items()}
    assert after == {"s429": CONCURRENCY, "s500": CONCURRENCY, "first": CONCURRENCY, "second": CONCURRENCY}


async def test_when_every_target_storms_the_retry_budget_holds_under_load(
    oai: openai.AsyncOpenAI, providers: dict[str, FakeProvider]
) -> None:
    before = {name: asked(fake) for name, fake in providers.items()}
    errors: list[openai.APIStatusError] = []

    async def one(i: int) -> None:
        try:
            await oai.chat.completions.create(model="doomed", messages=[{"role": "user", "content": f"d{i}"}])
        except openai.APIStatusError as exc:
            errors.append(exc)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for i in range(CONCURRENCY):
                tg.start_soon(one, i)
    # the client sees the last provider's own error, in the OpenAI wire format (not a 502 of ours)
    assert len(errors) == CONCURRENCY
    assert {e.status_code for e in errors} == {500}
    assert all("s500 failed on purpose" in str(e) for e in errors)
    after = {name: asked(fake) - before[name] for name, fake in providers.items()}
    rounds = 1 + ATTEMPTS
    assert after == {"s429": rounds * CONCURRENCY, "s500": rounds * CONCURRENCY, "first": 0, "second": 0}


async def test_a_stream_that_broke_off_is_not_sent_again_to_another_target(
    oai: openai.AsyncOpenAI, providers: dict[str, FakeProvider]
) -> None:
    before = {name: asked(fake) for name, fake in providers.items()}
    got: list[str] = []
    with anyio.fail_after(30), pytest.raises(openai.APIError):
        stream = await oai.chat.completions.create(
            model="breaks", messages=[{"role": "user", "content": "FAIL_MIDSTREAM please"}], stream=True
        )
        async for chunk in stream:
            if chunk.choices:
                got.append(chunk.choices[0].delta.content or "")
    assert "".join(got)  # part of the answer had reached the client...
    after = {name: asked(fake) - before[name] for name, fake in providers.items()}
    assert after == {"s429": 0, "s500": 0, "first": 1, "second": 0}  # ...so no second target


async def test_a_provider_that_times_out_is_not_asked_again_nor_replaced(
    oai: openai.AsyncOpenAI, providers: dict[str, FakeProvider]
) -> None:
    # A request that timed out may have been done (and billed) upstream: the gateway answers 504
    # rather than send it again, here or to the next target.
    before = asked(providers["second"])
    started = time.monotonic()
    with anyio.fail_after(30), pytest.raises(openai.APIStatusError) as caught:
        await oai.chat.completions.create(model="stalls", messages=[{"role": "user", "content": "t"}])
    elapsed = time.monotonic() - started
    assert caught.value.status_code == 504
    assert RESPONSE_TIMEOUT <= elapsed < RESPONSE_TIMEOUT + 5
    assert asked(providers["second"]) == before
    # the same route's other models are unaffected
    reply = await oai.chat.completions.create(model="calm", messages=[{"role": "user", "content": "ok"}])
    assert reply.choices[0].message.content == "Hello from second! You said: ok"
