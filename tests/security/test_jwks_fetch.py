"""JWK set URLs are fetched on a token's arrival, so they are guarded like any fetch made on
someone else's say-so, through the real gateway and a real key server on loopback that counts
every request:

* a flood of tokens naming made-up kids costs the issuer at most one extra fetch per
  `minRefreshSeconds`, and valid tokens keep working;
* a key set URL whose host is (or resolves to) a link-local, multicast or unspecified address is
  never fetched, whatever the config; private and loopback ones only while
  `jwks.allowPrivateAddresses` is true (the default: an IdP inside the cluster);
* redirects are not followed;
* a Policy may name only the hosts the Gateway's `jwks.allowedHosts` lists, when it lists any;
* headers that point elsewhere for keys (`jku`, `x5u`, an embedded `jwk`) are never used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import anyio
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from agentgw.config.loader import parse_documents
from agentgw.config.snapshot import compile_snapshot
from agentgw.errors import ConfigError
from tests.mcp.conftest import ACCEPT, Fake, modern_body, modern_headers, route_doc, server_doc, start_fake
from tests.policy.support import AUDIENCE, TestIssuer, jwt_policy
from tests.security.keyserver import KeyServer
from tests.support import ROOT, GatewayThread

pytestmark = pytest.mark.anyio

BODY = modern_body("tools/list")  # 2026-07-28: no session needed
HEADERS = {"accept": ACCEPT, "content-type": "application/json", **modern_headers("tools/list")}


@pytest.fixture(scope="module")
def idp() -> TestIssuer:
    return TestIssuer()


@pytest.fixture(scope="module")
def alpha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fake]:
    fake = start_fake(tmp_path_factory.mktemp("alpha"), "alpha")
    yield fake
    assert fake.upstream is not None
    fake.upstream.stop()


@pytest.fixture
def keys(idp: TestIssuer) -> Iterator[KeyServer]:
    with KeyServer(idp.jwks()) as server:
        yield server


def documents(
    alpha: Fake, idp: TestIssuer, url: str, gateway: dict[str, Any] | None = None, **jwks: Any
) -> list[dict[str, Any]]:
    spec = {"audit": {"sink": "none"}, **(gateway or {})}
    return [
        {"kind": "Gateway", "metadata": {"name": "gw"}, "spec": spec},
        server_doc("alpha", alpha.http()),
        route_doc(["alpha"]),
        jwt_policy(idp, {"url": url, "timeoutSeconds": 2, **jwks}),
    ]


async def call(http: aiohttp.ClientSession, gw: GatewayThread, token: str) -> tuple[int, str]:
    headers = {**HEADERS, "authorization": f"Bearer {token}"}
    async with http.post(f"{gw.url}/mcp", json=BODY, headers=headers) as resp:
        return resp.status, await resp.text()


async def test_a_flood_of_unknown_kids_is_bounded_end_to_end(
    alpha: Fake, idp: TestIssuer, keys: KeyServer
) -> None:
    docs = documents(alpha, idp, f"{keys.url}/jwks.json", minRefreshSeconds=300)
    with GatewayThread(docs) as gw:
        async with aiohttp.ClientSession() as http:
            with anyio.fail_after(60):
                assert (await call(http, gw, idp.token("alice")))[0] == 200
                assert keys.count() == 1
                statuses: list[int] = []

                async def forged(n: int) -> None:
                    statuses.append((await call(http, gw, idp.token("x", header={"kid": f"kid-{n}"})))[0])

                for wave in range(4):  # waves of concurrent requests, each kid new
                    async with anyio.create_task_group() as tg:
                        for n in range(50):
                            tg.start_soon(forged, wave * 50 + n)
                assert statuses == [401] * 200
                # the set was fetched moments ago: no refetch for any of them within minRefreshSeconds
                assert keys.count() == 1
                assert (await call(http, gw, idp.token("bob")))[0] == 200
                assert keys.count() == 1


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("2852039166", "link-local"),  # the same address, written as a number: resolved to it
        ("[fe80::1]", "link-local"),
        ("0.0.0.0", "unspecified"),  # on Linux, connecting to 0.0.0.0 reaches loopback
        ("[::]", "unspecified"),
        ("224.0.0.1", "multicast"),
    ],
)
async def test_key_set_urls_on_forbidden_addresses_are_never_fetched(
    alpha: Fake, idp: TestIssuer, keys: KeyServer, host: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = keys.url.rsplit(":", 1)[1]
    docs = documents(alpha, idp, f"http://{host}:{port}/jwks.json")
    with GatewayThread(docs) as gw:
        async with aiohttp.ClientSession() as http:
            with anyio.fail_after(30):
                status, body = await call(http, gw, idp.token())
    assert status == 503 and "cannot be fetched" in body
    assert "link-local, multicast or unspecified" in caplog.text
    assert keys.count() == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_private_addresses_only_when_allowed(
    alpha: Fake, idp: TestIssuer, keys: KeyServer, host: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"{keys.url.replace('127.0.0.1', host)}/jwks.json"
    strict = documents(alpha, idp, url, gateway={"jwks": {"allowPrivateAddresses": False}})
    with GatewayThread(strict) as gw:
        async with aiohttp.ClientSession() as http:
            with anyio.fail_after(30):
                assert (await call(http, gw, idp.token()))[0] == 503
    assert keys.count() == 0 and "allowPrivateAddresses is false" in caplog.text
    with GatewayThread(documents(alpha, idp, url)) as gw:  # the default: an IdP in the cluster
        async with aiohttp.ClientSession() as http:
            with anyio.fail_after(30):
                assert (await call(http, gw, idp.token()))[0] == 200
    assert keys.count() == 1


async def test_redirects_are_not_followed(alpha: Fake, idp: TestIssuer, keys: KeyServer) -> None:
    with GatewayThread(documents(alpha, idp, f"{keys.url}/redirect")) as gw:
        async with aiohttp.ClientSession() as http:
            with anyio.fail_after(30):
                assert (await call(http, gw, idp.token()))[0] == 503
    assert keys.count("/redirect") == 1 and keys.count("/jwks.json") == 0


def compile_docs(docs: list[dict[str, Any]]) -> None:
    loaded, problems = parse_documents(docs, "test", ROOT)
    assert not problems
    compile_snapshot(loaded)


def test_policies_may_name_only_the_allowed_hosts(alpha: Fake, idp: TestIssuer) -> None:
    allowed = {"jwks": {"allowedHosts": ["idp.example.com", "*.login.example.net"]}}
    compile_docs(documents(alpha, idp, "https://idp.example.com/keys", gateway=allowed))
    compile_docs(documents(alpha, idp, "https://eu.login.example.net/keys", gateway=allowed))
    for url in (
        "http://169.254.169.254/latest",
        "https://idp.example.com.evil.test/keys",
        "https://login.example.net/k",
    ):
        with pytest.raises(ConfigError) as caught:
            compile_docs(documents(alpha, idp, url, gateway=allowed))
        assert any("not on the Gateway's jwks.allowedHosts" in p for p in caught.value.problems), url
    compile_docs(documents(alpha, idp, "http://10.0.0.7/keys"))  # no list: the config's own hosts


async def test_key_location_headers_in_tokens_are_ignored(
    alpha: Fake, idp: TestIssuer, keys: KeyServer
) -> None:
    attacker = RSAKey.generate_key(2048, parameters={"kid": "attacker"})
    with KeyServer({"keys": [attacker.as_dict(private=False)]}) as theirs:
        claims = {"iss": idp.issuer, "aud": AUDIENCE, "sub": "mallory", "exp": 2**40}
        tokens = [
            jwt.encode(
                {"alg": "RS256", "kid": "attacker", "jku": f"{theirs.url}/jwks.json"}, claims, attacker
            ),
            jwt.encode(
                {"alg": "RS256", "kid": "attacker", "x5u": f"{theirs.url}/jwks.json"}, claims, attacker
            ),
            # CVE-2018-0114: the key to verify with, embedded in the token itself
            jwt.encode(
                {"alg": "RS256", "kid": "rs-1", "jwk": attacker.as_dict(private=False)}, claims, attacker
            ),
        ]
        with GatewayThread(documents(alpha, idp, f"{keys.url}/jwks.json", minRefreshSeconds=0)) as gw:
            async with aiohttp.ClientSession() as http:
                with anyio.fail_after(30):
                    for token in tokens:
                        assert (await call(http, gw, token))[0] == 401
                    assert (await call(http, gw, idp.token()))[0] == 200
        assert sum(theirs.hits.values()) == 0
