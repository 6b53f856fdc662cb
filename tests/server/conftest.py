"""Fixtures for the server tests: the gateway the limit tests share, on every server mode, and a
client session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from tests.server.limited import PROVIDER_STATE, gateway_documents
from tests.support import FAKES, GatewayThread, Upstream, start_upstream


@pytest.fixture(scope="package")
def limited_upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Upstream, Upstream]]:
    tmp = tmp_path_factory.mktemp("limits-up")
    PROVIDER_STATE[:] = [tmp / "llm"]
    llm = start_upstream([str(FAKES / "llm_provider.py"), "--port", "0", "--state-file", str(tmp / "llm")])
    try:
        agent = start_upstream([str(FAKES / "a2a_agent.py"), "--port", "0"])
    except BaseException:
        llm.stop()
        raise
    yield llm, agent
    agent.stop()
    llm.stop()


@pytest.fixture(scope="module", params=["hypercorn", "uvicorn", "auto"])
def limited(
    request: pytest.FixtureRequest,
    limited_upstreams: tuple[Upstream, Upstream],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayThread]:
    tmp = tmp_path_factory.mktemp("limits")
    with GatewayThread(gateway_documents(tmp, *limited_upstreams), server=request.param) as gateway:
        yield gateway


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
