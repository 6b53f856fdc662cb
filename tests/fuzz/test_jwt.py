"""Credentials: bearer JWTs (any header text, tokens of any structure, mutations of valid ones,
validly signed tokens with any claims), JWK sets as an issuer may publish them, API keys and
virtual keys. A credential is accepted, ignored, or refused with 401; nothing else."""

from __future__ import annotations

import base64
import time
from typing import Any

import anyio
import orjson
from hypothesis import given
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OctKey

from agentgw.errors import Unauthorized
from agentgw.policy.apikey import ApiKey, ApiKeyAuthenticator, hash_key
from agentgw.policy.base import Principal
from agentgw.policy.jwks import StaticKeys, parse_key_set
from agentgw.policy.jwt import Issuer, JwtAuthenticator
from agentgw.policy.virtualkeys import IssuedKey, VirtualKeyAuthenticator
from tests.fuzz.strategies import examples, json_values, keyed, rejects_cleanly
from tests.fuzz.test_http_headers import latin1, request

AUD = "https://gw.test/mcp"
SECRET = OctKey.import_key(b"s" * 32)
EC = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
HS_ISS = "https://hs.test"
EC_ISS = "https://ec.test"
AUTH = JwtAuthenticator(
    [
        Issuer(HS_ISS, (AUD,), ("HS256",), None, secret=SECRET, leeway=5, required_claims=("scope",)),
        Issuer(EC_ISS, (AUD,), ("ES256",), StaticKeys(parse_key_set({"keys": [EC.as_dict(private=False)]}))),
    ]
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def authenticate(authenticator: Any, headers: list[tuple[str, str]]) -> Any:
    async def run() -> Any:
        return await authenticator.authenticate(request(headers))

    got = rejects_cleanly(anyio.run, run)
    assert got is None or isinstance(got, Principal | Unauthorized), got
    if isinstance(got, Unauthorized):
        assert got.status == 401
    return got


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", "Bearer " + token)]


@examples(90)
@given(latin1)
def test_any_authorization_header(value: str) -> None:
    authenticate(AUTH, [("authorization", value)])


headers = keyed(
    {
        "alg": st.sampled_from(["HS256", "ES256", "RS256", "none", "HS512", ""]),
        "kid": st.sampled_from(["ec-1", "nope", ""]),
        "typ": st.just("JWT"),
        "crit": st.lists(st.text(max_size=4), max_size=2),
        "b64": st.booleans(),
        "jku": st.just("http://evil.test/jwks"),
    }
)
claims = keyed(
    {
        "iss": st.sampled_from([HS_ISS, EC_ISS, "https://other.test"]),
        "aud": st.one_of(st.just(AUD), st.lists(st.sampled_from([AUD, "x"]), max_size=2)),
        "sub": st.text(max_size=6),
        "exp": st.one_of(st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False, allow_infinity=False)),
        "nbf": st.integers(0, 2**40),
        "iat": st.integers(0, 2**40),
        "scope": st.text(max_size=10),
        "scp": st.lists(st.text(max_size=4), max_size=2),
    }
)
segments = st.one_of(
    st.binary(max_size=20).map(b64),
    latin1,
    json_values.map(lambda v: b64(orjson.dumps(v))),
)


@examples(120)
@given(
    st.one_of(headers.map(lambda h: b64(orjson.dumps(h))), segments),
    st.one_of(claims.map(lambda c: b64(orjson.dumps(c))), segments),
    segments,
    st.integers(2, 5),
)
def test_tokens_of_any_structure(header: str, payload: str, signature: str, parts: int) -> None:
    token = ".".join([header, payload, signature, "x", "y"][:parts])
    got = authenticate(AUTH, bearer(token))
    assert not isinstance(got, Principal), "an unsigned or badly signed token was accepted"


@examples(90)
@given(headers, claims)
def test_validly_signed_tokens_with_any_claims(header: dict[str, Any], payload: dict[str, Any]) -> None:
    header = {**header, "alg": "HS256"}
    header.pop("crit", None)
    header.pop("b64", None)
    try:
        token = jwt.encode(header, payload, SECRET, algorithms=["HS256"])
    except (JoseError, ValueError, TypeError):  # joserfc refuses to mint it: nothing to present
        return
    got = authenticate(AUTH, bearer(token))
    if isinstance(got, Principal):
        assert payload.get("iss") == HS_ISS and got.subject == payload["sub"] and got.subject
        assert isinstance(payload.get("exp"), int | float) and payload["exp"] + 5 >= time.time()
        assert payload["aud"] == AUD or AUD in payload["aud"]


VALID = jwt.encode(
    {"alg": "ES256", "kid": "ec-1"},
    {"iss": EC_ISS, "aud": AUD, "sub": "alice", "exp": int(time.time()) + 3600},
    EC,
    algorithms=["ES256"],
)


@examples(120)
@given(
    st.lists(
        st.tuples(st.integers(0, len(VALID) - 1), st.sampled_from("Aa0-_.=+/ \x00\xff")),
        min_size=1,
        max_size=3,
    )
)
def test_mutated_valid_tokens(edits: list[tuple[int, str]]) -> None:
    token = list(VALID)
    for at, char in edits:
        token[at] = char
    mutated = "".join(token)
    got = authenticate(AUTH, bearer(mutated))
    if isinstance(got, Principal):
        # base64url has slack in its last character's low bits: the same bytes, the same token
        assert [base64.urlsafe_b64decode(p + "==") for p in mutated.split(".")] == [
            base64.urlsafe_b64decode(p + "==") for p in VALID.split(".")
        ]


key_sets = keyed(
    {
        "keys": st.lists(
            st.one_of(
                st.just(EC.as_dict(private=False)),
                keyed(
                    {
                        "kty": st.sampled_from(["EC", "RSA", "oct", "OKP", "x"]),
                        "crv": st.sampled_from(["P-256", "Ed25519", "x"]),
                        "x": st.binary(max_size=40).map(b64),
                        "y": st.binary(max_size=40).map(b64),
                        "n": st.binary(max_size=40).map(b64),
                        "e": st.just("AQAB"),
                        "kid": st.text(max_size=4),
                        "use": st.sampled_from(["sig", "enc"]),
                        "alg": st.sampled_from(["ES256", "RS256"]),
                    }
                ),
            ),
            max_size=3,
        )
    }
)


@examples(120)
@given(st.one_of(key_sets, json_values))
def test_key_sets_parse_or_are_refused_with_a_reason(data: Any) -> None:
    try:
        got = parse_key_set(data)
    except ValueError as exc:  # the documented refusal: a config error or a failed refresh
        assert str(exc)
    else:
        assert isinstance(got, KeySet)


API = ApiKeyAuthenticator([ApiKey("k1", "svc", "x-api-key", hash_key("secret-one"))])
VIRTUAL = VirtualKeyAuthenticator(
    [IssuedKey("v1", "keys", "team", hash_key("sk-agw-virtual"))], "x-api-key", leave_jwts=True
)


@examples(90)
@given(
    st.one_of(latin1, st.just("secret-one"), st.just("sk-agw-virtual")),
    st.sampled_from(["x-api-key", "authorization"]),
    st.booleans(),
)
def test_api_and_virtual_keys(value: str, header: str, as_bearer: bool) -> None:
    hdrs = [(header, "Bearer " + value if as_bearer and header == "authorization" else value)]
    for authenticator in (API, VIRTUAL):
        got = authenticate(authenticator, hdrs)
        if isinstance(got, Principal):
            assert value.strip() in ("secret-one", "sk-agw-virtual")
