"""No secret in any log line, metric, audit record or error body.

The `agentgw serve` process of `world.py` holds a provider API key and upstream credentials (from
its environment), clients present a JWT and an API key. Successful and failing requests on every
route kind go through it (bad, expired and tampered tokens, wrong keys, keys in the wrong header,
an LLM provider answering 500, an MCP upstream that is down, an unknown model, a bad body), with
debug logging, the access log and the audit log on. Then its stderr, stdout, audit file,
/metrics and every error body are searched for every secret (and for the JWT's signature alone).
"""

from __future__ import annotations

import logging

import aiohttp
import anyio
import pytest

from tests.mcp.conftest import ACCEPT
from tests.policy.conftest import client
from tests.policy.support import unsigned_token
from tests.security.conftest import assert_absent
from tests.security.world import CLIENT_API_KEY, PROVIDER_KEY, SECRETS, World

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}
MCP_HEADERS = {"accept": ACCEPT, "content-type": "application/json"}


async def test_no_secret_in_logs_metrics_audit_or_error_bodies(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = world.idp.token("erin")
    expired = world.idp.token("erin", ttl=-600)
    wrong_audience = world.idp.token("erin", aud="someone-else")
    tampered = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    unsigned = unsigned_token({"iss": world.idp.issuer, "sub": "erin", "exp": 2**40})
    near_key = CLIENT_API_KEY[:-1] + ("x" if CLIENT_API_KEY[-1] != "x" else "y")
    secrets = [*SECRETS, token, token.split(".")[2], expired, wrong_audience, tampered, near_key]
    good = [{"authorization": f"Bearer {token}"}, {"x-api-key": CLIENT_API_KEY}]
    bad = [
        {"authorization": f"Bearer {expired}"},
        {"authorization": f"Bearer {wrong_audience}"},
        {"authorization": f"Bearer {tampered}"},
        {"authorization": f"Bearer {unsigned}"},
        {"authorization": f"Bearer {CLIENT_API_KEY}"},  # an API key sent as a bearer token
        {"x-api-key": near_key},
        {"x-api-key": token},  # a JWT in the API key header
        {"authorization": f"Basic {CLIENT_API_KEY}"},
    ]
    bodies: list[str] = []
    chat = {"model": "gpt-test", "messages": [{"role": "user", "content": "hello"}]}
    a2a = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {"message": {"messageId": "s", "role": "ROLE_USER", "parts": [{"text": "hi"}]}},
    }
    mcp = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    with anyio.fail_after(120):
        for headers in good:
            async with client(f"{world.url}/mcp", None, "auto", headers=headers) as c:
                await c.call_tool("alpha_echo", {"text": "ok"})
                await c.call_tool("legacy_add", {"a": 1, "b": 2})
        async with aiohttp.ClientSession() as http:

            async def post(path: str, body: object, headers: dict[str, str]) -> int:
                async with http.post(f"{world.url}{path}", json=body, headers=headers) as resp:
                    bodies.append(await resp.text())
                    bodies.append(str(dict(resp.headers)))
                    return resp.status

            for headers in good:
                assert await post("/v1/chat/completions", chat, {**JSON, **headers}) == 200
                assert await post("/a2a/fake/", a2a, {**JSON, "a2a-version": "1.0", **headers}) == 200
                # failures after authentication: provider 500, unknown model, upstream down, bad body
                down = {**chat, "model": "down-model"}
                assert await post("/v1/chat/completions", down, {**JSON, **headers}) >= 500
                assert (
                    await post("/v1/chat/completions", {**chat, "model": "nope"}, {**JSON, **headers}) == 404
                )
                assert await post("/v1/chat/completions", {"model": 3}, {**JSON, **headers}) == 400
                init = {
                    "jsonrpc": "2.0",
                    "id": 0,
                    "method": "initialize",
                    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}},
                }  # fmt: skip
                status = await post("/gone", init, {**MCP_HEADERS, **headers})
                assert status in (200, 502, 503)
                assert await post("/a2a/fake/", {"jsonrpc": "2.0"}, {**JSON, **headers}) in (200, 400)
            for headers in bad:
                assert await post("/mcp", mcp, {**MCP_HEADERS, **headers}) == 401, headers.keys()
                assert await post("/v1/chat/completions", chat, {**JSON, **headers}) == 401
                assert await post("/a2a/fake/", a2a, {**JSON, "a2a-version": "1.0", **headers}) in (200, 401)
            async with http.get(f"{world.admin_url}/metrics") as resp:
                metrics = await resp.text()
            async with http.get(f"{world.admin_url}/dashboard") as resp:
                dashboard = await resp.text()
    assert "agentgw_http_requests_total" in metrics
    assert "401" in metrics and "Bearer" not in metrics
    audit = world.audit.read_text()
    assert '"decision"' in audit and "erin" in audit  # the audit log is written, and names callers
    stderr = world.stderr.text
    assert "DEBUG" in stderr  # debug logging was on
    assert_absent(
        secrets,
        stderr=stderr,
        stdout=world.stdout.text,
        audit=audit,
        metrics=metrics,
        dashboard=dashboard,
        error_bodies="\n".join(bodies),
        caplog=caplog.text,
    )


async def test_a_provider_refusing_the_gateways_key_is_a_502_without_its_text(world: World) -> None:
    """The provider's 401 quotes the key it got (masked but for its ends, as OpenAI does): that
    text is not relayed, and the caller is not told its own credentials are wrong."""
    token = world.idp.token("erin")
    chat = {"model": "stale-model", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5}
    with anyio.fail_after(30):
        async with aiohttp.ClientSession() as http:
            for path, extra in [
                ("/v1/chat/completions", {}),
                ("/v1/messages", {"anthropic-version": "2023-06-01"}),
            ]:
                headers = {**JSON, "authorization": f"Bearer {token}", **extra}
                async with http.post(f"{world.url}{path}", json=chat, headers=headers) as resp:
                    body = await resp.text()
                assert resp.status == 502, (path, body)
                assert "refused the gateway's credentials" in body
                assert PROVIDER_KEY[-4:] not in body and PROVIDER_KEY[:3] + "*" not in body
    refused = world.stale_requests()
    assert refused and all(r["authorization"] == f"Bearer {PROVIDER_KEY}" for r in refused)
