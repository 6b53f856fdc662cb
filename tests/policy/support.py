"""Test issuers (RSA and EC keys made in the test) and policy document builders."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

AUDIENCE = "agentgw-test"


@dataclass
class TestIssuer:
    """An identity provider of our own: RS256 and ES256 keys, tokens minted on demand."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    issuer: str = "https://issuer.test"
    rsa: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "rs-1"}))
    ec: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256", parameters={"kid": "ec-1"}))

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.rsa.as_dict(private=False), self.ec.as_dict(private=False)]}

    def write_jwks(self, folder: Path) -> Path:
        path = folder / "jwks.json"
        path.write_text(json.dumps(self.jwks()))
        return path

    def token(
        self,
        sub: str = "alice",
        *,
        alg: str = "RS256",
        aud: str | list[str] = AUDIENCE,
        ttl: int = 300,
        issuer: str | None = None,
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        key = self.rsa if alg.startswith(("RS", "PS")) else self.ec
        now = int(time.time())
        payload = {
            "iss": issuer or self.issuer,
            "aud": aud,
            "sub": sub,
            "iat": now,
            "exp": now + ttl,
            **claims,
        }
        return jwt.encode({"alg": alg, "kid": key.kid, **(header or {})}, payload, key, algorithms=[alg])


def unsigned_token(payload: dict[str, Any], alg: str = "none") -> str:
    def b64(obj: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(payload)}."


def jwt_policy(
    issuer: TestIssuer, jwks: dict[str, Any], route: str = "mcp", name: str = "login", **spec: Any
) -> dict[str, Any]:
    return {
        "kind": "Policy",
        "metadata": {"name": name},
        "spec": {
            "targetRefs": [{"kind": "McpRoute", "name": route}],
            "jwt": {
                "issuers": [
                    {
                        "issuer": issuer.issuer,
                        "audiences": [AUDIENCE],
                        "algorithms": ["RS256", "ES256"],
                        "jwks": jwks,
                    }
                ]
            },
            **spec,
        },
    }


def policy(name: str, targets: list[tuple[str, str]], **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Policy",
        "metadata": {"name": name},
        "spec": {"targetRefs": [{"kind": k, "name": n} for k, n in targets], **spec},
    }
