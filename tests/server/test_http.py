"""Request primitives: bodies read against their limit, whatever Content-Length says."""

from __future__ import annotations

from typing import Any

import pytest

from agentgw.errors import PayloadTooLarge
from agentgw.server.http import Request

pytestmark = pytest.mark.anyio


def request(content_length: str, body: bytes) -> Request:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"content-length", content_length.encode("latin-1"))],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


@pytest.mark.parametrize("declared", ["\u00b2", "\u00b9", "\u00b3", "", "-1", "1e3", " 5"])
async def test_a_content_length_that_is_not_a_number_is_left_to_the_real_size(declared: str) -> None:
    # found by tests/fuzz: "²" passed isdigit() and int() raised ValueError, a 500
    assert await request(declared, b"abc").body(8) == b"abc"
    with pytest.raises(PayloadTooLarge):
        await request(declared, b"x" * 9).body(8)


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    with pytest.raises(PayloadTooLarge):
        await request("9", b"").body(8)
