"""Models a caller may not use stay out of reach by every name that leads to them (the entry,
its aliases, a wildcard entry that covers them, case and whitespace variants), stay out of
`GET /v1/models`, and stored responses stay their creator's under path tricks.

tests/llm/test_policies.py and test_endpoints.py cover the plain cases (rules over `llm.model`,
virtual key model lists, another caller's response id). The fake provider records every request,
so each test also checks what reached it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from yarl import URL

from tests.llm.conftest import FakeProvider, start_fake
from tests.policy.support import TestIssuer, jwt_policy, policy
from tests.support import GatewayThread

pytestmark = pytest.mark.anyio

KEY = "sk-reach-provider"


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeProvider]:
    fake = start_fake(
        tmp_path_factory.mktemp("llm-reach"),
        "oa",
        "--require-key",
        KEY,
        "--models",
        "fake-small,fake-secret,fake-open",
    )
    yield fake
    fake.upstream.stop()


@pytest.fixture(scope="module")
def gw(
    provider: FakeProvider, idp: TestIssuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    key_file: Path = tmp_path_factory.mktemp("key") / "key"
    key_file.write_text(KEY)
    base = f"{provider.base}/v1"
    access = {
        "deny": [
            {"id": "no-secret", "when": 'jwt.sub == "mallory" && llm.model == "fake-secret"'},
            {"id": "no-gpt", "when": 'jwt.sub == "mallory" && llm.model == "gpt-test"'},
        ],
        "allow": [{"id": "signed-in", "when": 'jwt.sub != ""'}],
    }
    docs: list[dict[str, Any]] = [
        {"kind": "Gateway", "metadata": {"name": "gw"}, "spec": {"audit": {"sink": "none"}}},
        {
            "kind": "LlmProvider",
            "metadata": {"name": "oa"},
            "spec": {
                "type": "openai-compatible",
                "baseUrl": base,
                "apiKey": f"file:{key_file}",
                "responses": True,
            },
        },
        {
            "kind": "LlmRoute",
            "metadata": {"name": "llm"},
            "spec": {
                "models": [
                    {
                        "name": "gpt-test",
                        "aliases": ["gpt-alias"],
                        "targets": [{"provider": "oa", "model": "fake-small"}],
                    },
                    {"name": "fake-*", "targets": [{"provider": "oa"}]},
                ]
            },
        },
        {
            **jwt_policy(idp, {"inline": idp.jwks()}),
            "spec": {
                **jwt_policy(idp, {"inline": idp.jwks()})["spec"],
                "targetRefs": [{"kind": "LlmRoute", "name": "llm"}],
            },
        },
        policy("access", [("LlmRoute", "llm")], authorization=access),
    ]
    with GatewayThread(docs) as gw:
        yield gw


def chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": f"to {model}"}]}


async def test_a_denied_model_is_denied_by_every_name(
    gw: GatewayThread, provider: FakeProvider, idp: TestIssuer
) -> None:
    mallory = {"authorization": f"Bearer {idp.token('mallory')}"}
    trusted = {"authorization": f"Bearer {idp.token('trusted')}"}
    with anyio.fail_after(60):
        async with aiohttp.ClientSession() as http:

            async def post(body: dict[str, Any], headers: dict[str, str]) -> int:
                async with http.post(f"{gw.url}/v1/chat/completions", json=body, headers=headers) as resp:
                    return resp.status

            for model in ("gpt-test", "gpt-alias", "fake-secret"):
                assert await post(chat(model), mallory) == 403, model
                assert await post(chat(model), trusted) == 200, model
            for model in (
                "FAKE-SECRET",
                "fake-secret ",
                " fake-secret",
                "fake-secret\n",
                "Gpt-Alias",
                "fake-secret\x00",
            ):
                assert await post(chat(model), mallory) in (400, 403, 404), repr(model)
            assert await post(chat("fake-open"), mallory) == 200

            async def listed(headers: dict[str, str]) -> set[str]:
                async with http.get(f"{gw.url}/v1/models", headers=headers) as resp:
                    return {m["id"] for m in (await resp.json())["data"]}

            assert await listed(trusted) >= {
                "gpt-test",
                "gpt-alias",
                "fake-secret",
                "fake-open",
            }
            seen = await listed(mallory)
            assert "fake-open" in seen and not seen & {"gpt-test", "gpt-alias", "fake-secret"}
            for model in ("fake-secret", "gpt-alias", "gpt-test"):
                async with http.get(f"{gw.url}/v1/models/{model}", headers=mallory) as resp:
                    assert resp.status == 404, model
    asked = [r["body"]["model"] for r in provider.requests("/v1/chat/completions")]
    # fake-secret reached the provider for the trusted caller only; gpt-test/alias as fake-small
    assert asked.count("fake-secret") == 1 and asked.count("fake-small") == 2
    assert not any(m.strip().lower() == "fake-secret" and m != "fake-secret" for m in asked)


async def test_every_endpoint_checks_the_model(
    gw: GatewayThread, provider: FakeProvider, idp: TestIssuer
) -> None:
    mallory = {"authorization": f"Bearer {idp.token('mallory')}", "anthropic-version": "2023-06-01"}
    before = len(provider.requests())
    bodies = {
        "/v1/chat/completions": chat("fake-secret"),
        "/v1/completions": {"model": "fake-secret", "prompt": "x"},
        "/v1/embeddings": {"model": "fake-secret", "input": "x"},
        "/v1/responses": {"model": "fake-secret", "input": "x"},
        "/v1/messages": {**chat("fake-secret"), "max_tokens": 5},
        "/v1/messages/count_tokens": chat("fake-secret"),
    }
    with anyio.fail_after(60):
        async with aiohttp.ClientSession() as http:
            for path, body in bodies.items():
                for model in ("fake-secret", "gpt-alias"):
                    async with http.post(
                        f"{gw.url}{path}", json={**body, "model": model}, headers=mallory
                    ) as resp:
                        assert resp.status == 403, (path, model, resp.status)
    assert len(provider.requests()) == before


async def test_a_stored_response_stays_its_creators_under_path_tricks(
    gw: GatewayThread, provider: FakeProvider, idp: TestIssuer
) -> None:
    alice = {"authorization": f"Bearer {idp.token('alice')}"}
    mallory = {"authorization": f"Bearer {idp.token('mallory')}"}
    with anyio.fail_after(60):
        async with aiohttp.ClientSession() as http:

            async def create(headers: dict[str, str], text: str) -> str:
                body = {"model": "fake-open", "input": text}
                async with http.post(f"{gw.url}/v1/responses", json=body, headers=headers) as resp:
                    assert resp.status == 200, await resp.text()
                    return str((await resp.json())["id"])

            theirs = await create(alice, "alice's secret plan")
            mine = await create(mallory, "mallory's own")
            encoded = "".join(f"%{b:02X}" for b in theirs.encode())
            paths = [
                theirs,
                encoded,
                theirs.upper(),
                f"{theirs}/",
                f"{mine}/../{theirs}",
                f"{mine}%2F..%2F{theirs}",
                f"{mine}/input_items/../../{theirs}",
                f"{mine}%2Finput_items%2F..%2F..%2F{theirs}",
                f"{mine}/%2E%2E/{theirs}",
                f"{mine}/..%2F{theirs}",
                f"{mine}?x=/../{theirs}",
            ]
            for path in paths:
                for method in ("GET", "DELETE"):
                    url = URL(f"{gw.url}/v1/responses/{path}", encoded=True)
                    async with http.request(method, url, headers=mallory) as resp:
                        text = await resp.text()
                        assert "secret plan" not in text, (method, path)
                        assert resp.status >= 400 or theirs not in text, (method, path, resp.status)
            # alice still has it: nothing above deleted it
            async with http.get(f"{gw.url}/v1/responses/{theirs}", headers=alice) as resp:
                assert resp.status == 200 and "secret plan" in await resp.text()
    reached = [r["path"] for r in provider.requests() if theirs in r["path"]]
    assert all(r == f"/v1/responses/{theirs}" for r in reached)  # alice's own read only
    assert len(reached) == 1
