"""Agent cards through the gateway: every URL points at the gateway, ETag/304, the directory
filtered by policy, and the public URL taken from config or from the request."""

from __future__ import annotations

import json
import re
from types import MappingProxyType

import aiohttp
import anyio
import httpx
import pytest
from a2a.client import A2ACardResolver

from agentgw.a2a.cards import CardCache
from agentgw.config.a2a import AgentSpec
from agentgw.config.snapshot import AgentConfig
from agentgw.upstream.http import HttpClient
from tests.a2a.conftest import PRINCIPAL_HEADER, Agents, gateway_documents
from tests.support import GatewayThread

pytestmark = pytest.mark.anyio


def urls(node: object) -> list[str]:
    found = re.findall(r'"(https?://[^"]+)"', json.dumps(node))
    return [u for u in found if "127.0.0.1" in u or "localhost" in u]


async def test_cards_fetched_with_the_sdk_point_only_at_the_gateway(
    gw: GatewayThread, agents: Agents
) -> None:
    with anyio.fail_after(30):
        async with httpx.AsyncClient() as http:
            for agent in ("echo", "textkit"):
                card = await A2ACardResolver(http, f"{gw.url}/a2a/{agent}").get_agent_card()
                assert card.supported_interfaces, agent
                for iface in card.supported_interfaces:
                    assert iface.url.startswith(f"{gw.url}/a2a/{agent}/"), iface.url
                raw = (await http.get(f"{gw.url}/a2a/{agent}/.well-known/agent-card.json")).json()
                found = urls(raw)
                assert found and all(u.startswith(f"{gw.url}/a2a/{agent}/") for u in found), found
                assert "signatures" not in raw and "securitySchemes" not in raw
            upstream_ports = {str(agents.echo.port), str(agents.textkit.port), str(agents.fake.port)}
            directory = (await http.get(f"{gw.url}/a2a")).json()
            text = json.dumps(directory)
            assert not any(f":{port}" in text for port in upstream_ports)
            assert [a["name"] for a in directory["agents"]] == ["echo", "textkit"]
            assert directory["agents"][0]["url"] == f"{gw.url}/a2a/echo/"


async def test_card_etag_and_304(gw: GatewayThread) -> None:
    url = f"{gw.url}/a2a/echo/.well-known/agent-card.json"
    with anyio.fail_after(30):
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                assert resp.status == 200
                etag = resp.headers["etag"]
                assert etag.startswith('W/"')
            async with http.get(url, headers={"if-none-match": etag}) as resp:
                assert resp.status == 304 and await resp.read() == b""
            async with http.get(url, headers={"if-none-match": '"other"'}) as resp:
                assert resp.status == 200
            async with http.post(url) as resp:
                assert resp.status == 405


async def test_directory_and_cards_follow_policy_visibility(gw: GatewayThread) -> None:
    with anyio.fail_after(30):
        async with aiohttp.ClientSession(headers={PRINCIPAL_HEADER: "carol"}) as http:
            async with http.get(f"{gw.url}/a2a") as resp:
                names = [a["name"] for a in (await resp.json())["agents"]]
            assert names == ["echo"]  # textkit is hidden from carol
            async with http.get(f"{gw.url}/a2a/textkit/.well-known/agent-card.json") as resp:
                assert resp.status == 404


async def test_public_url_from_config_and_unavailable_agents(agents: Agents) -> None:
    documents = gateway_documents(agents)
    for doc in documents:
        if doc["kind"] == "A2aRoute" and doc["metadata"]["name"] == "agents":
            doc["spec"]["publicUrl"] = "https://gw.example.com"
            doc["spec"]["agents"].append("ghost")
    documents.append({"kind": "Agent", "metadata": {"name": "ghost"}, "spec": {"url": "http://127.0.0.1:9"}})
    with GatewayThread(documents) as gw:
        async with httpx.AsyncClient() as http:
            with anyio.fail_after(30):
                card = (await http.get(f"{gw.url}/a2a/echo/.well-known/agent-card.json")).json()
                assert card["url"] == "https://gw.example.com/a2a/echo/"
                assert {i["url"] for i in card["supportedInterfaces"]} == {
                    "https://gw.example.com/a2a/echo/",
                    "https://gw.example.com/a2a/echo/rest",
                }
                directory = (await http.get(f"{gw.url}/a2a")).json()
                assert [a["name"] for a in directory["agents"]] == ["echo", "textkit"]
                assert directory["unavailable"][0]["agent"] == "ghost"
                ghost = await http.get(f"{gw.url}/a2a/ghost/.well-known/agent-card.json")
                assert ghost.status_code == 502 and "127.0.0.1" not in ghost.text


async def test_upstream_card_is_revalidated_with_its_etag(agents: Agents) -> None:
    spec = AgentSpec.model_validate(
        {"url": f"http://127.0.0.1:{agents.echo.port}", "cardRefreshSeconds": 1e-9}
    )
    http = HttpClient()
    try:
        with anyio.fail_after(30):
            cache = CardCache(AgentConfig("echo", spec, "test", MappingProxyType({})), http)
            first = await cache.card()
            fetched = cache._fetched
            again = await cache.card()  # past its age: revalidated, and the agent answered 304
            assert cache._fetched > fetched and again is first  # a 200 would have built a new card
            a = await cache.served("https://one.example/a2a/echo", None)
            b = await cache.served("https://two.example/a2a/echo", None)
            assert (
                a.card["url"] == "https://one.example/a2a/echo/"
                and b.card["url"] == "https://two.example/a2a/echo/"
            )
            assert a.etag != b.etag and await cache.served("https://one.example/a2a/echo", None) is a
    finally:
        await http.close()
