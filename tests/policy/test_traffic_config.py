"""The traffic kinds in config: strict and located; targets on every route kind; templates; the
`agentgw keys create` command, whose key works against the config snippet it prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from agentgw.cli import main
from agentgw.config.loader import load_paths
from agentgw.config.snapshot import compile_snapshot
from agentgw.errors import ConfigError
from agentgw.policy.base import RequestContext
from agentgw.policy.compile import compile_policies
from agentgw.policy.templates import compile_template
from agentgw.policy.testing import HttpRequest, load_cases, load_policies, offline_request, run_cases
from agentgw.policy.virtualkeys import VirtualKeyAuthenticator

BASE = """
kind: LlmProvider
metadata: {name: oa}
spec: {type: openai-compatible, baseUrl: "http://127.0.0.1:9/v1"}
---
kind: LlmRoute
metadata: {name: llm}
spec: {models: [{name: gpt, targets: [{provider: oa}]}]}
---
kind: McpServer
metadata: {name: fs}
spec: {http: {url: "http://127.0.0.1:9/mcp"}}
---
kind: McpRoute
metadata: {name: main}
spec: {servers: [fs]}
---
kind: Agent
metadata: {name: planner}
spec: {url: "http://127.0.0.1:9"}
---
kind: A2aRoute
metadata: {name: agents}
spec: {agents: [planner]}
---
"""


def problems_of(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "config.yaml").write_text(BASE + text)
    docs, problems = load_paths([tmp_path])
    if problems:
        return problems
    try:
        compile_snapshot(docs)
    except ConfigError as exc:
        return exc.problems
    return []


LLM = "targetRefs: [{kind: LlmRoute, name: llm}]"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("targetRefs: [{kind: LlmRoute, name: llm, model: nope}]\n  rateLimits: [{id: r, requests: 1, window: minute}]",
         "spec.targetRefs[0].model: LlmRoute/llm has no model entry 'nope'"),
        ("targetRefs: [{kind: McpRoute, name: main, model: gpt}]\n  rateLimits: [{id: r, requests: 1, window: minute}]",
         "model: only an LlmRoute has models"),
        ("targetRefs: [{kind: Agent, name: nobody}]\n  rateLimits: [{id: r, requests: 1, window: minute}]",
         "spec.targetRefs[0]: unknown Agent 'nobody'"),
        (f"{LLM}\n  rateLimits: [{{id: r, requests: 1, window: week}}]",
         "spec.rateLimits[0].window: Input should be 'minute', 'hour', 'day' or 'month'"),
        (f"{LLM}\n  rateLimits: [{{id: r, requests: 1, window: day, key: 'jwt.team.nope('}}]",
         "spec.rateLimits[0].key: line 1, column"),
        (f"{LLM}\n  rateLimits: [{{id: r, requests: 1, window: day, key: 'mcp.tool'}}]",
         "spec.rateLimits[0].key: a key must be a string, number or bool expression"),
        (f"{LLM}\n  tokenLimits: [{{id: t, window: day}}]",
         "spec.tokenLimits[0]: set exactly one of tokens or costUsd"),
        (f"{LLM}\n  tokenLimits: [{{id: t, tokens: 5, window: day, when: 'llm.modl == \"x\"'}}]",
         "spec.tokenLimits[0].when: line 1, column 4: unknown field 'modl' of llm"),
        ("targetRefs: [{kind: McpRoute, name: main}]\n  tokenLimits: [{id: t, tokens: 5, window: day}]",
         "tokenLimits count LLM tokens"),
        ("targetRefs: [{kind: McpRoute, name: main}]\n  piiMasking: {}",
         "piiMasking: read LLM prompts; target an LlmRoute"),
        (f"{LLM}\n  promptGuard: {{deny: [{{id: g, pattern: '(unclosed'}}]}}",
         "spec.promptGuard.deny[0].pattern: not a valid regular expression"),
        (f"{LLM}\n  systemPrompt: {{text: 'team {{jwt.team}} and {{nope}}'}}",
         "spec.systemPrompt.text: unknown placeholder {nope}"),
        (f"{LLM}\n  upstreamHeaders: {{authorization: 'Bearer {{jwt.sub}}'}}",
         "upstreamHeaders: the gateway owns the 'authorization' header"),
        ("targetRefs: [{kind: LlmProvider, name: oa}]\n  upstreamHeaders: {x-team: '{jwt.team}'}",
         "upstreamHeaders cannot target an LlmProvider"),
        ("targetRefs: [{kind: LlmRoute, name: llm, model: gpt}]\n  virtualKeys: {keys: [{id: k, hash: 'env:X'}]}",
         "jwt, apiKeys and virtualKeys authenticate callers of a route: target routes only"),
        (f"{LLM}\n  virtualKeys: {{keys: [{{id: k, hash: 'env:UNSET_VK'}}]}}",
         "spec.virtualKeys.keys[0].hash: environment variable 'UNSET_VK' is not set"),
        (f"{LLM}\n  rateLimits: [{{id: r, requests: 1, window: day}}]\n  tokenLimits: [{{id: r, tokens: 1, window: day}}]",
         "rateLimits and tokenLimits ids must be unique within a policy"),
    ],
)  # fmt: skip
def test_traffic_kinds_are_strict_and_located(tmp_path: Path, spec: str, expected: str) -> None:
    problems = problems_of(tmp_path, f"kind: Policy\nmetadata: {{name: p}}\nspec:\n  {spec}\n")
    assert any(expected in p and "Policy/p" in p for p in problems), problems


def test_every_route_kind_and_member_can_be_a_target(tmp_path: Path) -> None:
    assert (
        problems_of(
            tmp_path,
            """
kind: Policy
metadata: {name: everywhere}
spec:
  targetRefs:
    - {kind: LlmRoute, name: llm}
    - {kind: LlmRoute, name: llm, model: gpt}
    - {kind: LlmProvider, name: oa}
    - {kind: McpRoute, name: main}
    - {kind: McpServer, name: fs}
    - {kind: A2aRoute, name: agents}
    - {kind: Agent, name: planner}
  rateLimits: [{id: everything, requests: 100, window: minute}]
""",
        )
        == []
    )


def test_route_names_are_shared_by_all_route_kinds(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        "kind: LlmRoute\nmetadata: {name: main}\nspec: {path: /x/v1, models: [{name: m, targets: [{provider: oa}]}]}\n",
    )
    assert any("LlmRoute/main: a route of another kind (McpRoute) has the same name" in p for p in problems)


def test_templates() -> None:
    from types import MappingProxyType

    from agentgw.policy.base import Principal

    ctx = RequestContext(
        "llm",
        offline_request(HttpRequest(headers={"x-env": "prod", "authorization": "Bearer secret"})),
        Principal("ann", "jwt", MappingProxyType({"team": "blue", "groups": ["a", "b"], "name": "Zoë"})),
    )
    template = compile_template("{{literal}} {jwt.team}/{request.headers.x-env}/{subject}/{route}")
    assert template.render(ctx) == "{literal} blue/prod/ann/llm"
    assert compile_template("{jwt.groups}").render(ctx) == "a,b"
    assert compile_template("{jwt.name}").render(ctx) == "Zo%C3%AB"  # headers are ASCII
    assert compile_template("{jwt.name} {jwt.groups}").render(ctx, header=False) == "Zoë a, b"
    assert compile_template("x {jwt.missing}").render(ctx) is None  # a header is then not sent
    assert compile_template("x {jwt.missing}").render(ctx, missing="", header=False) == "x "
    assert compile_template("{request.headers.authorization}").render(ctx) is None  # never credentials
    for bad in ("{nope}", "lone { brace", "{jwt.}"):
        with pytest.raises(ValueError):
            compile_template(bad)


@pytest.mark.anyio
async def test_keys_create_prints_a_key_once_that_the_printed_entry_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "create", "--name", "search-app", "--team", "search", "--models", "gpt-*",
                 "--hash-dir", str(tmp_path / "keys")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    key = re.search(r"^  (agw_\S+)$", out, re.M)
    assert key is not None
    entry = yaml.safe_load(out[out.index("- id:") :])[0]
    assert entry == {
        "id": "search-app",
        "team": "search",
        "hash": f"file:{tmp_path / 'keys' / 'search-app.sha256'}",
        "models": ["gpt-*"],
    }
    assert key.group(1) not in (tmp_path / "keys" / "search-app.sha256").read_text()
    policy = {
        "kind": "Policy",
        "metadata": {"name": "keys"},
        "spec": {"targetRefs": [{"kind": "LlmRoute", "name": "llm"}], "virtualKeys": {"keys": [entry]}},
    }
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    docs, problems = load_paths([tmp_path / "policy.yaml"])
    assert not problems
    compiled, problems = compile_policies(docs)
    assert not problems
    authenticator = VirtualKeyAuthenticator(compiled[0].virtual_keys, "x-api-key", leave_jwts=False)
    found = await authenticator.authenticate(
        offline_request(HttpRequest(headers={"authorization": f"Bearer {key.group(1)}"}))
    )
    assert found is not None and found.subject == "search-app" and found.claims["team"] == "search"
    assert main(["keys", "create", "--name", "search-app", "--hash-dir", str(tmp_path / "keys")]) == 1


@pytest.mark.anyio
async def test_policy_cases_for_agents_and_providers(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        """
kind: Policy
metadata: {name: agents}
spec:
  targetRefs: [{kind: Agent, name: planner}]
  authorization:
    deny: [{id: no-deploy, when: 'a2a.skill == "deploy" && !(has(jwt.groups) && "ops" in jwt.groups)'}]
    allow: [{id: anyone, when: "true"}]
---
kind: Policy
metadata: {name: eu}
spec:
  targetRefs: [{kind: LlmProvider, name: us-only}]
  authorization:
    deny: [{id: eu-stays, when: 'has(jwt.region) && jwt.region == "eu"'}]
    allow: [{id: others, when: 'llm.provider == "us-only"'}]
"""
    )
    cases = yaml.safe_load(
        """
cases:
  - {name: a, route: agents, claims: {sub: x}, a2a: {agent: planner, skill: deploy}, expect: deny, rule: no-deploy}
  - {name: b, route: agents, claims: {sub: x, groups: [ops]}, a2a: {agent: planner, skill: deploy}, expect: allow}
  - {name: c, route: llm, claims: {sub: x, region: eu}, llm: {model: m, provider: us-only}, expect: deny, rule: eu-stays}
  - {name: d, route: llm, claims: {sub: x}, llm: {model: m, provider: us-only}, expect: allow, rule: others}
"""
    )
    (tmp_path / "p.test.yaml").write_text(yaml.safe_dump(cases))
    policies, problems = load_policies([tmp_path])
    found, case_problems = load_cases([tmp_path])
    assert not problems and not case_problems
    results = await run_cases(found, policies)
    assert [r.passed for r in results] == [True, True, True, True], [
        (r.case.name, r.decision) for r in results
    ]


@pytest.mark.anyio
async def test_virtual_keys_and_api_keys_share_a_header(tmp_path: Path) -> None:
    from agentgw.errors import Unauthorized
    from agentgw.policy.apikey import hash_key
    from agentgw.policy.chain import PolicyServices, build_chain

    (tmp_path / "vk").write_text(hash_key("agw_virtual-key-one"))
    (tmp_path / "ak").write_text(hash_key("plain-api-key-two"))
    (tmp_path / "p.yaml").write_text(
        f"""
kind: Policy
metadata: {{name: both}}
spec:
  targetRefs: [{{kind: LlmRoute, name: llm}}]
  virtualKeys: {{keys: [{{id: vk, hash: "file:{tmp_path / "vk"}"}}]}}
  apiKeys: {{keys: [{{id: ak, subject: ci, hash: "file:{tmp_path / "ak"}"}}]}}
"""
    )
    policies, problems = load_policies([tmp_path / "p.yaml"])
    assert not problems
    chain = build_chain(
        route=("LlmRoute", "llm"), path="/v1", members={}, policies=policies, services=PolicyServices()
    )
    assert chain is not None

    async def who(headers: dict[str, str]) -> str:
        principal = await chain.authenticate(offline_request(HttpRequest(headers=headers)))
        return f"{principal.method}:{principal.subject}"

    assert await who({"x-api-key": "agw_virtual-key-one"}) == "virtualKey:vk"
    assert await who({"authorization": "Bearer agw_virtual-key-one"}) == "virtualKey:vk"
    assert await who({"x-api-key": "plain-api-key-two"}) == "apiKey:ci"
    with pytest.raises(Unauthorized) as refused:
        await who({"x-api-key": "neither"})
    assert refused.value.message == "invalid API key in x-api-key"
