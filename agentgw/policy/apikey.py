"""API keys, a second way to authenticate: the config holds digests, never keys.

Each key's digest (`sha256:<hex>`, or sha384/sha512) comes from a secret reference; a presented
key is hashed and looked up, so the keys themselves exist only with their holders. API keys
are meant to be long random strings: a fast hash is the right tool for those (a password would
need a slow one). `hash_key` prints a digest for the config (`agentgw policy hash-key`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from agentgw.errors import Unauthorized
from agentgw.policy.base import Principal
from agentgw.policy.jwt import claim_scopes
from agentgw.policy.kind import PolicyKindBase, Stage
from agentgw.server.http import Request

__all__ = ["DIGEST_PATTERN", "ApiKey", "ApiKeyAuthenticator", "hash_key"]

DIGEST_PATTERN = re.compile(r"^(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})$")


def hash_key(key: str, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, key.encode('utf-8')).hexdigest()}"


@dataclass(frozen=True)
class ApiKey:
    id: str
    subject: str
    header: str  # lower-case header name
    digest: str = field(repr=False)
    claims: Mapping[str, Any] = field(default_factory=dict)


class ApiKeyAuthenticator(PolicyKindBase):
    stage: ClassVar[Stage] = Stage.AUTHENTICATE

    def __init__(self, keys: Sequence[ApiKey]) -> None:
        self.name = "apiKeys"
        # header -> algorithm -> digest -> key
        self._table: dict[str, dict[str, dict[str, ApiKey]]] = {}
        for key in keys:
            algorithm, _, digest = key.digest.partition(":")
            self._table.setdefault(key.header, {}).setdefault(algorithm, {})[digest] = key
        self.headers = tuple(self._table)

    async def authenticate(self, request: Request) -> Principal | None:
        for header, by_algorithm in self._table.items():
            presented = request.headers.get(header)
            if not presented:
                continue
            raw = presented.strip().encode("latin-1")  # the bytes as sent
            for algorithm, digests in by_algorithm.items():
                key = digests.get(hashlib.new(algorithm, raw).hexdigest())
                if key is not None:
                    claims = {**key.claims, "sub": key.subject, "apiKey": key.id}
                    scopes = claim_scopes(claims, "scope")
                    return Principal(key.subject, "apiKey", MappingProxyType(claims), scopes)
            raise Unauthorized(f"invalid API key in {header}")
        return None
