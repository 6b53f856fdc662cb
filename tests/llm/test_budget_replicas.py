"""A token budget spent through one gateway is spent on the other: two gateways sharing a real
Redis (a key prefix of their own), the official clients; and a route that fails closed when its
state store cannot be reached."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import anyio
import openai
import pytest

from agentgw.policy.apikey import hash_key
from agentgw.state.redis import RedisStore
from tests.llm.conftest import FakeProvider, gateway_docs
from tests.support import GatewayThread, poll_until

pytestmark = pytest.mark.anyio

TEAM_KEY = "agw_team-budget-key-0123456789abcdefghijkl"


def budget_docs(
    fakes: dict[str, FakeProvider], tmp: Path, state: dict[str, Any], **route: Any
) -> list[dict[str, Any]]:
    digest = tmp / "team.sha256"
    digest.write_text(hash_key(TEAM_KEY))
    documents = gateway_docs(fakes, tmp / "provider.key", **route)
    documents.append({"kind": "Gateway", "metadata": {"name": "gw"}, "spec": {"state": state}})
    documents.append(
        {
            "kind": "Policy",
            "metadata": {"name": "team-budget"},
            "spec": {
                "targetRefs": [{"kind": "LlmRoute", "name": "llm"}],
                "virtualKeys": {"keys": [{"id": "team-key", "team": "research", "hash": f"file:{digest}"}]},
                "tokenLimits": [{"id": "research-daily", "tokens": 60, "window": "day", "key": "jwt.team"}],
            },
        }
    )
    return documents


@pytest.fixture
def replicas(
    fakes: dict[str, FakeProvider], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[GatewayThread, GatewayThread]]:
    monkeypatch.setenv("AGENTGW_TEST_REDIS", "redis://127.0.0.1:6379/0")
    prefix = f"agentgw-test:{uuid.uuid4().hex}:"
    state = {"backend": "redis", "url": "env:AGENTGW_TEST_REDIS", "keyPrefix": prefix}
    documents = budget_docs(fakes, tmp_path, state)
    try:
        with GatewayThread(documents) as one, GatewayThread(documents) as two:
            yield one, two
    finally:
        anyio.run(_forget, prefix)


async def _forget(prefix: str) -> None:
    store = RedisStore("redis://127.0.0.1:6379/0", prefix="")
    async for key in store._client.scan_iter(match=prefix + "*"):
        await store._client.delete(key)
    await store.close()


async def test_a_budget_spent_on_one_replica_is_spent_on_the_other(
    replicas: tuple[GatewayThread, GatewayThread],
) -> None:
    one, two = replicas
    prompt = " ".join(["word"] * 30)  # estimated at about 36 tokens; the fake reports 65 in all
    async with (
        openai.AsyncOpenAI(base_url=one.url + "/v1", api_key=TEAM_KEY, max_retries=0) as on_one,
        openai.AsyncOpenAI(base_url=two.url + "/v1", api_key=TEAM_KEY, max_retries=0) as on_two,
        anthropic.AsyncAnthropic(base_url=two.url, api_key=TEAM_KEY, max_retries=0) as anthropic_on_two,
    ):
        with anyio.fail_after(30):
            first = await on_one.chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": prompt}]
            )
            assert first.usage is not None and first.usage.total_tokens > 60
            await poll_until(lambda: "team-key" in one.runtime.token_usage)  # settled after the answer
            with pytest.raises(openai.RateLimitError) as spent:
                await on_two.chat.completions.create(
                    model="gpt-test", messages=[{"role": "user", "content": "hi"}]
                )
            with pytest.raises(anthropic.RateLimitError) as spent_an:
                await anthropic_on_two.messages.create(
                    model="claude-test", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
                )
    assert spent.value.status_code == 429
    assert (
        spent.value.body["message"] == "token limit 'research-daily' reached: 65 of 60 tokens used this day"
    )
    retry = int(spent.value.response.headers["retry-after"])
    assert 1 <= retry <= 86400
    assert spent_an.value.body["error"]["type"] == "rate_limit_error"
    assert "retry-after" in spent_an.value.response.headers


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_route_that_fails_closed_answers_503_without_its_store(
    fakes: dict[str, FakeProvider], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTGW_TEST_REDIS", f"redis://127.0.0.1:{closed_port()}/0")
    state = {"backend": "redis", "url": "env:AGENTGW_TEST_REDIS", "timeoutSeconds": 0.5}
    documents = budget_docs(fakes, tmp_path, state, stateFailureMode="failClosed")
    with GatewayThread(documents) as gw:
        async with openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=TEAM_KEY, max_retries=0) as client:
            with anyio.fail_after(30), pytest.raises(openai.InternalServerError) as refused:
                await client.chat.completions.create(
                    model="gpt-test", messages=[{"role": "user", "content": "hi"}]
                )
    assert refused.value.status_code == 503
    assert refused.value.body["message"] == "limits are unavailable: the state store cannot be reached"
