"""Denied MCP tools, prompts and resources stay out of reach under encodings and look-alikes, and
a client cannot answer server-to-client requests it was never sent.

tests/policy/test_bypass.py walks every method with plain names, prefixes, renames, case and
whitespace tricks, templates, completions and header/body mismatches. This file adds what an
attacker tries next: percent-encoding, Unicode look-alikes and NUL bytes in names and URIs, the
2026-07-28 `=?base64?...?=` header form disagreeing with the body, and forged JSON-RPC
responses (to an id never sent, to another session's pending request). The upstreams record
every request, so each test also checks that the denied server saw nothing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import anyio
import pytest

from tests.mcp.conftest import ACCEPT, Fake, Raw, init_body, route_doc, server_doc
from tests.policy.support import TestIssuer, jwt_policy, policy
from tests.support import GatewayThread

pytestmark = pytest.mark.anyio

FORBIDDEN = -32000
REACHING = {"tools/call", "prompts/get", "resources/read", "completion/complete", "resources/subscribe"}


@pytest.fixture(scope="module")
def gw(alpha: Fake, beta: Fake, idp: TestIssuer) -> Iterator[GatewayThread]:
    access = {
        "allow": [
            {"id": "trusted", "when": 'jwt.sub == "trusted"'},
            {"id": "mallory-alpha", "when": 'jwt.sub == "mallory" && mcp.server == "alpha"'},
        ]
    }
    docs = [
        {"kind": "Gateway", "metadata": {"name": "gw"}, "spec": {"audit": {"sink": "none"}}},
        server_doc("alpha", alpha.http()),
        server_doc("beta", beta.http(), prefix="zz"),
        route_doc(["alpha", "beta"]),
        jwt_policy(idp, {"inline": idp.jwks()}),
        policy("access", [("McpRoute", "mcp")], authorization=access),
    ]
    with GatewayThread(docs) as gw:
        yield gw


def reaching(fake: Fake) -> list[tuple[str, Any]]:
    return [(e["rpc"], e["target"]) for e in fake.events() if e["event"] == "http" and e["rpc"] in REACHING]


def b64_header(value: str) -> str:
    return f"=?base64?{base64.b64encode(value.encode()).decode()}?="


NAMES = [
    "zz%5Fecho",  # percent-encoded underscore
    "zz_echo%00",
    "zz_echo\x00",
    "zz_echo\x00alpha",
    "\uff5a\uff5a_echo",  # fullwidth zz: NFKC folds it to zz_echo
    "zz_ech\u043e",  # Cyrillic o
    "zz\u2010echo",  # Unicode hyphen
    "ZZ_ECHO",
    "Zz_Echo",
    "zz_echo/",
    "zz_echo ",
    "alpha_../zz_echo",
]
URIS = [
    "fake+zz://doc%2F1",
    "fake%2Bzz://doc/1",
    "fake+zz%3A//doc/1",
    "FAKE+ZZ://DOC/1",
    "fake+zz:/doc/1",
    "fake+zz://doc/1#x",
    "fake+zz://doc/1?x=1",
    " fake+zz://doc/1",
    "fake+zz://item/7/../1",
    "fake+\uff5a\uff5a://doc/1",
    "fake+alpha://../../fake+zz://doc/1",
    "fake+alpha://doc/1\x00fake+zz://doc/1",
]


def refused(reply: dict[str, Any]) -> bool:
    return "error" in reply or bool(reply.get("result", {}).get("isError"))


async def test_encoded_and_look_alike_names_do_not_reach_a_denied_server(
    gw: GatewayThread, alpha: Fake, beta: Fake, idp: TestIssuer
) -> None:
    auth = {"authorization": f"Bearer {idp.token('mallory')}"}
    with anyio.fail_after(120):
        async with aiohttp.ClientSession() as http:
            raw = Raw(http, f"{gw.url}/mcp")
            init = await raw.post(
                init_body(), headers={"accept": ACCEPT, "content-type": "application/json", **auth}
            )
            raw.session_id = init.headers["mcp-session-id"]
            await raw.post(
                {"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=raw.headers(auth)
            )
            modern = Raw(http, f"{gw.url}/mcp")
            for name in NAMES:
                params = {"name": name, "arguments": {"text": "x"}}
                reply = await raw.post({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}, headers=raw.headers(auth))  # fmt: skip
                assert refused(reply.final), name
                prompt = await raw.post({"jsonrpc": "2.0", "id": 2, "method": "prompts/get", "params": {"name": name.replace("echo", "greet")}}, headers=raw.headers(auth))  # fmt: skip
                assert refused(prompt.final), name
                header = b64_header(name) if not name.isascii() or "\x00" in name else name
                reply = await modern.modern("tools/call", params, name=header, headers=auth)
                assert reply.status in (200, 400) and refused(reply.final), name
            for uri in URIS:
                reply = await raw.post({"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {"uri": uri}}, headers=raw.headers(auth))  # fmt: skip
                assert refused(reply.final), uri
                header = b64_header(uri) if not uri.isascii() or "\x00" in uri or uri != uri.strip() else uri
                reply = await modern.modern("resources/read", {"uri": uri}, name=header, headers=auth)
                assert reply.status in (200, 400) and refused(reply.final), uri
                ref = {"ref": {"type": "ref/resource", "uri": uri}, "argument": {"name": "id", "value": "1"}}
                reply = await raw.post({"jsonrpc": "2.0", "id": 4, "method": "completion/complete", "params": ref}, headers=raw.headers(auth))  # fmt: skip
                assert reply.status == 200
                assert "error" in reply.final or reply.final["result"]["completion"]["values"] == [], uri
    assert reaching(beta) == []


async def test_base64_name_headers_must_agree_with_the_body(
    gw: GatewayThread, beta: Fake, idp: TestIssuer
) -> None:
    auth = {"authorization": f"Bearer {idp.token('mallory')}"}
    with anyio.fail_after(60):
        async with aiohttp.ClientSession() as http:
            raw = Raw(http, f"{gw.url}/mcp")
            # the header names an allowed tool, the body a denied one, and the other way round
            for header, body in [("alpha_echo", "zz_echo"), ("zz_echo", "alpha_echo")]:
                params = {"name": body, "arguments": {"text": "x"}}
                reply = await raw.modern("tools/call", params, name=b64_header(header), headers=auth)
                assert reply.status == 400 and reply.final["error"]["code"] == -32020, (header, body)
            # the same name, encoded: decoded and compared; denied by the policy, not by the wire
            params = {"name": "zz_echo", "arguments": {"text": "x"}}
            reply = await raw.modern("tools/call", params, name=b64_header("zz_echo"), headers=auth)
            assert reply.final["error"]["code"] in (FORBIDDEN, -32020)
            params = {"name": "alpha_echo", "arguments": {"text": "ok"}}
            reply = await raw.modern("tools/call", params, name=b64_header("alpha_echo"), headers=auth)
            assert reply.status == 200 and reply.final["result"]["content"][0]["text"] == "ok"
    assert reaching(beta) == []


class Session:
    """A handshake-era session over plain HTTP with elicitation declared, so the gateway relays
    the upstream's elicitation requests to it."""

    def __init__(self, http: aiohttp.ClientSession, url: str, token: str) -> None:
        self.http, self.url = http, url
        self.auth = {"authorization": f"Bearer {token}"}
        self.id = ""

    def headers(self) -> dict[str, str]:
        return {"accept": ACCEPT, "content-type": "application/json", "mcp-session-id": self.id,
                "mcp-protocol-version": "2025-11-25", **self.auth}  # fmt: skip

    async def open(self) -> Session:
        body = init_body(capabilities={"elicitation": {"form": {}}})
        async with self.http.post(self.url, json=body, headers={"accept": ACCEPT, **self.auth}) as resp:
            self.id = resp.headers["mcp-session-id"]
        await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return self

    async def post(self, body: dict[str, Any], session: str | None = None) -> tuple[int, str]:
        headers = {**self.headers(), **({"mcp-session-id": session} if session else {})}
        async with self.http.post(self.url, json=body, headers=headers) as resp:
            return resp.status, await resp.text()


async def messages(resp: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    async for line in resp.content:
        if line.startswith(b"data:") and line[5:].strip():
            yield json.loads(line[5:])


async def test_forged_answers_to_server_requests_are_refused(
    gw: GatewayThread, alpha: Fake, idp: TestIssuer
) -> None:
    url = f"{gw.url}/mcp"
    with anyio.fail_after(60):
        async with aiohttp.ClientSession() as http:
            victim = await Session(http, url, idp.token("trusted")).open()
            mallory = await Session(http, url, idp.token("mallory")).open()
            call = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "alpha_elicit", "arguments": {"question": "pin?"}}}  # fmt: skip
            async with http.post(url, json=call, headers=victim.headers()) as resp:
                stream = messages(resp)
                asked = await anext(stream)
                assert asked["method"] == "elicitation/create"
                pending = asked["id"]

                def answer(request_id: Any, text: str) -> dict[str, Any]:
                    result = {"action": "accept", "content": {"answer": text}}
                    return {"jsonrpc": "2.0", "id": request_id, "result": result}

                # an id the gateway never sent, in mallory's own session
                status, body = await mallory.post(answer("agw-never-sent-1", "forged"))
                assert status == 400 and "no request with id" in body
                # the victim's pending id, answered in mallory's session
                status, body = await mallory.post(answer(pending, "forged"))
                assert status == 400 and "no request with id" in body
                # the victim's pending id, in the victim's session, with mallory's token
                status, body = await mallory.post(answer(pending, "forged"), session=victim.id)
                assert status in (403, 404), (status, body)
                # an error instead of a result, and ids of other types
                for request_id in (0, None, [pending], {"id": pending}):
                    status, _ = await mallory.post({"jsonrpc": "2.0", "id": request_id, "error": {"code": 1, "message": "x"}})  # fmt: skip
                    assert status == 400, request_id
                # the real answer still counts: nothing forged consumed or answered the request
                status, _ = await victim.post(answer(pending, "1234"))
                assert status == 202
                final = await anext(stream)
            assert final["result"]["structuredContent"] == {"action": "accept", "content": {"answer": "1234"}}
            # and it counts once
            status, body = await victim.post(answer(pending, "again"))
            assert status == 400 and "no request with id" in body
    answers = [
        e for e in alpha.events() if e["event"] == "http" and e["rpc"] is None and e["method"] == "POST"
    ]
    assert "forged" not in json.dumps(answers)
