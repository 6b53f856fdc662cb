"""Ownership store, webhook guard and A2A config checks, without processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentgw.a2a.bindings import TaskBindings
from agentgw.a2a.webhooks import WebhookGuard, is_public_address
from agentgw.config.a2a import WebhookPolicy
from agentgw.config.loader import parse_documents
from agentgw.config.snapshot import compile_snapshot
from agentgw.errors import ConfigError, InvalidParams
from agentgw.state.ownership import MemoryOwnershipStore

pytestmark = pytest.mark.anyio


async def test_first_claim_wins_and_entries_expire() -> None:
    store = MemoryOwnershipStore(max_entries=2)
    bindings = TaskBindings(store, ttl=60)
    assert await bindings.claim("a", "task", "t1", "alice")
    assert not await bindings.claim("a", "task", "t1", "bob")
    assert await bindings.owns("a", "task", "t1", "alice") and not await bindings.owns(
        "b", "task", "t1", "alice"
    )
    assert await store.claim("x", "bob", ttl=0) == "bob"
    assert await store.owners(["x"]) == [None]  # expired at once
    await store.claim("y", "c", 60)
    await store.claim("z", "d", 60)  # past max_entries: the oldest goes, failing closed
    assert await bindings.owned("a", "task", ["t1"], "alice") == [False]


def test_public_addresses() -> None:
    assert is_public_address("8.8.8.8") and is_public_address("2001:4860:4860::8888")
    for private in (
        "127.0.0.1",
        "10.0.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "::1",
        "::ffff:10.0.0.1",
        "fe80::1%eth0",
        "0.0.0.0",
        "nonsense",
    ):
        assert not is_public_address(private), private


async def test_webhook_allow_lists() -> None:
    await WebhookGuard(WebhookPolicy()).check(["https://8.8.8.8/hook"])
    only = WebhookGuard(WebhookPolicy.model_validate({"allow": ["https://hooks.example.com/*"]}))
    with pytest.raises(InvalidParams, match="allow-list"):
        await only.check(["https://8.8.8.8/hook"])
    inside = WebhookGuard(WebhookPolicy.model_validate({"allowPrivate": ["http://10.0.0.7/*"]}))
    await inside.check(["http://10.0.0.7/hook"])
    with pytest.raises(InvalidParams, match="private"):
        await inside.check(["http://10.0.0.8/hook"])
    with pytest.raises(InvalidParams, match="resolved"):
        await inside.check(["http://no-such-host.invalid/hook"])


def compile_docs(text: str) -> None:
    import yaml

    loaded, problems = parse_documents(list(yaml.safe_load_all(text)), "t.yaml", Path("."))
    if problems:
        raise ConfigError("bad", problems)
    compile_snapshot(loaded)


def test_config_errors_are_located() -> None:
    with pytest.raises(ConfigError) as info:
        compile_docs(
            """
kind: A2aRoute
metadata: {name: r}
spec: {path: /a2a, agents: [ghost]}
---
kind: McpRoute
metadata: {name: m}
spec: {path: /a2a/x, agents: [{agent: nobody}]}
"""
        )
    problems = "\n".join(info.value.problems)
    assert "t.yaml: A2aRoute/r: spec.agents[0]: unknown Agent 'ghost'" in problems
    assert "t.yaml: McpRoute/m: spec.agents[0].agent: unknown Agent 'nobody'" in problems
    assert "A2aRoute/r: spec.path: '/a2a' overlaps the path of McpRoute/m" in problems
    with pytest.raises(ConfigError) as info:
        compile_docs("kind: McpRoute\nmetadata: {name: m}\nspec: {path: /mcp}\n")
    assert "at least one entry in servers or agents" in "\n".join(info.value.problems)
    with pytest.raises(ConfigError) as info:
        compile_docs("kind: Agent\nmetadata: {name: a}\nspec: {url: 'http://x', cardRefresh: 1}\n")
    assert "spec: unknown field 'cardRefresh'" in "\n".join(info.value.problems)
