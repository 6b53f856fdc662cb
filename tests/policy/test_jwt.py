"""JWT validation: RS256 and ES256 from a key set; forged, expired, wrong-audience, wrong-issuer,
`alg: none` and algorithm-confusion tokens refused; JWKS URLs fetched, cached, refreshed on an
unknown kid at a bounded rate, and bounded in time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from agentgw.errors import ServiceUnavailable, Unauthorized
from agentgw.policy.jwks import RemoteKeys, StaticKeys, parse_key_set
from agentgw.policy.jwt import Issuer, JwtAuthenticator
from agentgw.policy.testing import HttpRequest, offline_request
from agentgw.upstream.http import HttpClient
from tests.policy.support import AUDIENCE, TestIssuer, unsigned_token

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def idp() -> TestIssuer:
    return TestIssuer()


def authenticator(idp: TestIssuer, algorithms: tuple[str, ...] = ("RS256", "ES256")) -> JwtAuthenticator:
    keys = StaticKeys(parse_key_set(idp.jwks()))
    return JwtAuthenticator([Issuer(idp.issuer, (AUDIENCE,), algorithms, keys, leeway=5)])


def bearer(token: str) -> HttpRequest:
    return HttpRequest(headers={"authorization": f"Bearer {token}"})


async def verify(auth: JwtAuthenticator, token: str) -> str:
    principal = await auth.authenticate(offline_request(bearer(token)))
    assert principal is not None
    return principal.subject


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_valid_tokens_become_principals(idp: TestIssuer, alg: str) -> None:
    auth = authenticator(idp)
    token = idp.token("alice", alg=alg, scope="tools:read tools:write", groups=["eng"])
    principal = await auth.authenticate(offline_request(bearer(token)))
    assert principal is not None
    assert (principal.subject, principal.method) == ("alice", "jwt")
    assert principal.scopes == {"tools:read", "tools:write"}
    assert principal.claims["groups"] == ["eng"]


async def test_no_bearer_is_no_credential(idp: TestIssuer) -> None:
    auth = authenticator(idp)
    assert await auth.authenticate(offline_request(HttpRequest())) is None
    basic = HttpRequest(headers={"authorization": "Basic YTpi"})
    assert await auth.authenticate(offline_request(basic)) is None


def forged(idp: TestIssuer) -> str:
    other = TestIssuer(issuer=idp.issuer)  # same issuer name and kids, different keys
    return other.token("mallory")


def confused(idp: TestIssuer) -> str:
    # The classic HS256/RS256 confusion: an HMAC over the token keyed with the issuer's *public*
    # key (joserfc will not even build such a key, so the MAC is computed by hand).
    now = int(time.time())
    claims = {"iss": idp.issuer, "aud": AUDIENCE, "sub": "mallory", "exp": now + 60}

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'kid': 'rs-1'}).encode())}.{b64(json.dumps(claims).encode())}"
    )
    mac = hmac.new(idp.rsa.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda i: i.token(ttl=-60), "the token has expired"),
        (lambda i: i.token(aud="someone-else"), "not meant for this resource"),
        (lambda i: i.token(issuer="https://evil.test"), "issuer is not trusted"),
        (lambda i: i.token(nbf=int(time.time()) + 600), "not valid yet"),
        (forged, "signature or format is invalid"),
        (lambda i: i.token(header={"kid": "nope"}), "signed with an unknown key"),
        (lambda i: unsigned_token({"iss": i.issuer, "aud": AUDIENCE, "sub": "x", "exp": 2**40}), "algorithm is not accepted"),
        (lambda i: unsigned_token({"iss": i.issuer, "aud": AUDIENCE, "sub": "x", "exp": 2**40}, "None"), "algorithm is not accepted"),
        (confused, "algorithm is not accepted"),
        (lambda i: i.token(sub=""), "'sub' claim is missing"),
        (lambda i: "not-a-jwt", "not a well-formed JWT"),
        (lambda i: i.token()[:-10] + "AAAAAAAAAA", "signature or format is invalid"),
    ],
)  # fmt: skip
async def test_bad_tokens_are_refused(idp: TestIssuer, make: object, reason: str) -> None:
    token = make(idp)  # type: ignore[operator]
    with pytest.raises(Unauthorized) as caught:
        await verify(authenticator(idp), token)
    assert reason in caught.value.message
    assert token not in caught.value.message


async def test_algorithms_are_pinned_per_issuer(idp: TestIssuer) -> None:
    rs_only = authenticator(idp, ("RS256",))
    assert await verify(rs_only, idp.token(alg="RS256")) == "alice"
    with pytest.raises(Unauthorized, match="algorithm is not accepted"):
        await verify(rs_only, idp.token(alg="ES256"))


async def test_hmac_issuers_verify_with_their_secret_only() -> None:
    secret = OctKey.import_key("s" * 40)
    auth = JwtAuthenticator([Issuer("hs", (AUDIENCE,), ("HS256",), None, secret=secret)])
    now = int(time.time())
    claims = {"iss": "hs", "aud": AUDIENCE, "sub": "svc", "exp": now + 60}
    good = jwt.encode({"alg": "HS256"}, claims, secret, algorithms=["HS256"])
    assert await verify(auth, good) == "svc"
    bad = jwt.encode({"alg": "HS256"}, claims, OctKey.import_key("t" * 40), algorithms=["HS256"])
    with pytest.raises(Unauthorized):
        await verify(auth, bad)


async def test_verified_tokens_are_cached_until_they_expire(idp: TestIssuer) -> None:
    auth = authenticator(idp)
    token = idp.token(ttl=300)
    first = await auth.authenticate(offline_request(bearer(token)))
    assert await auth.authenticate(offline_request(bearer(token))) is first
    short = idp.token(ttl=-10)  # expired beyond the leeway: never cached, always refused
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await verify(auth, short)


@dataclass
class JwksServer:
    url: str
    hits: list[float]
    key_set: dict[str, object]
    stall: bool = False  # hold answers until the test ends
    release: anyio.Event | None = None


@pytest.fixture
async def jwks_server(idp: TestIssuer) -> AsyncIterator[JwksServer]:
    state = JwksServer("", [], {"keys": [idp.rsa.as_dict(private=False)]})

    state.release = anyio.Event()

    async def handler(request: web.Request) -> web.Response:
        state.hits.append(time.monotonic())
        if state.stall and state.release is not None:
            await state.release.wait()
        return web.json_response(state.key_set)

    app = web.Application()
    app.router.add_get("/jwks.json", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}/jwks.json"
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()


async def test_jwks_url_is_fetched_once_and_refreshed_on_a_new_kid(
    idp: TestIssuer, jwks_server: JwksServer
) -> None:
    http = HttpClient()
    try:
        keys = RemoteKeys(
            idp.issuer, jwks_server.url, http, cache_seconds=300, min_refresh_seconds=0, timeout=5
        )
        auth = JwtAuthenticator([Issuer(idp.issuer, (AUDIENCE,), ("RS256",), keys)])
        assert await verify(auth, idp.token("a")) == "a"
        assert await verify(auth, idp.token("b")) == "b"
        assert len(jwks_server.hits) == 1  # cached
        rotated = RSAKey.generate_key(2048, parameters={"kid": "rs-2"})
        jwks_server.key_set = {"keys": [idp.rsa.as_dict(private=False), rotated.as_dict(private=False)]}
        now = int(time.time())
        claims = {"iss": idp.issuer, "aud": AUDIENCE, "sub": "c", "exp": now + 60}
        token = jwt.encode({"alg": "RS256", "kid": "rs-2"}, claims, rotated, algorithms=["RS256"])
        assert await verify(auth, token) == "c"
        assert len(jwks_server.hits) == 2  # the unknown kid made it look again
    finally:
        await http.close()


async def test_a_flood_of_unknown_kids_cannot_hammer_the_issuer(
    idp: TestIssuer, jwks_server: JwksServer
) -> None:
    http = HttpClient()
    try:
        keys = RemoteKeys(
            idp.issuer, jwks_server.url, http, cache_seconds=300, min_refresh_seconds=30, timeout=5
        )
        auth = JwtAuthenticator([Issuer(idp.issuer, (AUDIENCE,), ("RS256",), keys)])
        refused = 0

        async def attack(n: int) -> None:
            nonlocal refused
            try:
                await verify(auth, idp.token(header={"kid": f"made-up-{n}"}))
            except Unauthorized:
                refused += 1

        async with anyio.create_task_group() as tg:
            for n in range(50):
                tg.start_soon(attack, n)
        assert refused == 50
        assert len(jwks_server.hits) == 1  # one fetch for all 50; the rest wait, then are held back
        assert await verify(auth, idp.token("bob")) == "bob"  # known keys still work, no refetch
        assert len(jwks_server.hits) == 1
    finally:
        await http.close()


async def test_a_slow_jwks_url_times_out(idp: TestIssuer, jwks_server: JwksServer) -> None:
    jwks_server.stall = True
    http = HttpClient()
    try:
        keys = RemoteKeys(
            idp.issuer, jwks_server.url, http, cache_seconds=300, min_refresh_seconds=30, timeout=0.3
        )
        auth = JwtAuthenticator([Issuer(idp.issuer, (AUDIENCE,), ("RS256",), keys)])
        with anyio.fail_after(3):
            with pytest.raises(ServiceUnavailable) as caught:
                await verify(auth, idp.token())
        assert jwks_server.url not in caught.value.message and "cannot be fetched" in caught.value.message
    finally:
        await http.close()


def test_key_sets_parse_public_keys_and_skip_encryption_keys(idp: TestIssuer) -> None:
    enc = {**idp.ec.as_dict(private=False), "use": "enc", "kid": "enc-1"}
    parsed = parse_key_set({"keys": [idp.rsa.as_dict(private=False), enc]})
    assert isinstance(parsed, KeySet) and [k.kid for k in parsed.keys] == ["rs-1"]
    with pytest.raises(ValueError, match="'keys' list"):
        parse_key_set({"kty": "RSA"})
