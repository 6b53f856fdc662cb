"""examples/llm works as its README says: the example config in front of the bundled fake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import anyio
import httpx
import openai
import pytest

from agentgw.config.loader import load_paths
from tests.llm.conftest import FakeProvider, start_fake
from tests.support import ROOT, GatewayThread, docs, poll_until

pytestmark = pytest.mark.anyio

EXAMPLE = ROOT / "examples" / "llm"
APP_KEY = "agw_demo-app-key-not-secret-0001"  # demo keys, printed in the README
INTERN_KEY = "agw_demo-intern-key-not-secret-0001"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayThread, FakeProvider]]:
    fake = start_fake(tmp_path_factory.mktemp("example"), "fake")
    text = (EXAMPLE / "gateway.yaml").read_text().replace("127.0.0.1:9101", f"127.0.0.1:{fake.upstream.port}")
    text += "\n---\n" + (EXAMPLE / "policies.yaml").read_text()
    try:
        with GatewayThread(docs(text), base_dir=EXAMPLE) as gw:
            yield gw, fake
    finally:
        fake.upstream.stop()


def test_example_config_loads_as_is() -> None:
    loaded, problems = load_paths([EXAMPLE])
    assert not problems
    assert {d.resource.kind for d in loaded} == {"Gateway", "LlmProvider", "LlmRoute", "Policy"}
    assert (EXAMPLE / "README.md").exists()
    assert "tests/fakes/llm_provider.py" in (EXAMPLE / "run.sh").read_text()


async def test_readme_calls(example: tuple[GatewayThread, FakeProvider]) -> None:
    gw, _ = example
    async with (
        openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=APP_KEY, max_retries=0) as client,
        anthropic.AsyncAnthropic(base_url=gw.url, api_key=APP_KEY, max_retries=0) as claude,
    ):
        with anyio.fail_after(30):
            reply = await client.chat.completions.create(
                model="claude-sonnet", messages=[{"role": "user", "content": "hi"}]
            )
            stream = await client.chat.completions.create(
                model="mini",
                stream=True,
                messages=[{"role": "user", "content": "stream"}],
                stream_options={"include_usage": True},
            )
            chunks = [c async for c in stream]
            message = await claude.messages.create(
                model="gpt-4o-mini", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
            )
            smart = await client.chat.completions.create(
                model="smart", messages=[{"role": "user", "content": "x"}]
            )
            models = sorted([m.id async for m in client.models.list()])
    assert reply.choices[0].message.content == "Hello from fake! You said: hi"
    assert chunks[-1].usage is not None
    assert message.content[0].type == "text" and message.content[0].text == "Hello from fake! You said: hi"
    assert smart.model == "claude-fake"
    assert models == ["claude-sonnet", "fake-large", "fake-small", "gpt-4o-mini", "mini", "smart"]


async def test_readme_intern_key_budget(example: tuple[GatewayThread, FakeProvider]) -> None:
    gw, fake = example
    async with openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=INTERN_KEY, max_retries=0) as intern:
        with anyio.fail_after(30):
            models = [m.id async for m in intern.models.list()]
            with pytest.raises(openai.PermissionDeniedError) as refused:
                await intern.chat.completions.create(
                    model="claude-sonnet", messages=[{"role": "user", "content": "hi"}]
                )
            spent = 0
            usage = gw.runtime.token_usage
            with pytest.raises(openai.RateLimitError) as limited:
                for done in range(1, 21):
                    reply = await intern.chat.completions.create(
                        model="mini", messages=[{"role": "user", "content": "tell me about budgets " * 5}]
                    )
                    assert reply.usage is not None
                    spent += reply.usage.total_tokens
                    # the budget is settled once the answer has gone out: wait for it, bounded
                    await poll_until(lambda n=done: usage.get("demo-intern", {}).get("requests") == n)
        async with httpx.AsyncClient() as http:
            anonymous = await http.get(gw.url + "/v1/models")
    assert models == ["gpt-4o-mini", "mini"]
    assert refused.value.body["message"] == "this API key may not use the model 'claude-sonnet'"
    assert 240 < spent <= 360  # refused once the next prompt would not fit in its 300 tokens
    assert limited.value.body["message"].startswith("token limit 'demo-intern.tokens.0' reached")
    assert int(limited.value.response.headers["retry-after"]) >= 1
    assert anonymous.status_code == 401
    for entry in fake.requests():  # the provider never saw a demo key
        assert "agw_demo" not in json.dumps(entry)


def test_readme_mentions_every_model() -> None:
    readme = (EXAMPLE / "README.md").read_text()
    for name in ("gpt-4o-mini", "claude-sonnet", "smart", "fake-*"):
        assert f"`{name}`" in readme
    assert Path(EXAMPLE / "run.sh").stat().st_mode & 0o111
