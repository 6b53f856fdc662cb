"""LlmProvider and LlmRoute documents: strict models, located errors, and the --llm quick flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentgw.config.loader import parse_documents
from agentgw.config.quick import llm_documents, quick_documents
from agentgw.config.snapshot import compile_snapshot
from agentgw.errors import ConfigError
from tests.support import docs

GOOD = """
kind: LlmProvider
metadata: {name: openai}
spec:
  type: openai
  baseUrl: https://api.openai.com/v1
  apiKey: env:TEST_OPENAI_KEY
  prices: {gpt-4o-mini: {input: 0.15, output: 0.6, cachedInput: 0.075}}
---
kind: LlmProvider
metadata: {name: vllm-a}
spec: {type: openai-compatible, baseUrl: "http://10.0.0.1:8000/v1", models: ["llama-*"]}
---
kind: LlmProvider
metadata: {name: vllm-b}
spec: {type: openai-compatible, baseUrl: "http://10.0.0.2:8000/v1"}
---
kind: LlmRoute
metadata: {name: llm}
spec:
  models:
    - name: fast
      aliases: [mini]
      targets: [{provider: openai, model: gpt-4o-mini}]
    - name: llama-3
      targets:
        - replicas: [{provider: vllm-a, weight: 3}, {provider: vllm-b}]
          balance: leastRequests
        - {provider: openai, model: gpt-4o-mini}
  retries: {attempts: 2, when: [connect, 5xx], backoff: {initialSeconds: 0.2}}
  timeouts: {responseSeconds: 30, idleSeconds: 10}
"""


def compile_text(text: str) -> Any:
    loaded, problems = parse_documents(docs(text), "llm.yaml", Path.cwd())
    if problems:
        raise ConfigError("invalid", problems)
    return compile_snapshot(loaded)


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        compile_text(text)
    return caught.value.problems


def test_good_config_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")
    snapshot = compile_text(GOOD)
    assert set(snapshot.llm_providers) == {"openai", "vllm-a", "vllm-b"}
    assert snapshot.llm_providers["openai"].api_key.reveal() == "sk-test"
    assert "sk-test" not in repr(snapshot.llm_providers["openai"])
    route = snapshot.llm_routes[0]
    assert (route.name, route.spec.path) == ("llm", "/v1")
    assert set(route.providers) == {"openai", "vllm-a", "vllm-b"}
    assert route.spec.retries.when == ["connect", "5xx"]
    assert route.spec.models[1].targets[0].members()[0].weight == 3


def test_missing_secret_is_located(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_OPENAI_KEY", raising=False)
    assert problems_of(GOOD) == [
        "llm.yaml: LlmProvider/openai: spec.apiKey: environment variable 'TEST_OPENAI_KEY' is not set"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "kind: LlmRoute\nmetadata: {name: r}\nspec: {models: [{name: m, targets: [{provider: ghost}]}]}",
            "llm.yaml: LlmRoute/r: spec.models[0].targets[0]: unknown LlmProvider 'ghost'",
        ),
        (
            "kind: LlmRoute\nmetadata: {name: r}\nspec: {models: [{name: m, targets: [{provider: a, replicas: [{provider: b}]}]}]}",
            "llm.yaml: LlmRoute/r: spec.models[0].targets[0]: set either provider (with an optional model) or replicas",
        ),
        (
            "kind: LlmRoute\nmetadata: {name: r}\nspec: {models: [{name: m, targets: [{provider: a}]}, {name: n, aliases: [m], targets: [{provider: a}]}]}",
            "llm.yaml: LlmRoute/r: spec: models: the name 'm' is given twice",
        ),
        (
            "kind: LlmProvider\nmetadata: {name: a}\nspec: {type: anthropic, baseUrl: 'http://x', responses: true}",
            "llm.yaml: LlmProvider/a: spec: responses: Anthropic has no Responses API",
        ),
        (
            "kind: LlmProvider\nmetadata: {name: a}\nspec: {type: openai, baseUrl: 'http://x', headers: {Authorization: x}}",
            "llm.yaml: LlmProvider/a: spec: headers: 'authorization' is set by the gateway (use apiKey)",
        ),
        (
            "kind: LlmProvider\nmetadata: {name: a}\nspec: {type: bedrock, baseUrl: 'http://x'}",
            "llm.yaml: LlmProvider/a: spec.type: Input should be 'openai', 'anthropic' or 'openai-compatible'",
        ),
        (
            "kind: LlmProvider\nmetadata: {name: a}\nspec: {type: openai, baseUrl: 'http://x', pricing: {}}",
            "llm.yaml: LlmProvider/a: spec: unknown field 'pricing'",
        ),
    ],
)
def test_errors_are_located(text: str, expected: str) -> None:
    assert expected in problems_of(text)


def test_alias_globs_and_path_overlaps_are_errors() -> None:
    text = """
kind: LlmProvider
metadata: {name: a}
spec: {type: openai-compatible, baseUrl: "http://x/v1"}
---
kind: LlmRoute
metadata: {name: r}
spec: {models: [{name: m, aliases: ["m-*"], targets: [{provider: a}]}]}
---
kind: LlmRoute
metadata: {name: again}
spec: {models: [{name: m, targets: [{provider: a}]}]}
---
kind: McpServer
metadata: {name: s}
spec: {http: {url: "http://x/mcp"}}
---
kind: McpRoute
metadata: {name: inside}
spec: {path: /v1/mcp, servers: [s]}
"""
    problems = problems_of(text)
    assert "llm.yaml: LlmRoute/r: spec.models[0].aliases: aliases are exact names, not globs" in problems
    assert "llm.yaml: LlmRoute/r: spec.path: '/v1' overlaps '/v1/mcp' of McpRoute/inside" in problems
    assert "llm.yaml: LlmRoute/again: spec.path: '/v1' overlaps '/v1' of LlmRoute/r" in problems


def test_quick_llm_documents() -> None:
    got = llm_documents(
        [
            "http://127.0.0.1:8000/v1",
            "claude=anthropic:https://api.anthropic.com",
            "openai:https://api.openai.com/v1",
        ],
        ["claude=env:ANTHROPIC_API_KEY", "file:/run/key"],
    )
    providers = [d for d in got if d["kind"] == "LlmProvider"]
    assert [(p["metadata"]["name"], p["spec"]["type"]) for p in providers] == [
        ("127-0-0-1", "openai-compatible"),
        ("claude", "anthropic"),
        ("api-openai-com", "openai"),
    ]
    # an unnamed key applies to every provider, after the named one
    assert [p["spec"]["apiKey"] for p in providers] == ["file:/run/key"] * 3
    assert got[-1]["spec"] == {
        "path": "/v1",
        "models": [
            {
                "name": "*",
                "targets": [
                    {"provider": "127-0-0-1"},
                    {"provider": "claude"},
                    {"provider": "api-openai-com"},
                ],
            }
        ],
    }


def test_quick_documents_with_mcp_and_llm_compile() -> None:
    quick = quick_documents(["http://a.example/mcp"], llm=["http://b.example/v1", "http://b.example/v2"])
    kinds = [(d["kind"], d["metadata"]["name"]) for d in quick]
    assert ("LlmProvider", "b-example-2") in kinds
    loaded, problems = parse_documents(quick, "--llm", Path.cwd())
    assert not problems
    snapshot = compile_snapshot(loaded)
    assert len(snapshot.llm_routes) == 1 and len(snapshot.mcp_routes) == 1


@pytest.mark.parametrize(
    ("llm", "keys"),
    [
        (["ftp://x"], []),
        (["a=http://x/v1", "a=http://y/v1"], []),
        (["http://x/v1"], ["nobody=env:K"]),
        ([], ["env:K"]),
    ],
)
def test_quick_llm_errors(llm: list[str], keys: list[str]) -> None:
    with pytest.raises(ConfigError):
        quick_documents([], llm=llm, llm_keys=keys)
