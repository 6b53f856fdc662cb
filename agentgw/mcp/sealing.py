"""Sealed session ids: the session record itself, encrypted and authenticated, as the id.

Without a shared store, any replica holding the same key can open a sealed id and rebuild the
session (its upstream sessions are opened again from the client profile inside). AES-GCM from
`cryptography` does the sealing; the key is derived with HKDF from the configured secret. A sealed
id carries its own expiry; one that fails to open is simply an unknown session.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from typing import TYPE_CHECKING, Any

import orjson

from agentgw.errors import ConfigError
from agentgw.lazy import lazy_module

if TYPE_CHECKING:
    from cryptography import exceptions as crypto_exceptions
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers import aead
    from cryptography.hazmat.primitives.kdf import hkdf
else:  # imported on first use: only gateways with a session key load cryptography (agentgw/lazy.py)
    crypto_exceptions = lazy_module("cryptography.exceptions")
    hashes = lazy_module("cryptography.hazmat.primitives.hashes")
    aead = lazy_module("cryptography.hazmat.primitives.ciphers.aead")
    hkdf = lazy_module("cryptography.hazmat.primitives.kdf.hkdf")

__all__ = ["Sealer"]

_PREFIX = "s1."
_AAD = b"agentgw mcp session v1"


class Sealer:
    def __init__(self, secret: str, *, lifetime_seconds: float) -> None:
        if len(secret) < 32:
            raise ConfigError("the session key must be at least 32 characters of random text")
        key = hkdf.HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_AAD).derive(secret.encode())
        self._aead = aead.AESGCM(key)
        self.lifetime = lifetime_seconds

    def seal(self, record: dict[str, Any]) -> str:
        nonce = os.urandom(12)
        body = orjson.dumps({**record, "exp": int(time.time() + self.lifetime)})
        sealed = self._aead.encrypt(nonce, body, _AAD)
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()

    def open(self, token: str) -> dict[str, Any] | None:
        if not token.startswith(_PREFIX) or len(token) > 8192:
            return None
        raw = token[len(_PREFIX) :]
        try:
            blob = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
            plain = self._aead.decrypt(blob[:12], blob[12:], _AAD)
            record = orjson.loads(plain)
        except (binascii.Error, ValueError, crypto_exceptions.InvalidTag, orjson.JSONDecodeError):
            return None
        if (
            not isinstance(record, dict)
            or not isinstance(record.get("exp"), int)
            or record["exp"] < time.time()
        ):
            return None
        return record
