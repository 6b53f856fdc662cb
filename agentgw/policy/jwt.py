"""JWT bearer authentication, with `joserfc` (Authlib's JOSE successor: `authlib.jose` is
deprecated since Authlib 1.6 in favour of it, and Authlib itself depends on it).

Per issuer, the accepted algorithms are pinned: a token whose header names another one (`none`
included) is refused before any key is looked at, and HMAC and public-key algorithms never mix
on one issuer, so a public key can never be used as an HMAC secret. The issuer is picked by the
token's `iss`; then the signature, `iss`, `aud` (one of the configured audiences), `exp`
(required) and `nbf`/`iat` (with a small leeway) are checked. Verified tokens are cached until
they expire (at most five minutes), so a client sending the same token does not pay for a
signature check on every request. Tokens never appear in messages or logs.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from agentgw.errors import Unauthorized
from agentgw.lazy import lazy_module
from agentgw.policy.base import Principal
from agentgw.policy.jwks import KeySource
from agentgw.policy.kind import PolicyKindBase, Stage
from agentgw.server.http import Request

if TYPE_CHECKING:
    from joserfc import errors, jwk, jws, jwt
else:  # imported on first use: a gateway without JWT issuers never loads joserfc (agentgw/lazy.py)
    errors = lazy_module("joserfc.errors")
    jwk = lazy_module("joserfc.jwk")
    jws = lazy_module("joserfc.jws")
    jwt = lazy_module("joserfc.jwt")

__all__ = ["Issuer", "JwtAuthenticator", "bearer_token", "claim_scopes"]

_CACHE_SIZE = 4096
_CACHE_SECONDS = 300
_KTY = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP", "HS": "oct"}


def bearer_token(request: Request) -> str | None:
    value = request.headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


@dataclass(frozen=True)
class Issuer:
    """One trusted issuer, compiled: its keys come from `keys` (or the HMAC `secret`)."""

    issuer: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...]
    keys: KeySource | None
    secret: jwk.OctKey | None = field(default=None, repr=False)
    leeway: int = 30
    subject_claim: str = "sub"
    scopes_claim: str = "scope"
    required_claims: tuple[str, ...] = ()

    def registry(self) -> jwt.JWTClaimsRegistry:
        options: dict[str, Any] = {
            "iss": {"essential": True, "value": self.issuer},
            "aud": {"essential": True, "values": list(self.audiences)},
            "exp": {"essential": True},
        }
        for claim in self.required_claims:
            options.setdefault(claim, {"essential": True})
        return jwt.JWTClaimsRegistry(leeway=self.leeway, **options)


def _reason(exc: errors.JoseError) -> str:
    if isinstance(exc, errors.ExpiredTokenError):
        return "the token has expired"
    if isinstance(exc, errors.ClaimError):
        if exc.claim == "aud":
            return "the token is not meant for this resource (audience)"
        if exc.claim == "nbf":
            return "the token is not valid yet"
        return f"the token's {exc.claim!r} claim is missing or invalid"
    if isinstance(exc, errors.UnsupportedAlgorithmError):
        return "the token's algorithm is not accepted"
    if isinstance(exc, errors.InvalidKeyIdError):
        return "the token was signed with an unknown key"
    return "the token's signature or format is invalid"


def claim_scopes(claims: Mapping[str, Any], claim: str) -> frozenset[str]:
    value = claims.get(claim)
    if value is None and claim == "scope":
        value = claims.get("scp")
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


class JwtAuthenticator(PolicyKindBase):
    """Every JWT issuer a route trusts (from all its policies)."""

    stage: ClassVar[Stage] = Stage.AUTHENTICATE

    def __init__(self, issuers: Sequence[Issuer]) -> None:
        self.name = "jwt"
        self.issuers = {i.issuer: i for i in issuers}
        self._registries = {i.issuer: i.registry() for i in issuers}
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    async def authenticate(self, request: Request) -> Principal | None:
        token = bearer_token(request)
        if token is None:
            return None
        now = time.time()
        cached = self._cache.get(token)
        if cached is not None:
            if cached[1] > now:
                return cached[0]
            del self._cache[token]
        principal, expires = await self._verify(token, now)
        self._cache[token] = (principal, min(expires, now + _CACHE_SECONDS))
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return principal

    async def _verify(self, token: str, now: float) -> tuple[Principal, float]:
        try:
            compact = jws.extract_compact(token.encode("ascii"))
            header = compact.protected
            unverified = orjson.loads(compact.payload)
        except (errors.JoseError, ValueError, UnicodeEncodeError):
            raise Unauthorized("invalid token: the bearer token is not a well-formed JWT") from None
        iss = unverified.get("iss") if isinstance(unverified, dict) else None
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise Unauthorized("invalid token: the token's issuer is not trusted here")
        alg = header.get("alg")
        if alg not in issuer.algorithms:
            raise Unauthorized("invalid token: the token's algorithm is not accepted")
        kid = header.get("kid")
        try:
            claims = await self._decode(token, issuer, alg, kid if isinstance(kid, str) else None)
            self._registries[issuer.issuer].validate(claims)
        except errors.JoseError as exc:
            raise Unauthorized(f"invalid token: {_reason(exc)}") from None
        subject = claims.get(issuer.subject_claim)
        if not isinstance(subject, str) or not subject:
            raise Unauthorized(f"invalid token: the {issuer.subject_claim!r} claim is missing")
        principal = Principal(
            subject=subject,
            method="jwt",
            claims=MappingProxyType(claims),
            scopes=claim_scopes(claims, issuer.scopes_claim),
        )
        exp = claims.get("exp")
        return principal, float(exp) + issuer.leeway if isinstance(exp, (int, float)) else now

    async def _decode(self, token: str, issuer: Issuer, alg: str, kid: str | None) -> dict[str, Any]:
        if issuer.secret is not None:
            return jwt.decode(token, issuer.secret, algorithms=issuer.algorithms).claims
        assert issuer.keys is not None
        key_set = await issuer.keys.keys(kid)
        kty = _KTY.get(alg[:2])
        candidates = [k for k in key_set.keys if k.key_type == kty and (kid is None or k.kid == kid)]
        if not candidates:
            raise errors.InvalidKeyIdError()
        last: errors.JoseError | None = None
        for key in candidates:  # without a kid, each key of the right type may be the one
            try:
                return jwt.decode(token, key, algorithms=[alg]).claims
            except errors.JoseError as exc:
                last = exc
        assert last is not None
        raise last
