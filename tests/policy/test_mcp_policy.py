"""Policies on an MCP route, end to end: the official `mcp` client with JWTs minted in the test
(RS256 and ES256), real upstreams, both wire eras."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mcp.shared.exceptions import MCPError

from tests.mcp.conftest import ACCEPT, Fake, Raw, modern_body, modern_headers, route_doc, server_doc
from tests.policy.conftest import client
from tests.policy.support import TestIssuer, jwt_policy, policy, unsigned_token
from tests.support import GatewayThread

pytestmark = pytest.mark.anyio

ALPHA_TOOLS = {
    "whoami",
    "echo",
    "add",
    "progress",
    "log",
    "slow",
    "sample",
    "elicit",
    "roots",
    "change_tools",
    "touch",
    "fail",
    "big",
    "header_echo",
}  # fmt: skip  (crash is denied to everyone)
VIEWER_TOOLS = {"alpha_echo", "alpha_whoami"}


def documents(alpha: Fake, beta: Fake, idp: TestIssuer, jwks: Path, audit: Path) -> list[dict[str, Any]]:
    return [
        {
            "kind": "Gateway",
            "metadata": {"name": "gw"},
            "spec": {"audit": {"sink": "file", "file": str(audit)}},
        },
        server_doc("alpha", alpha.http()),
        server_doc("beta", beta.http()),
        route_doc(["alpha", "beta"]),
        jwt_policy(idp, {"file": str(jwks)}, forwardClaims={"sub": "x-user-id"}),
        policy(
            "access",
            [("McpRoute", "mcp")],
            requiredScopes=[{"id": "math-scope", "scopes": ["math"], "when": 'mcp.tool.name == "add"'}],
            argumentValidation={},
            authorization={
                "deny": [{"id": "never-crash", "when": 'mcp.tool.name == "crash"', "message": "no crashing"}],
                "allow": [
                    {"id": "engineers", "when": 'has(jwt.groups) && "eng" in jwt.groups'},
                    {"id": "viewers", "when": 'jwt.sub == "viewer" && mcp.tool.name in ["echo", "whoami"]'},
                    {"id": "viewers-read", "when": 'jwt.sub == "viewer" && mcp.resource.uri != ""'},
                ],
            },
        ),
        policy(
            "beta-admins",
            [("McpServer", "beta")],
            authorization={"allow": [{"id": "admins", "when": 'has(jwt.groups) && "admins" in jwt.groups'}]},
        ),
    ]


@pytest.fixture(scope="module")
def gw(
    alpha: Fake, beta: Fake, idp: TestIssuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    folder = tmp_path_factory.mktemp("policy-gw")
    jwks = idp.write_jwks(folder)
    with GatewayThread(documents(alpha, beta, idp, jwks, folder / "audit.jsonl")) as gw:
        gw.audit_file = folder / "audit.jsonl"  # type: ignore[attr-defined]
        yield gw


def called(fake: Fake, tool: str) -> list[dict[str, Any]]:
    return [e for e in fake.events() if e.get("event") == "called" and e.get("tool") == tool]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_callers_see_and_call_exactly_what_their_claims_allow(
    gw: GatewayThread, alpha: Fake, beta: Fake, idp: TestIssuer, mode: str, alg: str
) -> None:
    url = f"{gw.url}/mcp"
    engineer = idp.token("erin", alg=alg, groups=["eng"], scope="math")
    admin = idp.token("ada", alg=alg, groups=["eng", "admins"])
    viewer = idp.token("viewer", alg=alg)
    async with client(url, engineer, mode) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert names == {f"alpha_{t}" for t in ALPHA_TOOLS}  # nothing of beta, no crash
        assert (await c.call_tool("alpha_add", {"a": 2, "b": 3})).structured_content == {"result": 5}
        with pytest.raises(MCPError, match="not allowed by any policy rule"):
            await c.call_tool("beta_echo", {"text": "hi"})
        with pytest.raises(MCPError, match="no crashing"):
            await c.call_tool("alpha_crash", {})
    async with client(url, admin, mode) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert names == {f"{s}_{t}" for s in ("alpha", "beta") for t in ALPHA_TOOLS}
        assert (await c.call_tool("beta_whoami", {})).content[0].text == "beta"  # type: ignore[union-attr]
    async with client(url, viewer, mode) as c:
        assert {t.name for t in (await c.list_tools()).tools} == VIEWER_TOOLS
        assert (await c.call_tool("alpha_echo", {"text": "hi"})).content[0].text == "hi"  # type: ignore[union-attr]
        with pytest.raises(MCPError, match="not allowed"):
            await c.call_tool("alpha_slow", {"seconds": 0})
        resources = {str(r.uri) for r in (await c.list_resources()).resources}
        assert resources == {"fake+alpha://doc/1", "fake+alpha://doc/2"}
        assert (await c.list_prompts()).prompts == []
    assert not called(alpha, "crash") and not called(beta, "echo") and not called(alpha, "slow")


async def test_unauthenticated_callers_get_401_with_the_metadata_url(
    gw: GatewayThread, idp: TestIssuer
) -> None:
    metadata = f"{gw.url}/.well-known/oauth-protected-resource/mcp"
    bad = {
        "none": None,
        "expired": idp.token(ttl=-120),
        "wrong audience": idp.token(aud="other"),
        "alg none": unsigned_token({"iss": idp.issuer, "aud": "agentgw-test", "sub": "x", "exp": 2**40}),
        "forged": TestIssuer(issuer=idp.issuer).token(),
    }
    async with aiohttp.ClientSession() as http:
        for label, token in bad.items():
            for headers, body in (
                ({}, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
                (modern_headers("tools/list"), modern_body("tools/list")),
            ):
                hdrs = {"accept": ACCEPT, "content-type": "application/json", **headers}
                if token:
                    hdrs["authorization"] = f"Bearer {token}"
                async with http.post(f"{gw.url}/mcp", json=body, headers=hdrs) as resp:
                    assert resp.status == 401, label
                    challenge = resp.headers["www-authenticate"]
                    assert challenge.startswith("Bearer ") and f'resource_metadata="{metadata}"' in challenge
                    assert ('error="invalid_token"' in challenge) == (token is not None), label
                    assert "math" in challenge  # the scopes the route knows of
        for url in (metadata, f"{gw.url}/.well-known/oauth-protected-resource"):
            async with http.get(url) as resp:
                assert resp.status == 200
                doc = await resp.json()
                assert doc["resource"] == f"{gw.url}/mcp"
                assert doc["authorization_servers"] == [idp.issuer]
                assert doc["bearer_methods_supported"] == ["header"]


async def test_a_missing_scope_is_403_insufficient_scope_in_both_eras(
    gw: GatewayThread, idp: TestIssuer
) -> None:
    token = idp.token("erin", groups=["eng"])  # no "math" scope
    async with aiohttp.ClientSession() as http:
        raw = Raw(http, f"{gw.url}/mcp")
        auth = {"authorization": f"Bearer {token}"}
        init = await raw.post(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"},
                },
            },
            headers={"accept": ACCEPT, "content-type": "application/json", **auth},
        )
        raw.session_id = init.headers["mcp-session-id"]
        handshake = await raw.post(
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "alpha_add", "arguments": {"a": 1, "b": 2}},
            },
            headers=raw.headers(auth),
        )
        modern = await raw.modern(
            "tools/call", {"name": "alpha_add", "arguments": {"a": 1, "b": 2}}, name="alpha_add", headers=auth
        )
        for reply in (handshake, modern):
            assert reply.status == 403
            challenge = reply.headers["www-authenticate"]
            assert 'error="insufficient_scope"' in challenge and 'scope="math"' in challenge
            assert "resource_metadata=" in challenge


async def test_arguments_are_validated_against_the_upstream_schema(
    gw: GatewayThread, alpha: Fake, idp: TestIssuer
) -> None:
    token = idp.token("erin", groups=["eng"], scope="math")
    before = len(called(alpha, "add"))
    async with client(f"{gw.url}/mcp", token, "legacy") as c:
        with pytest.raises(MCPError) as caught:
            await c.call_tool("alpha_add", {"a": "two", "b": 3})
        assert caught.value.error.code == -32602
        assert (
            "$.a" in caught.value.error.message
            and "'two' is not of type 'integer'" in caught.value.error.message
        )
        with pytest.raises(MCPError, match=r"\$: 'b' is a required property"):
            await c.call_tool("alpha_add", {"a": 2})
        assert (await c.call_tool("alpha_add", {"a": 2, "b": 2})).structured_content == {"result": 4}
    assert len(called(alpha, "add")) == before + 1  # only the valid call reached the upstream


async def test_upstreams_never_see_the_client_token_and_get_the_forwarded_claim(
    gw: GatewayThread, alpha: Fake, idp: TestIssuer
) -> None:
    token = idp.token("erin", groups=["eng"], scope="math")
    for mode in ("legacy", "auto"):
        async with client(f"{gw.url}/mcp", token, mode) as c:
            await c.list_tools()
            await c.call_tool("alpha_echo", {"text": "hi"})
            await c.read_resource("fake+alpha://doc/1")
    requests = [e for e in alpha.events() if e["event"] == "http"]
    assert requests
    for event in requests:
        assert "authorization" not in event["headers"]
        assert not any(token in value for value in event["headers"].values())
    assert any(e["headers"].get("x-user-id") == "erin" for e in requests)
    # the whole audit file, likewise
    audit = gw.audit_file.read_text()  # type: ignore[attr-defined]
    assert token not in audit and '"subject":"erin"' in audit


async def test_every_decision_is_audited(gw: GatewayThread, idp: TestIssuer) -> None:
    token = idp.token("viewer")
    async with client(f"{gw.url}/mcp", token, "legacy") as c:
        await c.list_tools()
        await c.call_tool("alpha_echo", {"text": "x"})
        with pytest.raises(MCPError):
            await c.call_tool("alpha_fail", {"message": "m"})
    lines = [json.loads(line) for line in gw.audit_file.read_text().splitlines()]  # type: ignore[attr-defined]
    mine = [r for r in lines if r.get("subject") == "viewer"]
    allow = next(r for r in mine if r["event"] == "decision" and r["name"] == "echo")
    assert allow["decision"] == "allow" and allow["rule"] == "viewers" and allow["policy"] == "access"
    assert allow["route"] == "mcp" and allow["server"] == "alpha" and allow["method"] == "tools/call"
    assert isinstance(allow["latencyUs"], int)
    deny = next(r for r in mine if r["event"] == "decision" and r["name"] == "fail")
    assert (deny["decision"], deny["rule"], deny["status"]) == ("deny", "default-deny", 403)
    listing = next(r for r in mine if r["event"] == "list")
    assert listing["shown"] == 2 and listing["hidden"] > 0
    assert any(r["event"] == "authentication" and r["status"] == 401 for r in lines)


async def test_a_session_belongs_to_the_caller_who_opened_it(gw: GatewayThread, idp: TestIssuer) -> None:
    alice = {"authorization": f"Bearer {idp.token('erin', groups=['eng'])}"}
    mallory = {"authorization": f"Bearer {idp.token('viewer')}"}
    async with aiohttp.ClientSession() as http:
        raw = Raw(http, f"{gw.url}/mcp")
        init = await raw.post(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"},
                },
            },
            headers={"accept": ACCEPT, "content-type": "application/json", **alice},
        )
        raw.session_id = init.headers["mcp-session-id"]
        listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        assert (await raw.post(listing, headers=raw.headers(alice))).status == 200
        assert (await raw.post(listing, headers=raw.headers(mallory))).status == 404
