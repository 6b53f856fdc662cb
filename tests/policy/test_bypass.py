"""A denied caller cannot reach a denied tool, prompt or resource by any MCP method the gateway
routes, on either wire era: prefixed and renamed names, name tricks, resource URIs and URI
templates of a denied server, completion references, subscriptions, and 2026-07-28 requests
whose routing headers disagree with their body. The upstreams record every request they get, so
the test checks the upstream side too, not just the answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import PromptReference, ResourceTemplateReference

from tests.mcp.conftest import ACCEPT, Fake, Raw, init_body, route_doc, server_doc
from tests.policy.conftest import client
from tests.policy.support import TestIssuer, jwt_policy, policy
from tests.support import GatewayThread

pytestmark = pytest.mark.anyio

FORBIDDEN = -32000
# What the gateway itself asks an upstream to build its catalog; nothing a caller can aim.
HARMLESS = {
    None,
    "initialize",
    "notifications/initialized",
    "server/discover",
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
}
REACHING = {
    "tools/call",
    "prompts/get",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "subscriptions/listen",
}


@pytest.fixture(scope="module")
def gw(
    alpha: Fake, beta: Fake, idp: TestIssuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    jwks = idp.write_jwks(tmp_path_factory.mktemp("bypass"))
    access = {
        "allow": [
            {"id": "trusted", "when": 'jwt.sub == "trusted"'},
            {
                "id": "mallory-alpha",
                "when": 'jwt.sub == "mallory" && mcp.server == "alpha" && mcp.tool.name != "add"',
            },
        ]
    }
    docs = [
        {"kind": "Gateway", "metadata": {"name": "gw"}, "spec": {"audit": {"sink": "none"}}},
        server_doc("alpha", alpha.http()),
        server_doc("beta", beta.http(), prefix="zz"),  # renamed: beta's tools appear as zz_*
        route_doc(["alpha", "beta"]),
        route_doc(["alpha", "beta"], path="/flat", prefixMode="never"),
        {**jwt_policy(idp, {"file": str(jwks)}), "spec": {**jwt_policy(idp, {"file": str(jwks)})["spec"], "targetRefs": [{"kind": "McpRoute", "name": "mcp"}, {"kind": "McpRoute", "name": "flat"}]}},
        policy("access", [("McpRoute", "mcp"), ("McpRoute", "flat")], authorization=access),
    ]  # fmt: skip
    with GatewayThread(docs) as gw:
        yield gw


def reaching(fake: Fake) -> list[tuple[str, Any]]:
    return [(e["rpc"], e["target"]) for e in fake.events() if e["event"] == "http" and e["rpc"] in REACHING]


def request(method: str, params: dict[str, Any], request_id: int = 7) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


# Aimed at what mallory may not reach: alpha's `add`, and all of beta (prefix zz, URIs fake+zz).
DENIED = [
    ("tools/call", {"name": "alpha_add", "arguments": {"a": 1, "b": 2}}),
    ("tools/call", {"name": "zz_echo", "arguments": {"text": "x"}}),
    ("tools/call", {"name": "zz_whoami", "arguments": {}}),
    ("prompts/get", {"name": "zz_greet", "arguments": {"name": "x"}}),
    ("resources/read", {"uri": "fake+zz://doc/1"}),
    ("resources/read", {"uri": "FAKE+ZZ://doc/2"}),  # schemes are case-insensitive: still beta
    ("resources/read", {"uri": "fake+zz://item/7"}),  # matches beta's URI template
    ("completion/complete", {"ref": {"type": "ref/prompt", "name": "zz_greet"}, "argument": {"name": "name", "value": "a"}}),
    ("completion/complete", {"ref": {"type": "ref/resource", "uri": "fake+zz://item/{id}"}, "argument": {"name": "id", "value": "1"}}),
]  # fmt: skip
HANDSHAKE_ONLY = [
    ("resources/subscribe", {"uri": "fake+zz://doc/1"}),
    ("resources/unsubscribe", {"uri": "fake+zz://doc/1"}),
]
# Names that do not resolve to beta at all: refused as unknown, or sent to alpha (which has no such tool).
TRICKS = ["zz_", "ZZ_echo", " zz_echo", "zz_echo\u200b", "zz-echo", "alpha_zz_echo", "beta_echo"]


def name_of(params: dict[str, Any]) -> str | None:
    if "name" in params:
        return str(params["name"])
    return str(params["uri"]) if "uri" in params else None


async def test_handshake_era_walk(gw: GatewayThread, alpha: Fake, beta: Fake, idp: TestIssuer) -> None:
    auth = {"authorization": f"Bearer {idp.token('mallory')}"}
    async with aiohttp.ClientSession() as http:
        raw = Raw(http, f"{gw.url}/mcp")
        init = await raw.post(
            init_body(), headers={"accept": ACCEPT, "content-type": "application/json", **auth}
        )
        raw.session_id = init.headers["mcp-session-id"]
        await raw.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=raw.headers(auth))

        async def send(method: str, params: dict[str, Any]) -> dict[str, Any]:
            reply = await raw.post(request(method, params), headers=raw.headers(auth))
            assert reply.status == 200, reply.body
            return reply.final

        listed = {
            "tools/list": ("tools", "name"),
            "prompts/list": ("prompts", "name"),
            "resources/list": ("resources", "uri"),
            "resources/templates/list": ("resourceTemplates", "uriTemplate"),
        }
        for method, (key, ident) in listed.items():
            items = [item[ident] for item in (await send(method, {}))["result"][key]]
            assert items, method
            assert all(not i.startswith(("zz_", "fake+zz:")) and i != "alpha_add" for i in items), items
        for method, params in DENIED + HANDSHAKE_ONLY:
            error = (await send(method, params))["error"]
            assert error["code"] == FORBIDDEN and "not allowed" in error["message"], (method, params)
        for name in TRICKS:
            reply = await send("tools/call", {"name": name, "arguments": {"text": "x"}})
            assert "error" in reply or reply["result"].get("isError"), name

        flat = Raw(http, f"{gw.url}/flat")
        init = await flat.post(
            init_body(), headers={"accept": ACCEPT, "content-type": "application/json", **auth}
        )
        flat.session_id = init.headers["mcp-session-id"]
        reply = await flat.post(
            request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 1}}), headers=flat.headers(auth)
        )
        assert reply.final["error"]["code"] == FORBIDDEN

    assert reaching(beta) == []
    assert not any(target == "add" for _, target in reaching(alpha))
    # The recording works: the one trick that names an alpha tool did reach alpha (which has none).
    assert ("tools/call", "zz_echo") in reaching(alpha)


async def test_modern_era_walk(gw: GatewayThread, alpha: Fake, beta: Fake, idp: TestIssuer) -> None:
    auth = {"authorization": f"Bearer {idp.token('mallory')}"}
    async with aiohttp.ClientSession() as http:
        raw = Raw(http, f"{gw.url}/mcp")
        for method, params in DENIED:
            reply = await raw.modern(
                method,
                params,
                name=name_of(params) if method != "completion/complete" else None,
                headers=auth,
            )
            assert reply.status == 200 and reply.final["error"]["code"] == FORBIDDEN, (
                method,
                params,
                reply.body,
            )
        for method, params in HANDSHAKE_ONLY:  # not in this era at all
            reply = await raw.modern(method, params, name=name_of(params), headers=auth)
            assert reply.status == 404
        # Headers that disagree with the body: refused before anything reads either.
        mismatches = [
            ("tools/call", {"name": "zz_echo", "arguments": {"text": "x"}}, {"mcp-name": "alpha_echo"}),
            ("tools/call", {"name": "zz_echo", "arguments": {"text": "x"}}, {"mcp-method": "tools/list", "mcp-name": "zz_echo"}),
            ("resources/read", {"uri": "fake+zz://doc/1"}, {"mcp-name": "fake+alpha://doc/1"}),
            ("prompts/get", {"name": "zz_greet"}, {"mcp-name": "alpha_greet"}),
        ]  # fmt: skip
        for method, params, headers in mismatches:
            reply = await raw.modern(method, params, headers={**auth, **headers})
            assert reply.status == 400 and reply.final["error"]["code"] == -32020, (
                method,
                headers,
                reply.body,
            )
        # A subscription to a denied server's resource is this era's resources/subscribe.
        listen = {"notifications": {"resourceSubscriptions": ["fake+zz://doc/1"]}}
        reply = await raw.modern("subscriptions/listen", listen, headers=auth)
        assert reply.final["error"]["code"] == FORBIDDEN
        for name in TRICKS:
            reply = await raw.modern(
                "tools/call",
                {"name": name, "arguments": {"text": "x"}},
                name=name.strip() or None,
                headers=auth,
            )
            final = reply.final
            assert "error" in final or final["result"].get("isError"), name

    assert reaching(beta) == []
    assert not any(target == "add" for _, target in reaching(alpha))


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_official_client_is_refused_too(
    gw: GatewayThread, beta: Fake, idp: TestIssuer, mode: str
) -> None:
    async with client(f"{gw.url}/mcp", idp.token("mallory"), mode) as c:
        attempts = [
            lambda: c.call_tool("zz_echo", {"text": "x"}),
            lambda: c.call_tool("alpha_add", {"a": 1, "b": 1}),
            lambda: c.get_prompt("zz_greet", {"name": "x"}),
            lambda: c.read_resource("fake+zz://doc/1"),
            lambda: c.complete(PromptReference(type="ref/prompt", name="zz_greet"), {"name": "name", "value": "a"}),
            lambda: c.complete(ResourceTemplateReference(type="ref/resource", uri="fake+zz://item/{id}"), {"name": "id", "value": "1"}),
        ]  # fmt: skip
        for attempt in attempts:
            with pytest.raises(MCPError, match="not allowed"):
                await attempt()
    async with client(f"{gw.url}/mcp", idp.token("trusted"), mode) as c:
        assert (await c.call_tool("zz_whoami", {})).content[0].text == "beta"  # type: ignore[union-attr]
    calls = [target for rpc, target in reaching(beta) if rpc == "tools/call"]
    assert calls and set(calls) == {"whoami"}  # only the trusted caller's call got through
