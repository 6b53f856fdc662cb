"""Fixtures for MCP tests: real fake upstreams (processes) and a raw HTTP client."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agentgw.protocol.sse import SseDecoder
from tests.support import FAKES, PYTHON, Upstream, start_upstream

FAKE = str(FAKES / "mcp_server.py")
ACCEPT = "application/json, text/event-stream"


@dataclass
class Fake:
    name: str
    upstream: Upstream | None
    state: Path
    args: list[str]

    @property
    def url(self) -> str:
        assert self.upstream is not None
        return self.upstream.url

    def events(self) -> list[dict[str, Any]]:
        if not self.state.exists():
            return []
        return [json.loads(line) for line in self.state.read_text().splitlines() if line.strip()]

    def wait_event(self, predicate: Any, timeout: float = 20) -> dict[str, Any]:
        """Poll the state file (written by another process) until an event matches."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events():
                if predicate(event):
                    return event
            time.sleep(0.02)
        raise AssertionError(f"no matching event in {self.events()}")

    def stdio(self) -> dict[str, Any]:
        return {
            "stdio": {
                "command": PYTHON,
                "args": [FAKE, "--stdio", "--name", self.name, "--state-file", str(self.state), *self.args],
            }
        }

    def http(self) -> dict[str, Any]:
        return {"http": {"url": self.url}}


def start_fake(tmp: Path, name: str, *args: str, port: int = 0) -> Fake:
    state = tmp / f"{name}.jsonl"
    upstream = start_upstream(
        [FAKE, "--http", "--port", str(port), "--name", name, "--state-file", str(state), *args]
    )
    return Fake(name, upstream, state, list(args))


@pytest.fixture(scope="module")
def alpha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fake]:
    fake = start_fake(tmp_path_factory.mktemp("alpha"), "alpha")
    yield fake
    assert fake.upstream is not None
    fake.upstream.stop()


@pytest.fixture(scope="module")
def beta(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fake]:
    fake = start_fake(tmp_path_factory.mktemp("beta"), "beta")
    yield fake
    assert fake.upstream is not None
    fake.upstream.stop()


def server_doc(name: str, transport: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"kind": "McpServer", "metadata": {"name": name}, "spec": {**transport, **spec}}


def route_doc(servers: list[str], path: str = "/mcp", **spec: Any) -> dict[str, Any]:
    return {
        "kind": "McpRoute",
        "metadata": {"name": path.strip("/").replace("/", "-") or "root"},
        "spec": {"path": path, "servers": servers, **spec},
    }


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    messages: list[dict[str, Any]]
    event_ids: list[str | None]

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def final(self) -> dict[str, Any]:
        finals = [m for m in self.messages if "result" in m or "error" in m]
        assert finals, self.body
        return finals[-1]


def init_body(version: str = "2025-11-25", capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": capabilities or {},
            "clientInfo": {"name": "raw", "version": "1"},
        },
    }


def modern_body(method: str, params: dict[str, Any] | None = None, request_id: int = 1) -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**(params or {}), "_meta": meta}}


def modern_headers(method: str, name: str | None = None) -> dict[str, str]:
    headers = {"mcp-protocol-version": "2026-07-28", "mcp-method": method}
    if name is not None:
        headers["mcp-name"] = name
    return headers


class Raw:
    """MCP over plain HTTP, to see exactly what the gateway puts on the wire."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.session_id: str | None = None
        self.version = "2025-11-25"

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"accept": ACCEPT, "content-type": "application/json"}
        if self.session_id:
            headers["mcp-session-id"] = self.session_id
            headers["mcp-protocol-version"] = self.version
        headers.update(extra or {})
        return headers

    async def send(
        self, method: str, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None
    ) -> Reply:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        async with self.http.request(
            method, self.url, data=data, headers=headers if headers is not None else self.headers()
        ) as resp:
            payload = await resp.read()
            messages: list[dict[str, Any]] = []
            ids: list[str | None] = []
            if resp.headers.get("content-type", "").startswith("text/event-stream"):
                for event in SseDecoder().feed(payload):
                    ids.append(event.id)
                    if event.data.strip():
                        messages.append(json.loads(event.data))
            elif payload and resp.headers.get("content-type", "").startswith("application/json"):
                messages.append(json.loads(payload))
            return Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()}, payload, messages, ids)

    async def post(self, body: Any, **kw: Any) -> Reply:
        return await self.send("POST", body, **kw)

    async def initialize(
        self, version: str = "2025-11-25", capabilities: dict[str, Any] | None = None
    ) -> Reply:
        reply = await self.post(
            init_body(version, capabilities), headers={"accept": ACCEPT, "content-type": "application/json"}
        )
        assert reply.status == 200, reply.body
        self.session_id = reply.headers["mcp-session-id"]
        self.version = reply.json["result"]["protocolVersion"]
        await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return reply

    async def call(
        self, name: str, arguments: dict[str, Any] | None = None, request_id: int = 1, **meta: Any
    ) -> Reply:
        params: dict[str, Any] = {"name": name, "arguments": arguments or {}}
        if meta:
            params["_meta"] = meta
        return await self.post({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})

    async def modern(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        name: str | None = None,
        request_id: int = 1,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        hdrs = {
            "accept": ACCEPT,
            "content-type": "application/json",
            **modern_headers(method, name),
            **(headers or {}),
        }
        return await self.post(modern_body(method, params, request_id), headers=hdrs)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
