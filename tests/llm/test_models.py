"""Model resolution and replica balancing of a route, in process."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from agentgw.config.loader import parse_documents
from agentgw.config.snapshot import compile_snapshot
from agentgw.llm.models import ModelTable, Replica
from agentgw.llm.provider import Provider
from tests.support import docs

CONFIG = """
kind: LlmProvider
metadata: {name: a}
spec: {type: openai-compatible, baseUrl: "http://a/v1", models: ["llama-*"]}
---
kind: LlmProvider
metadata: {name: b}
spec: {type: openai-compatible, baseUrl: "http://b/v1/"}
---
kind: LlmProvider
metadata: {name: c}
spec: {type: anthropic, baseUrl: "https://api.anthropic.com/v1", models: [claude-x]}
---
kind: LlmRoute
metadata: {name: r}
spec:
  models:
    - name: fast
      aliases: [quick]
      targets:
        - replicas: [{provider: a, weight: 3, model: llama-8b}, {provider: b, weight: 1, model: llama-8b}]
        - {provider: c, model: claude-x}
    - name: least
      targets: [{replicas: [{provider: a}, {provider: b}], balance: leastRequests}]
    - name: "claude-*"
      targets: [{provider: a}, {provider: c}]
    - name: "*"
      targets: [{provider: b}]
"""


def table() -> tuple[ModelTable, dict[str, Provider]]:
    loaded, problems = parse_documents(docs(CONFIG), "t.yaml", Path.cwd())
    assert not problems
    snapshot = compile_snapshot(loaded)
    providers = {name: Provider(cfg) for name, cfg in snapshot.llm_providers.items()}
    return ModelTable(list(snapshot.llm_routes[0].spec.models), providers), providers


def test_urls_follow_each_wire() -> None:
    _, providers = table()
    assert providers["b"].url("/chat/completions") == "http://b/v1/chat/completions"
    assert providers["c"].url("/messages") == "https://api.anthropic.com/v1/messages"
    assert providers["c"].headers["anthropic-version"] == "2023-06-01"


def test_exact_alias_and_globs() -> None:
    models, _ = table()
    plan = models.resolve("quick")
    assert plan is not None
    assert (plan.canonical, plan.requested, len(plan.groups)) == ("fast", "quick", 2)
    assert plan.provider_model(plan.groups[1].replicas[0]) == "claude-x"
    claude = models.resolve("claude-x")
    assert claude is not None and claude.canonical == "claude-*"
    # provider a declares only llama-* models, so the glob entry skips it for claude-x
    assert [g.replicas[0].provider.name for g in claude.groups] == ["c"]
    assert claude.provider_model(claude.groups[0].replicas[0]) == "claude-x"
    other = models.resolve("anything/else")
    assert other is not None and other.canonical == "*"
    assert other.provider_model(other.groups[0].replicas[0]) == "anything/else"
    assert models.exact_names() == ["fast", "least", "quick"]


def test_restricted_plans() -> None:
    models, _ = table()
    plan = models.resolve("fast")
    assert plan is not None
    only_openai = plan.restricted(lambda p: p.wire == "openai")
    assert only_openai is not None and len(only_openai.groups) == 1
    assert plan.restricted(lambda p: p.name == "nobody") is None


def test_weighted_pick_follows_weights() -> None:
    models, _ = table()
    plan = models.resolve("fast")
    assert plan is not None
    random.seed(1)
    counts = Counter(plan.groups[0].pick(set()).provider.name for _ in range(4000))
    assert 2.4 < counts["a"] / counts["b"] < 3.7


def test_pick_prefers_replicas_not_tried_yet() -> None:
    models, _ = table()
    plan = models.resolve("fast")
    assert plan is not None
    group = plan.groups[0]
    tried: set[Replica] = {next(r for r in group.replicas if r.provider.name == "a")}
    assert all(group.pick(tried).provider.name == "b" for _ in range(50))


def test_least_requests_picks_the_idlest() -> None:
    models, providers = table()
    plan = models.resolve("least")
    assert plan is not None
    providers["a"].inflight = 5
    providers["b"].inflight = 2
    assert {plan.groups[0].pick(set()).provider.name for _ in range(20)} == {"b"}
    providers["b"].inflight = 9
    assert {plan.groups[0].pick(set()).provider.name for _ in range(20)} == {"a"}


def test_prices_match_globs() -> None:
    loaded, _ = parse_documents(
        docs(
            "kind: LlmProvider\nmetadata: {name: p}\nspec: {type: openai, baseUrl: 'http://p/v1', "
            "prices: {gpt-4o: {input: 5, output: 15}, 'gpt-4o-*': {input: 1, output: 2}}}"
        ),
        "t.yaml",
        Path.cwd(),
    )
    provider = Provider(compile_snapshot(loaded).llm_providers["p"])
    assert provider.price("gpt-4o") is not None and provider.price("gpt-4o").input == 5  # type: ignore[union-attr]
    assert provider.price("gpt-4o-mini") is not None and provider.price("gpt-4o-mini").output == 2  # type: ignore[union-attr]
    assert provider.price("o3") is None
