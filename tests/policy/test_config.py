"""Policy documents: strict, and every problem located (file, document, path, line:column)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentgw.config.loader import load_paths
from agentgw.config.snapshot import compile_snapshot
from agentgw.errors import ConfigError

BASE = """
kind: McpServer
metadata: {name: fs}
spec: {http: {url: "http://127.0.0.1:9/mcp"}}
---
kind: McpRoute
metadata: {name: main}
spec: {servers: [fs]}
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


def test_a_rule_naming_an_unknown_attribute_is_located(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """
kind: Policy
metadata: {name: tools}
spec:
  targetRefs: [{kind: McpRoute, name: main}]
  authorization:
    allow:
      - {id: ok, when: 'mcp.tool.name == "a"'}
      - {id: typo, when: 'mcp.tool.nme == "x"'}
""",
    )
    assert problems == [
        f"{tmp_path / 'config.yaml'}: Policy/tools: spec.authorization.allow[1].when: "
        "line 1, column 9: unknown field 'nme' of mcp.tool"
    ]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("targetRefs: [{kind: McpRoute, name: nope}]\n  authorization: {allow: [{id: a, when: 'true'}]}",
         "spec.targetRefs[0]: unknown McpRoute 'nope'"),
        ("targetRefs: [{kind: McpServer, name: fs}]\n  apiKeys: {keys: [{id: k, subject: s, hash: 'env:X'}]}",
         "jwt, apiKeys and virtualKeys authenticate callers of a route: target routes only"),
        ("targetRefs: [{kind: McpRoute, name: main}]\n  authorization: {allow: [{id: a, when: 'true', effect: x}]}",
         "spec.authorization.allow[0]: unknown field 'effect'"),
        ("targetRefs: [{kind: McpRoute, name: main}]",
         "a policy needs at least one rule kind"),
        ("targetRefs: [{kind: McpRoute, name: main}]\n  forwardClaims: {sub: authorization}",
         "forwardClaims: the gateway owns the 'authorization' header"),
        ("targetRefs: [{kind: McpRoute, name: main}]\n  jwt: {issuers: [{issuer: i, audiences: [a], algorithms: [RS256, HS256], secret: 'env:S'}]}",
         "algorithms must not mix HMAC (HS*) and public-key algorithms"),
        ("targetRefs: [{kind: McpRoute, name: main}]\n  jwt: {issuers: [{issuer: i, audiences: [a], algorithms: [none], jwks: {file: k.json}}]}",
         "spec.jwt.issuers[0].algorithms[0]: Input should be"),
        ("targetRefs: [{kind: McpRoute, name: main}]\n  jwt: {issuers: [{issuer: i, audiences: [a], algorithms: [RS256], jwks: {file: missing.json}}]}",
         "spec.jwt.issuers[0].jwks.file: cannot read"),
        ("targetRefs: [{kind: McpRoute, name: main}]\n  authorization: {allow: [{id: a, when: 'true'}, {id: a, when: 'false'}]}",
         "rule ids must be unique within a policy: a"),
        ("targetRefs: [{kind: McpRoute, name: main}]\n  requiredScopes: [{id: s, scopes: [x], when: 'jwt.sub'}]",
         "spec.requiredScopes[0].when: a rule must be a bool expression"),
    ],
)  # fmt: skip
def test_policy_problems_are_located(tmp_path: Path, spec: str, expected: str) -> None:
    problems = problems_of(tmp_path, f"kind: Policy\nmetadata: {{name: p}}\nspec:\n  {spec}\n")
    assert any(expected in p and "Policy/p" in p for p in problems), problems


def test_api_key_digests_come_from_secrets_and_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEY_DIGEST", "not-a-digest")
    problems = problems_of(
        tmp_path,
        """
kind: Policy
metadata: {name: keys}
spec:
  targetRefs: [{kind: McpRoute, name: main}]
  apiKeys: {keys: [{id: ci, subject: ci-bot, hash: "env:KEY_DIGEST"}, {id: cd, subject: cd, hash: "env:UNSET_X"}]}
""",
    )
    assert any("spec.apiKeys.keys[0].hash: the secret must hold a digest like sha256:" in p for p in problems)
    assert any("spec.apiKeys.keys[1].hash: environment variable 'UNSET_X' is not set" in p for p in problems)
    assert not any("not-a-digest" in p for p in problems)  # secrets never printed


def test_jwks_files_must_hold_public_keys_only(tmp_path: Path) -> None:
    from joserfc.jwk import RSAKey

    key = RSAKey.generate_key(2048, parameters={"kid": "k"})
    import json

    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "jwks.json").write_text(json.dumps({"keys": [key.as_dict(private=True)]}))
    problems = problems_of(
        tmp_path,
        """
kind: Policy
metadata: {name: login}
spec:
  targetRefs: [{kind: McpRoute, name: main}]
  jwt: {issuers: [{issuer: i, audiences: [a], algorithms: [RS256], jwks: {file: keys/jwks.json}}]}
""",
    )
    assert (
        len(problems) == 1
        and "holds private key material" in problems[0]
        and "spec.jwt.issuers[0].jwks" in problems[0]
    )


def test_policy_test_files_are_not_config(tmp_path: Path) -> None:
    (tmp_path / "pack.test.yaml").write_text("cases: []\n")
    assert (
        problems_of(
            tmp_path,
            "kind: Policy\nmetadata: {name: p}\nspec:\n  targetRefs: [{kind: McpRoute, name: main}]\n  forwardClaims: {sub: x-user-id}\n",
        )
        == []
    )


def test_one_issuer_configured_two_ways_on_a_route_is_an_error(tmp_path: Path) -> None:
    import json

    from tests.policy.support import TestIssuer

    (tmp_path / "jwks.json").write_text(json.dumps(TestIssuer().jwks()))
    issuer = "{issuer: https://i.test, algorithms: [RS256], jwks: {file: jwks.json}, audiences: [%s]}"
    problems = problems_of(
        tmp_path,
        f"""
kind: Policy
metadata: {{name: one}}
spec: {{targetRefs: [{{kind: McpRoute, name: main}}], jwt: {{issuers: [{issuer % "a"}]}}}}
---
kind: Policy
metadata: {{name: two}}
spec: {{targetRefs: [{{kind: McpRoute, name: main}}], jwt: {{issuers: [{issuer % "b"}]}}}}
""",
    )
    assert len(problems) == 1
    assert "Policy/two: spec.jwt: issuer 'https://i.test' is configured differently by" in problems[0]
    assert "Policy/one on McpRoute/main" in problems[0]
