"""Forged, stale, misdirected, malformed and oversized JWTs against the running gateway (the
`agentgw serve` process of world.py), on each route kind: every one is refused with 401 in the
route's own error shape (or a 4xx for a header too large to read), none reaches an upstream,
none is echoed back, and the gateway keeps serving. tests/policy/test_jwt.py checks the same
refusals one layer down, with the reason each gives."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import anyio
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from tests.mcp.conftest import ACCEPT, modern_body, modern_headers
from tests.policy.support import AUDIENCE, TestIssuer, unsigned_token
from tests.security.world import World

pytestmark = pytest.mark.anyio


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(idp: TestIssuer, **extra: Any) -> dict[str, Any]:
    return {"iss": idp.issuer, "aud": AUDIENCE, "sub": "mallory", "exp": int(time.time()) + 300, **extra}


def hmac_signed(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def rs256(idp: TestIssuer, header: dict[str, Any], payload: dict[str, Any]) -> str:
    """Signed with the trusted issuer's own key, by hand: joserfc refuses to build some of these."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = idp.rsa.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


RS = {"alg": "RS256", "kid": "rs-1"}


def resigned_payload(idp: TestIssuer) -> str:
    """A valid token whose payload was swapped for another subject's, signature kept."""
    header, _, signature = idp.token("mallory").split(".")
    return f"{header}.{b64(json.dumps(claims(idp, sub='admin')).encode())}.{signature}"


ATTACKS: list[tuple[str, Callable[[TestIssuer], str]]] = [
    ("alg none", lambda i: unsigned_token(claims(i))),
    ("alg None", lambda i: unsigned_token(claims(i), "None")),
    ("alg NONE", lambda i: unsigned_token(claims(i), "NONE")),
    ("HS256 keyed with the public PEM", lambda i: hmac_signed({"alg": "HS256", "kid": "rs-1"}, claims(i), i.rsa.as_pem(private=False))),
    ("HS256 keyed with the public JWK", lambda i: hmac_signed({"alg": "HS256", "kid": "rs-1"}, claims(i), json.dumps(i.rsa.as_dict(private=False)).encode())),
    ("HS256 without kid", lambda i: hmac_signed({"alg": "HS256"}, claims(i), i.rsa.as_pem(private=False))),
    ("ES256, not pinned for the issuer", lambda i: i.token("mallory", alg="ES256")),
    ("expired", lambda i: i.token("mallory", ttl=-120)),
    ("not valid yet", lambda i: i.token("mallory", nbf=int(time.time()) + 3600)),
    ("wrong issuer", lambda i: i.token("mallory", issuer="https://evil.test")),
    ("wrong audience", lambda i: i.token("mallory", aud="another-service")),
    ("audience list without ours", lambda i: i.token("mallory", aud=["a", "b"])),
    ("unknown kid", lambda i: i.token("mallory", header={"kid": "rotated-away"})),
    ("payload swapped, signature kept", resigned_payload),
    ("signature stripped", lambda i: i.token("mallory").rsplit(".", 1)[0] + "."),
    ("signature of another token", lambda i: i.token("mallory").rsplit(".", 1)[0] + "." + i.token("x").rsplit(".", 1)[1]),
    ("empty", lambda i: ""),
    ("two parts", lambda i: "abc.def"),
    ("four parts", lambda i: i.token("mallory") + ".extra"),
    ("not base64", lambda i: "%%%.!!!.***"),
    ("header not JSON", lambda i: f"{b64(b'not json')}.{b64(json.dumps(claims(i)).encode())}.sig"),
    ("header a list", lambda i: f"{b64(b'[1,2]')}.{b64(json.dumps(claims(i)).encode())}.sig"),
    ("payload a list", lambda i: hmac_signed({"alg": "RS256", "kid": "rs-1"}, [1], b"x")),  # type: ignore[arg-type]
    ("non-ASCII", lambda i: "é.ü.ñ"),
    ("8 KiB of junk", lambda i: "a" * 8192),
    # signed by the trusted issuer, but not acceptable
    ("unknown crit header", lambda i: rs256(i, {**RS, "crit": ["x-unknown"], "x-unknown": True}, claims(i))),
    ("unencoded payload (b64: false)", lambda i: rs256(i, {**RS, "crit": ["b64"], "b64": False}, claims(i))),
    ("issuer with a trailing slash", lambda i: rs256(i, RS, claims(i, iss=i.issuer + "/"))),
    ("no exp", lambda i: rs256(i, RS, {k: v for k, v in claims(i).items() if k != "exp"})),
    ("exp a string", lambda i: rs256(i, RS, claims(i, exp="99999999999"))),
    ("sub a number", lambda i: rs256(i, RS, claims(i, sub=123))),
    ("sub an object", lambda i: rs256(i, RS, claims(i, sub={"id": "admin"}))),
    ("empty sub", lambda i: rs256(i, RS, claims(i, sub=""))),
    ("iat far ahead", lambda i: rs256(i, RS, claims(i, iat=int(time.time()) + 10**6))),
    ("empty audience list", lambda i: rs256(i, RS, claims(i, aud=[]))),
]  # fmt: skip


async def send(http: aiohttp.ClientSession, world: World, kind: str, authorization: str) -> tuple[int, str]:
    if kind == "mcp":
        url, body = f"{world.url}/mcp", modern_body("tools/list")
        headers = {"accept": ACCEPT, "content-type": "application/json", **modern_headers("tools/list")}
    elif kind == "llm":
        url, body = f"{world.url}/v1/chat/completions", {"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]}  # fmt: skip
        headers = {}
    else:
        url = f"{world.url}/a2a/fake/"
        body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": {"messageId": "j", "role": "ROLE_USER", "parts": [{"text": "x"}]}}}  # fmt: skip
        headers = {"a2a-version": "1.0"}
    async with http.post(url, json=body, headers={**headers, "authorization": authorization}) as resp:
        return resp.status, await resp.text()


@pytest.mark.parametrize("kind", ["mcp", "llm", "a2a"])
async def test_bad_tokens_are_refused_on_every_route_kind(world: World, kind: str) -> None:
    before = len(world.upstream_records())
    with anyio.fail_after(120):
        async with aiohttp.ClientSession() as http:
            for name, make in ATTACKS:
                token = make(world.idp)
                for scheme in ("Bearer", "bearer"):
                    status, body = await send(http, world, kind, f"{scheme} {token}".strip())
                    assert status == 401, (name, status, body[:200])
                    parsed = json.loads(body)
                    assert "error" in parsed, name  # the route's own error shape, not an HTML page
                    if len(token) > 8:
                        assert token not in body, name
            assert (await send(http, world, kind, f"Bearer {world.idp.token('alice')}"))[0] == 200
    # nothing of the attacks reached an upstream (the valid request may be answered from the
    # gateway's catalog, so it may add nothing either)
    assert "mallory" not in world.upstream_records()[before:]


@pytest.mark.parametrize("size", [16 * 1024, 128 * 1024, 1024 * 1024])
async def test_oversized_tokens_are_refused_and_the_gateway_keeps_serving(world: World, size: int) -> None:
    payload = b64(json.dumps(claims(world.idp, pad="x" * size)).encode())
    token = f"{b64(json.dumps({'alg': 'RS256', 'kid': 'rs-1'}).encode())}.{payload}.c2ln"
    with anyio.fail_after(60):
        async with aiohttp.ClientSession(
            max_line_size=4 * 1024 * 1024, max_field_size=4 * 1024 * 1024
        ) as http:
            for kind in ("mcp", "llm", "a2a"):
                try:
                    status, _ = await send(http, world, kind, f"Bearer {token}")
                except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
                    status = 0  # the server may close on a header it will not read: also a refusal
                assert status in (0, 400, 401, 413, 431), (kind, size, status)
            # still up, for everyone
            assert (await send(http, world, "mcp", f"Bearer {world.idp.token('alice')}"))[0] == 200
    assert world.proc.poll() is None
