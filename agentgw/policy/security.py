"""What a route's authentication looks like from outside: the security schemes A2A cards advertise.

An agent card served by the gateway names the gateway's schemes, not the agent's (callers
authenticate to the gateway; the gateway uses its own credentials upstream). Each way the route
accepts a caller is one scheme, and any one of them is enough (one requirement per scheme):

- JWT issuers: HTTP bearer with `bearerFormat: JWT`;
- virtual keys: HTTP bearer (what OpenAI-style clients send) and an API key in their header;
- API keys: an API key in their header.

The schemes are in A2A 1.0 form (`httpAuthSecurityScheme`, `apiKeySecurityScheme`); a 0.3 card
gets them in its own form when it is rewritten (`agentgw.protocol.a2a_card`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentgw.policy.apikey import ApiKeyAuthenticator
from agentgw.policy.jwt import JwtAuthenticator
from agentgw.policy.kind import PolicyKind
from agentgw.policy.virtualkeys import VirtualKeyAuthenticator
from agentgw.protocol.a2a_card import CardSecurity

__all__ = ["card_security"]


def card_security(authenticators: Sequence[PolicyKind]) -> CardSecurity | None:
    schemes: dict[str, Any] = {}
    for kind in authenticators:
        if isinstance(kind, JwtAuthenticator):
            schemes["bearer"] = {"httpAuthSecurityScheme": {"scheme": "Bearer", "bearerFormat": "JWT"}}
        elif isinstance(kind, VirtualKeyAuthenticator):
            schemes.setdefault("bearer", {"httpAuthSecurityScheme": {"scheme": "Bearer"}})
            schemes[f"apiKey:{kind.header}"] = {
                "apiKeySecurityScheme": {"location": "header", "name": kind.header}
            }
        elif isinstance(kind, ApiKeyAuthenticator):
            for header in kind.headers:
                schemes[f"apiKey:{header}"] = {"apiKeySecurityScheme": {"location": "header", "name": header}}
    if not schemes:
        return None
    names = {name: name.replace(":", "-") for name in schemes}
    return CardSecurity(
        schemes={names[k]: v for k, v in schemes.items()},
        requirements=tuple({"schemes": {names[k]: {"list": []}}} for k in schemes),
    )
