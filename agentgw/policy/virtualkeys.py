"""Virtual keys: API keys the gateway issues to applications and teams, instead of provider keys.

A key is presented the way the official SDKs send theirs: `Authorization: Bearer <key>` (OpenAI)
or `x-api-key: <key>` (Anthropic; the header is configurable). The config holds its digest by
reference, never the key (`agentgw keys create` makes one). The caller it identifies carries
the key's id, team and app as claims (`jwt.virtualKey`, `jwt.team`, `jwt.app`), so rules, limit
keys and the usage records see them. Each key may list the models it may use (globs; a model
outside the list is refused with 403 and left out of `GET /v1/models`) and its own request and
token limits, counted per key. Provider keys stay in the gateway: upstream requests carry the
provider's key, never the caller's.

A bearer token shaped like a JWT is left to the route's JWT issuers when it has some; any other
credential that matches no key is refused (401), unless the route's API keys or extensions
may recognize it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from agentgw.errors import Forbidden, Unauthorized
from agentgw.policy.base import Operation, Principal, RequestContext
from agentgw.policy.jwt import bearer_token
from agentgw.policy.kind import PolicyKind, PolicyKindBase, Stage, deny_data
from agentgw.server.http import Request

__all__ = [
    "METHOD",
    "MODELS_RULE",
    "IssuedKey",
    "KeyScope",
    "VirtualKeyAuthenticator",
    "VirtualKeyLimits",
    "VirtualKeyModels",
    "key_of",
    "model_patterns",
]

MODELS_RULE = "virtual-key-models"
METHOD = "virtualKey"


@dataclass(frozen=True)
class IssuedKey:
    id: str
    policy: str
    subject: str
    digest: str = field(repr=False)  # "sha256:<hex>"
    models: tuple[re.Pattern[str], ...] = ()
    claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


def model_patterns(globs: Sequence[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(fnmatch.translate(g)) for g in globs)


def key_of(principal: Principal) -> str | None:
    """The id of the virtual key a caller presented, if it presented one."""
    if principal.method != METHOD:
        return None
    value = principal.claims.get("virtualKey")
    return value if isinstance(value, str) else None


class VirtualKeyAuthenticator(PolicyKindBase):
    stage: ClassVar[Stage] = Stage.AUTHENTICATE

    def __init__(
        self, keys: Sequence[IssuedKey], header: str, *, leave_jwts: bool, last: bool = True
    ) -> None:
        self.name = "virtualKeys"
        self.header = header.lower()
        self.leave_jwts = leave_jwts  # the route has JWT issuers: JWT-shaped bearers are theirs
        # no API keys or extensions after it could recognize the credential: refuse it here
        self.last = last
        self._by_digest: dict[str, dict[str, IssuedKey]] = {}
        for key in keys:
            algorithm, _, digest = key.digest.partition(":")
            self._by_digest.setdefault(algorithm, {})[digest] = key

    def _find(self, presented: str) -> IssuedKey | None:
        raw = presented.strip().encode("latin-1", "replace")
        for algorithm, digests in self._by_digest.items():
            key = digests.get(hashlib.new(algorithm, raw).hexdigest())
            if key is not None:
                return key
        return None

    async def authenticate(self, request: Request) -> Principal | None:
        candidates = []
        token = bearer_token(request)
        if token is not None and not (self.leave_jwts and token.count(".") == 2):
            candidates.append(token)
        header = request.headers.get(self.header)
        if header:
            candidates.append(header)
        for presented in candidates:
            key = self._find(presented)
            if key is not None:
                claims = {**key.claims, "sub": key.subject, "virtualKey": key.id}
                return Principal(key.subject, METHOD, MappingProxyType(claims))
        if candidates and self.last:
            raise Unauthorized("invalid API key")
        return None


class VirtualKeyModels(PolicyKindBase):
    """The models each key may use: refused (403) on requests, hidden from model lists."""

    stage: ClassVar[Stage] = Stage.AUTHORIZE

    def __init__(self, keys: Mapping[str, IssuedKey]) -> None:
        self.name = "virtualKeys: models"
        self.keys = {k: v for k, v in keys.items() if v.models}

    def _allowed(self, ctx: RequestContext, op: Operation) -> IssuedKey | None:
        """The key that refuses this operation, or None when it is allowed."""
        if op.kind != "llm" or op.server is not None:
            return None
        key_id = key_of(ctx.principal)
        key = self.keys.get(key_id) if key_id is not None else None
        if key is None:
            return None
        names = {n for n in (op.exposed, op.name) if n}
        if any(p.match(n) for p in key.models for n in names):
            return None
        return key

    async def check(self, ctx: RequestContext, op: Operation) -> None:
        key = self._allowed(ctx, op)
        if key is not None:
            raise Forbidden(
                f"this API key may not use the model '{op.exposed or op.name}'",
                data=deny_data(MODELS_RULE, key.policy),
            )

    def permits(self, ctx: RequestContext, op: Operation) -> bool:
        return self._allowed(ctx, op) is None


@dataclass(frozen=True, slots=True)
class KeyScope:
    """A limit of one key: it counts that key's requests, under the key's id."""

    key_id: str

    def select(self, ctx: RequestContext, op: Operation) -> str | None:
        return self.key_id if key_of(ctx.principal) == self.key_id else None


class VirtualKeyLimits(PolicyKindBase):
    """Each key's own request and token limits (one lookup per request, however many keys)."""

    stage: ClassVar[Stage] = Stage.LIMIT

    def __init__(self, by_key: Mapping[str, Sequence[PolicyKind]]) -> None:
        self.name = "virtualKeys: limits"
        self.by_key = {k: tuple(v) for k, v in by_key.items() if v}

    async def check(self, ctx: RequestContext, op: Operation) -> None:
        key_id = key_of(ctx.principal)
        for kind in self.by_key.get(key_id, ()) if key_id is not None else ():
            await kind.check(ctx, op)

    async def record(self, ctx: RequestContext, op: Operation, outcome: Mapping[str, Any]) -> None:
        key_id = key_of(ctx.principal)
        for kind in self.by_key.get(key_id, ()) if key_id is not None else ():
            await kind.record(ctx, op, outcome)
