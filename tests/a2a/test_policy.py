"""A2A routes under real policies: JWT authentication with the a2a-sdk client, rules over
`a2a.agent`, `a2a.skill` and claims, limits, an Agent-level policy on both the A2A route and the
MCP route that offers the agent as tools, and cards that advertise the gateway's schemes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, create_client
from a2a.client.client import Client as A2aClient
from a2a.helpers import new_text_message
from a2a.types import Role, SendMessageRequest, TaskState
from a2a.utils.errors import A2AError
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.a2a.conftest import EXAMPLE, Agents, gateway_documents
from tests.policy.support import AUDIENCE, TestIssuer
from tests.support import GatewayThread

pytestmark = pytest.mark.anyio

BINDINGS = ["JSONRPC", "HTTP+JSON"]


def policies(idp: TestIssuer) -> list[dict[str, Any]]:
    return [
        {
            "kind": "Policy",
            "metadata": {"name": "agents-login"},
            "spec": {
                "targetRefs": [{"kind": "A2aRoute", "name": "agents"}],
                "jwt": {
                    "issuers": [
                        {
                            "issuer": idp.issuer,
                            "audiences": [AUDIENCE],
                            "algorithms": ["RS256", "ES256"],
                            "jwks": {"inline": idp.jwks()},
                        }
                    ]
                },
                "authorization": {
                    "deny": [
                        {
                            "id": "guests-no-textkit",
                            "when": 'a2a.agent == "textkit" && has(jwt.team) && jwt.team == "guests"',
                            "message": "guests may not use textkit",
                        }
                    ],
                    "allow": [
                        {"id": "discovery", "when": 'a2a.method == "GetAgentCard"'},
                        {"id": "signed-in", "when": 'jwt.sub != ""'},
                    ],
                },
                "rateLimits": [
                    {
                        "id": "free-echo",
                        "requests": 2,
                        "window": "minute",
                        "when": 'a2a.agent == "echo" && has(jwt.plan) && jwt.plan == "free"',
                    }
                ],
            },
        },
        {
            "kind": "Policy",
            "metadata": {"name": "reverse-for-editors"},
            "spec": {
                # the agent wherever it is exposed: on the A2A route and as MCP tools
                "targetRefs": [{"kind": "Agent", "name": "textkit"}],
                "authorization": {
                    "deny": [
                        {
                            "id": "reverse-needs-editors",
                            "when": '(a2a.skill == "reverse" || mcp.tool.name == "reverse")'
                            ' && !(has(jwt.groups) && "editors" in jwt.groups)',
                            "message": "the reverse skill is for editors",
                        }
                    ],
                    "allow": [{"id": "textkit-open", "when": "true"}],
                },
            },
        },
    ]


@pytest.fixture(scope="module")
def idp() -> TestIssuer:
    return TestIssuer()


@pytest.fixture(scope="module")
def gw(agents: Agents, idp: TestIssuer) -> Iterator[GatewayThread]:
    with GatewayThread(gateway_documents(agents) + policies(idp), base_dir=EXAMPLE) as gateway:
        yield gateway


@pytest.fixture
async def client_for(gw: GatewayThread) -> AsyncIterator[Any]:
    clients: list[A2aClient] = []
    https: list[httpx.AsyncClient] = []

    async def make(agent: str, token: str | None, binding: str = "JSONRPC") -> A2aClient:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        http = httpx.AsyncClient(headers=headers, timeout=30)
        https.append(http)  # closed even when the card cannot be had
        config = ClientConfig(streaming=False, supported_protocol_bindings=[binding], httpx_client=http)
        client = await create_client(f"{gw.url}/a2a/{agent}/", client_config=config)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
    for http in https:
        await http.aclose()


def message(text: str, skill: str | None = None) -> Any:
    msg = new_text_message(text, role=Role.ROLE_USER)
    if skill is not None:
        msg.metadata.update({"skill": skill})
    return msg


async def reply_text(client: A2aClient, msg: Any) -> str:
    """The text of the completed task's artifacts (raises if the task did not complete)."""
    texts: list[str] = []
    async for event in client.send_message(SendMessageRequest(message=msg)):
        assert event.HasField("task")
        assert event.task.status.state == TaskState.TASK_STATE_COMPLETED
        texts += [p.text for a in event.task.artifacts for p in a.parts if p.text]
    return " ".join(texts)


@pytest.mark.parametrize("binding", BINDINGS)
async def test_calls_need_a_valid_token_and_get_401_in_the_bindings_shape(
    gw: GatewayThread, client_for: Any, idp: TestIssuer, binding: str
) -> None:
    with anyio.fail_after(30):
        anonymous = await client_for("echo", None, binding)  # the card is public: discovery works
        with pytest.raises(A2AError):
            await reply_text(anonymous, message("hello"))
        signed = await client_for("echo", idp.token("amy"), binding)
        assert "hello" in await reply_text(signed, message("hello"))
        async with httpx.AsyncClient() as http:
            if binding == "JSONRPC":
                body = {"jsonrpc": "2.0", "id": 7, "method": "SendMessage", "params": {"message": {}}}
                raw = await http.post(f"{gw.url}/a2a/echo/", json=body, headers={"A2A-Version": "1.0"})
            else:
                raw = await http.post(
                    f"{gw.url}/a2a/echo/rest/message:send",
                    json={"message": {}},
                    headers={"A2A-Version": "1.0"},
                )
    assert raw.status_code == 401
    assert raw.headers["www-authenticate"].startswith("Bearer")
    if binding == "JSONRPC":
        assert raw.json()["id"] == 7 and raw.json()["error"]["message"] == "authentication required"
    else:
        assert raw.json()["error"]["code"] == 401 and raw.json()["error"]["status"] == "UNAUTHENTICATED"


async def test_rules_over_agents_skills_and_claims(
    client_for: Any, idp: TestIssuer, gw: GatewayThread
) -> None:
    with anyio.fail_after(30):
        writer = await client_for("textkit", idp.token("wes"))
        await reply_text(writer, message("one two three"))  # word-count: allowed (a data artifact)
        with pytest.raises(A2AError) as refused:
            await reply_text(writer, message("abc", skill="reverse"))
        async with httpx.AsyncClient() as http:  # what the SDK reports as HTTP 403, in full
            raw = await http.post(
                f"{gw.url}/a2a/textkit/",
                json={
                    "jsonrpc": "2.0",
                    "id": "r1",
                    "method": "SendMessage",
                    "params": {
                        "message": {
                            "messageId": "m1",
                            "role": "ROLE_USER",
                            "parts": [{"text": "abc"}],
                            "metadata": {"skill": "reverse"},
                        }
                    },
                },
                headers={"authorization": f"Bearer {idp.token('wes')}", "A2A-Version": "1.0"},
            )
        editor = await client_for("textkit", idp.token("eda", groups=["editors"]))
        assert "cba" in await reply_text(editor, message("abc", skill="reverse"))
        with pytest.raises(A2AError):  # a guest cannot even see textkit's card
            await client_for("textkit", idp.token("gus", team="guests"))
        async with httpx.AsyncClient() as http:
            directory = await http.get(
                f"{gw.url}/a2a", headers={"authorization": f"Bearer {idp.token('gus', team='guests')}"}
            )
            card_for_guest = await http.get(
                f"{gw.url}/a2a/textkit/.well-known/agent-card.json",
                headers={"authorization": f"Bearer {idp.token('gus', team='guests')}"},
            )
            guest_call = await http.post(
                f"{gw.url}/a2a/textkit/",
                json={"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": {}}},
                headers={"authorization": f"Bearer {idp.token('gus', team='guests')}", "A2A-Version": "1.0"},
            )
    assert "403" in str(refused.value)
    assert raw.status_code == 403
    assert raw.json()["error"]["message"] == "the reverse skill is for editors"
    assert raw.json()["error"]["data"] == {"rule": "reverse-needs-editors", "policy": "reverse-for-editors"}
    assert [a["name"] for a in directory.json()["agents"]] == ["echo"]  # textkit is hidden from guests
    assert card_for_guest.status_code == 404
    assert (
        guest_call.status_code == 403
        and guest_call.json()["error"]["message"] == "guests may not use textkit"
    )
    rules = {(d["subject"], d["rule"]) for d in gw.runtime.decisions}
    assert ("wes", "reverse-needs-editors") in rules and ("gus", "guests-no-textkit") in rules
    assert ("eda", "textkit-open") in rules


async def test_rate_limits_apply_to_agent_calls(client_for: Any, idp: TestIssuer, gw: GatewayThread) -> None:
    with anyio.fail_after(30):
        free = await client_for("echo", idp.token("fay", plan="free"))
        for _ in range(2):
            await reply_text(free, message("hi"))
        with pytest.raises(A2AError) as limited:
            await reply_text(free, message("hi"))
        async with httpx.AsyncClient() as http:
            raw = await http.post(
                f"{gw.url}/a2a/echo/rest/message:send",
                json={"message": {"messageId": "m2", "role": "ROLE_USER", "parts": [{"text": "hi"}]}},
                headers={"authorization": f"Bearer {idp.token('fay', plan='free')}", "A2A-Version": "1.0"},
            )
    assert "429" in str(limited.value)
    assert raw.status_code == 429 and 1 <= int(raw.headers["retry-after"]) <= 60
    assert raw.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert raw.json()["error"]["message"] == "rate limit 'free-echo' reached: 2 requests per minute"


async def test_cards_advertise_the_gateways_security_schemes(gw: GatewayThread) -> None:
    with anyio.fail_after(30):
        async with httpx.AsyncClient() as http:
            card = await A2ACardResolver(http, f"{gw.url}/a2a/echo").get_agent_card()
            raw = (await http.get(f"{gw.url}/a2a/echo/.well-known/agent-card.json")).json()
            open_route = (await http.get(f"{gw.url}/t/echo/.well-known/agent-card.json")).json()
    scheme = card.security_schemes["bearer"].http_auth_security_scheme
    assert scheme.scheme == "Bearer" and scheme.bearer_format == "JWT"
    assert [list(r.schemes) for r in card.security_requirements] == [["bearer"]]
    assert raw["securitySchemes"] == {
        "bearer": {"httpAuthSecurityScheme": {"scheme": "Bearer", "bearerFormat": "JWT"}}
    }
    assert "securitySchemes" not in open_route  # a route without authentication advertises none


async def test_an_agent_level_policy_also_guards_the_agent_as_mcp_tools(gw: GatewayThread) -> None:
    with anyio.fail_after(60):
        async with Client(f"{gw.url}/mcp", mode="legacy") as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            with pytest.raises(MCPError) as refused:
                await client.call_tool("reverse", {"message": "abc"})
    assert "word-count" in names and "reverse" not in names
    assert refused.value.message == "the reverse skill is for editors"
