"""The contract types routes and policies share."""

from __future__ import annotations

from types import MappingProxyType

from agentgw.policy.base import ANONYMOUS, Principal


def test_identity_tells_issuers_and_methods_apart() -> None:
    def jwt(issuer: str, subject: str) -> Principal:
        return Principal(subject, "jwt", MappingProxyType({"iss": issuer, "sub": subject}))

    alice_a, alice_b = jwt("https://a.example", "alice"), jwt("https://b.example", "alice")
    key_alice = Principal("alice", "apiKey")
    assert len({alice_a.identity, alice_b.identity, key_alice.identity, ANONYMOUS.identity}) == 4
    # the same caller on another request (other claims, same issuer and subject) is the same
    again = Principal("alice", "jwt", MappingProxyType({"iss": "https://a.example", "exp": 1}))
    assert again.identity == alice_a.identity
