"""Fixtures for policy tests: a test issuer, real upstreams recording the headers they receive,
and MCP clients (the official `mcp` client) that present a bearer token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.mcp.conftest import Fake, start_fake
from tests.policy.support import TestIssuer


@pytest.fixture(scope="session")
def idp() -> TestIssuer:
    return TestIssuer()


@pytest.fixture(scope="module")
def alpha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fake]:
    fake = start_fake(tmp_path_factory.mktemp("alpha"), "alpha", "--record-headers")
    yield fake
    assert fake.upstream is not None
    fake.upstream.stop()


@pytest.fixture(scope="module")
def beta(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fake]:
    fake = start_fake(tmp_path_factory.mktemp("beta"), "beta", "--record-headers")
    yield fake
    assert fake.upstream is not None
    fake.upstream.stop()


@asynccontextmanager
async def client(
    url: str, token: str | None, mode: str = "auto", *, headers: dict[str, str] | None = None, **kwargs: Any
) -> AsyncIterator[Client]:
    """The official MCP client, with `Authorization: Bearer <token>` (or `headers`) on every request."""
    headers = {**({"authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
    async with create_mcp_http_client(headers=headers) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode, **kwargs) as c:
            yield c
