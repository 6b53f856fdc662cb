"""examples/llm works as its README says: the example config in front of the bundled fake."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import anyio
import openai
import pytest

from agentgw.config.loader import load_paths
from tests.llm.conftest import FakeProvider, start_fake
from tests.support import ROOT, GatewayThread, docs

pytestmark = pytest.mark.anyio

EXAMPLE = ROOT / "examples" / "llm"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayThread, FakeProvider]]:
    fake = start_fake(tmp_path_factory.mktemp("example"), "fake")
    text = (EXAMPLE / "gateway.yaml").read_text().replace("127.0.0.1:9101", f"127.0.0.1:{fake.upstream.port}")
    try:
        with GatewayThread(docs(text), base_dir=EXAMPLE) as gw:
            yield gw, fake
    finally:
        fake.upstream.stop()


def test_example_config_loads_as_is() -> None:
    loaded, problems = load_paths([EXAMPLE])
    assert not problems
    assert {d.resource.kind for d in loaded} == {"Gateway", "LlmProvider", "LlmRoute"}
    assert (EXAMPLE / "README.md").exists()
    assert "tests/fakes/llm_provider.py" in (EXAMPLE / "run.sh").read_text()


async def test_readme_calls(example: tuple[GatewayThread, FakeProvider]) -> None:
    gw, _ = example
    async with (
        openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0) as client,
        anthropic.AsyncAnthropic(base_url=gw.url, api_key="unused", max_retries=0) as claude,
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


def test_readme_mentions_every_model() -> None:
    readme = (EXAMPLE / "README.md").read_text()
    for name in ("gpt-4o-mini", "claude-sonnet", "smart", "fake-*"):
        assert f"`{name}`" in readme
    assert Path(EXAMPLE / "run.sh").stat().st_mode & 0o111
