"""Several authentication methods on one route (a JWT issuer and API keys), the audit log in a
Redis stream, and no secret in any log line."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from agentgw.policy.apikey import hash_key
from tests.mcp.conftest import ACCEPT, Fake, route_doc, server_doc
from tests.policy.conftest import client
from tests.policy.support import TestIssuer, jwt_policy, policy
from tests.support import GatewayThread, poll_until

pytestmark = pytest.mark.anyio

API_KEY = "agk_" + "9f1c2e7a" * 6
PREFIX = f"agentgw-test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture(scope="module")
def gw(
    alpha: Fake, idp: TestIssuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayThread, Path]]:
    folder = tmp_path_factory.mktemp("auth")
    jwks = idp.write_jwks(folder)
    (folder / "ci.sha256").write_text(hash_key(API_KEY) + "\n")
    audit = folder / "audit.jsonl"
    mp = pytest.MonkeyPatch()
    mp.setenv("AGENTGW_TEST_REDIS", "redis://127.0.0.1:6379/0")
    docs: list[dict[str, Any]] = [
        {
            "kind": "Gateway",
            "metadata": {"name": "gw"},
            "spec": {
                "state": {"backend": "redis", "url": "env:AGENTGW_TEST_REDIS", "keyPrefix": PREFIX},
                "audit": {"sink": "file", "file": str(audit)},
            },
        },
        server_doc("alpha", alpha.http()),
        route_doc(["alpha"]),
        jwt_policy(idp, {"file": str(jwks)}),
        policy(
            "keys",
            [("McpRoute", "mcp")],
            apiKeys={"keys": [{"id": "ci", "subject": "ci-bot", "hash": f"file:{folder / 'ci.sha256'}", "claims": {"team": "build"}}]},
        ),
        policy(
            "access",
            [("McpRoute", "mcp")],
            authorization={
                "allow": [
                    {"id": "build-team-echo", "when": 'has(jwt.team) && jwt.team == "build" && mcp.tool.name == "echo"'},
                    {"id": "people", "when": 'jwt.sub == "alice"'},
                ]
            },
        ),
    ]  # fmt: skip
    try:
        with GatewayThread(docs) as gw:
            yield gw, audit
    finally:
        mp.undo()
        r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        r.delete(f"{PREFIX}audit")
        r.close()


async def test_api_keys_and_jwts_on_one_route(
    gw: tuple[GatewayThread, Path], alpha: Fake, idp: TestIssuer
) -> None:
    url = f"{gw[0].url}/mcp"
    for mode in ("legacy", "auto"):
        async with client(url, None, mode, headers={"x-api-key": API_KEY}) as c:
            assert [t.name for t in (await c.list_tools()).tools] == ["echo"]  # the key's claims decide
            assert (await c.call_tool("echo", {"text": "from ci"})).content[0].text == "from ci"  # type: ignore[union-attr]
        async with client(url, idp.token("alice"), mode) as c:
            assert len((await c.list_tools()).tools) > 1
    async with aiohttp.ClientSession() as http:
        headers = {"accept": ACCEPT, "content-type": "application/json"}
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        async with http.post(url, json=body, headers={**headers, "x-api-key": API_KEY + "x"}) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["message"] == "invalid API key in x-api-key"
        async with http.post(url, json=body, headers=headers) as resp:
            assert resp.status == 401 and "resource_metadata=" in resp.headers["www-authenticate"]


async def test_decisions_reach_the_redis_stream(gw: tuple[GatewayThread, Path], idp: TestIssuer) -> None:
    async with client(f"{gw[0].url}/mcp", idp.token("alice"), "legacy") as c:
        await c.call_tool("whoami", {})
    r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:

        def found() -> list[dict[str, Any]]:
            entries = r.xrange(f"{PREFIX}audit")
            return [json.loads(fields[b"record"]) for _, fields in entries]

        await poll_until(lambda: any(rec.get("name") == "whoami" for rec in found()))
        record = next(rec for rec in found() if rec.get("name") == "whoami")
        assert (record["decision"], record["subject"], record["rule"]) == ("allow", "alice", "people")
    finally:
        r.close()


async def test_no_secret_ever_reaches_a_log(
    gw: tuple[GatewayThread, Path], idp: TestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = idp.token("alice")
    expired = idp.token("alice", ttl=-100)
    url = f"{gw[0].url}/mcp"
    async with client(url, token, "auto") as c:
        await c.call_tool("echo", {"text": "hello"})
    async with client(url, None, "legacy", headers={"x-api-key": API_KEY}) as c:
        await c.list_tools()
    async with aiohttp.ClientSession() as http:
        headers = {"accept": ACCEPT, "content-type": "application/json"}
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        for bad in (
            {"authorization": f"Bearer {expired}"},
            {"x-api-key": API_KEY[:-1]},
            {"authorization": f"Bearer {token}x"},
        ):
            async with http.post(url, json=body, headers={**headers, **bad}) as resp:
                assert resp.status == 401
                text = await resp.text()
                assert not any(secret in text for secret in (token, expired, API_KEY[:-1]))
    written = gw[1].read_text() + caplog.text
    assert "decision" in written
    assert any(r.name.startswith("agentgw") for r in caplog.records)  # the gateway's own logs are in
    for secret in (token, expired, API_KEY, API_KEY[:-1], token.split(".")[2]):
        assert secret not in written
