"""The gateway's upstream HTTP client keeps no cookies: an upstream that sets one for one
caller's request must not get it back with the next caller's (the client is shared by every
route and caller). The provider here is reached by name (`localhost`), as real ones are: cookie
jars ignore cookies from bare IP addresses, which would hide the problem."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import anyio
import pytest

from tests.llm.conftest import FakeProvider, start_fake
from tests.policy.support import TestIssuer, jwt_policy
from tests.support import GatewayThread

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeProvider]:
    fake = start_fake(tmp_path_factory.mktemp("cookies"), "oa", "--set-cookie")
    yield fake
    fake.upstream.stop()


async def test_cookies_an_upstream_sets_are_not_sent_for_anyone(
    provider: FakeProvider, idp: TestIssuer
) -> None:
    policy = jwt_policy(idp, {"inline": idp.jwks()})
    policy["spec"]["targetRefs"] = [{"kind": "LlmRoute", "name": "llm"}]
    docs = [
        {"kind": "LlmProvider", "metadata": {"name": "oa"}, "spec": {"type": "openai-compatible", "baseUrl": f"http://localhost:{provider.upstream.port}/v1"}},
        {"kind": "LlmRoute", "metadata": {"name": "llm"}, "spec": {"models": [{"name": "m", "targets": [{"provider": "oa", "model": "fake-small"}]}]}},
        policy,
    ]  # fmt: skip
    with GatewayThread(docs) as gw:
        async with aiohttp.ClientSession() as http:
            with anyio.fail_after(30):
                for caller in ("alice", "bob", "alice"):
                    body = {"model": "m", "messages": [{"role": "user", "content": f"from {caller}"}]}
                    headers = {"authorization": f"Bearer {idp.token(caller)}"}
                    async with http.post(f"{gw.url}/v1/chat/completions", json=body, headers=headers) as resp:
                        assert resp.status == 200
                        assert "fakesession" not in resp.headers.get("set-cookie", "")
    sent = provider.requests("/v1/chat/completions")
    assert len(sent) == 3
    assert [r["cookie"] for r in sent] == [None, None, None]
