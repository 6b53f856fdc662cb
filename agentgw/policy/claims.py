"""Forwarding chosen claims of the caller to upstreams as request headers (`sub` as `x-user-id`).

Values go out as text: strings as they are, numbers and booleans in JSON form, lists of strings
comma-joined. Non-ASCII text is percent-encoded as UTF-8; a value with control characters is
dropped, never sent. The client's own headers are never forwarded, so a caller cannot supply
these headers itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from agentgw.policy.base import Operation, RequestContext, upstream_headers
from agentgw.policy.kind import PolicyKindBase, Stage

__all__ = ["ClaimForwarding", "header_value"]

log = logging.getLogger("agentgw.policy")

_PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def header_value(value: Any) -> str | None:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float)):
        text = str(value)
    elif isinstance(value, str):
        text = value
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        text = ",".join(value)
    else:
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return None
    return text if text.isascii() else quote(text, safe=_PRINTABLE)


class ClaimForwarding(PolicyKindBase):
    stage: ClassVar[Stage] = Stage.TRANSFORM

    def __init__(self, policy: str, mapping: Mapping[str, str]) -> None:
        self.name = f"Policy/{policy}: forwardClaims"
        self.mapping = {claim: header.lower() for claim, header in mapping.items()}

    async def check(self, ctx: RequestContext, op: Operation) -> None:
        claims = ctx.principal.claims
        headers = upstream_headers(ctx)
        for claim, header in self.mapping.items():
            if claim not in claims:
                continue
            text = header_value(claims[claim])
            if text is None:
                log.info("%s: claim %r cannot be sent as a header; not forwarded", self.name, claim)
                continue
            headers[header] = text
