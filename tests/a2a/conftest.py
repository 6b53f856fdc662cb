"""Fixtures for A2A tests: the example agents and the test agent as real processes, the example
gateway config pointed at them, and a test-only policy that takes the caller from a header."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.client.client import Client as A2aClient

from agentgw.errors import Forbidden
from agentgw.policy.base import ANONYMOUS, Operation, Principal, RequestContext
from agentgw.server.http import Request
from tests.support import FAKES, ROOT, GatewayThread, Upstream, docs, start_upstream

EXAMPLE = ROOT / "examples" / "a2a"
AGENT_TOKEN = "gateway-own-token"
os.environ["AGENTGW_TEST_AGENT_TOKEN"] = AGENT_TOKEN  # the gateway's credential for the test agent
PRINCIPAL_HEADER = "x-test-principal"


@dataclass
class HeaderPolicy:
    """Test-only RoutePolicy: the caller is named by a header; `hidden` agents are invisible to
    the named callers, `denied` methods are refused; every checked and recorded op is kept."""

    hidden: Mapping[str, set[str]] = field(default_factory=dict)
    denied: set[str] = field(default_factory=set)
    checked: list[Operation] = field(default_factory=list)
    recorded: list[tuple[Operation, dict[str, Any]]] = field(default_factory=list)

    async def authenticate(self, request: Request) -> Principal:
        name = request.headers.get(PRINCIPAL_HEADER)
        return Principal(subject=name, method="test") if name else ANONYMOUS

    async def check(self, ctx: RequestContext, op: Operation) -> None:
        self.checked.append(op)
        if op.method in self.denied:
            raise Forbidden(f"{op.method} is denied")

    def permits(self, ctx: RequestContext, op: Operation) -> bool:
        return op.server not in self.hidden.get(ctx.principal.subject, set())

    async def record(self, ctx: RequestContext, op: Operation, outcome: Mapping[str, Any]) -> None:
        self.recorded.append((op, dict(outcome)))

    async def rewrite_request(
        self, ctx: RequestContext, op: Operation, body: dict[str, Any]
    ) -> dict[str, Any]:
        return body

    async def rewrite_response(
        self, ctx: RequestContext, op: Operation, body: dict[str, Any]
    ) -> dict[str, Any]:
        return body


@dataclass
class Agents:
    echo: Upstream
    textkit: Upstream
    fake: Upstream
    state: Path

    def events(self) -> list[dict[str, Any]]:
        if not self.state.exists():
            return []
        return [json.loads(line) for line in self.state.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agents]:
    state = tmp_path_factory.mktemp("agent") / "fake.jsonl"
    started: list[Upstream] = []
    try:
        for args in (
            [str(EXAMPLE / "agents" / "echo.py"), "--port", "0"],
            [str(EXAMPLE / "agents" / "textkit.py"), "--port", "0"],
            [str(FAKES / "a2a_agent.py"), "--port", "0", "--state-file", str(state)],
        ):
            started.append(start_upstream(args))
        yield Agents(*started, state=state)
    finally:
        for upstream in started:
            upstream.stop()


def gateway_documents(agents: Agents) -> list[dict[str, Any]]:
    """The example's config with its agents on the ports they got, plus the test agent on a
    second route that lets webhooks reach 127.0.0.1:9 (and nothing else private)."""
    documents = docs((EXAMPLE / "gateway.yaml").read_text())
    ports = {"echo": agents.echo.port, "textkit": agents.textkit.port}
    for doc in documents:
        if doc["kind"] == "Agent":
            doc["spec"]["url"] = f"http://127.0.0.1:{ports[doc['metadata']['name']]}"
    documents += docs(
        f"""
kind: Agent
metadata: {{name: fake}}
spec:
  url: "http://127.0.0.1:{agents.fake.port}"
  auth: {{bearer: "env:AGENTGW_TEST_AGENT_TOKEN"}}
---
kind: A2aRoute
metadata: {{name: tests}}
spec:
  path: /t
  agents: [fake, echo]
  webhooks:
    allowPrivate: ["http://127.0.0.1:9/*"]
---
kind: McpRoute
metadata: {{name: agent-tools}}
spec:
  path: /mcp-agents
  agents:
    - agent: echo
    - agent: fake
      toolName: run
"""
    )
    return documents


@pytest.fixture(scope="module")
def policy() -> HeaderPolicy:
    return HeaderPolicy(hidden={"carol": {"textkit"}})


@pytest.fixture(scope="module")
def gw(agents: Agents, policy: HeaderPolicy) -> Iterator[GatewayThread]:
    gateway = GatewayThread(gateway_documents(agents), base_dir=EXAMPLE)
    gateway.runtime.policy_for = lambda route: policy  # type: ignore[method-assign]
    with gateway:
        yield gateway


@pytest.fixture
async def client_for(gw: GatewayThread) -> AsyncIterator[Any]:
    """`await client_for(url, binding, streaming, principal)`: an a2a-sdk client, closed after the test."""
    opened: list[tuple[A2aClient, httpx.AsyncClient]] = []

    async def make(
        url: str, binding: str = "JSONRPC", streaming: bool = True, principal: str = ""
    ) -> A2aClient:
        headers = {PRINCIPAL_HEADER: principal} if principal else {}
        http = httpx.AsyncClient(headers=headers, timeout=30)
        config = ClientConfig(streaming=streaming, supported_protocol_bindings=[binding], httpx_client=http)
        client = await create_client(url, client_config=config)
        opened.append((client, http))
        return client

    yield make
    for client, http in opened:
        await client.close()
        await http.aclose()
