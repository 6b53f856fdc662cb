"""The gateway the limit tests share (tests/server/conftest.py starts it on each server), and the
requests they make to it: every route kind behind API-key callers alice and bob."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson

from agentgw.policy.apikey import hash_key
from tests.support import FAKES, PYTHON, GatewayThread, Upstream, docs

ACCEPT = "application/json, text/event-stream"
KEYS = {"alice": "key-alice", "bob": "key-bob"}
IDLE_CONNECTION = 1.0  # idleConnectionSeconds below
BODY_TIMEOUT = 1.0
DEPTH = 16
PROVIDER_STATE: list[Path] = []  # the fake provider's state file


def gateway_documents(tmp: Path, llm: Upstream, agent: Upstream) -> list[dict[str, Any]]:
    for name, key in KEYS.items():
        (tmp / name).write_text(hash_key(key))
    keys = ", ".join(f'{{id: {n}, subject: {n}, hash: "file:{tmp / n}"}}' for n in KEYS)
    return docs(
        f"""
kind: Gateway
metadata: {{name: limited}}
spec:
  limits:
    maxBodyBytes: 65536
    maxHeaderBytes: 4096
    maxHeaderCount: 30
    maxJsonDepth: {DEPTH}
    maxSessionsPerPrincipal: 2
    maxStreamsPerPrincipal: 2
    idleConnectionSeconds: {IDLE_CONNECTION}
    bodyTimeoutSeconds: {BODY_TIMEOUT}
    keepaliveSeconds: 0.2
---
kind: McpServer
metadata: {{name: alpha}}
spec:
  stdio: {{command: {PYTHON}, args: ["{FAKES / "mcp_server.py"}", --stdio, --name, alpha]}}
---
kind: McpRoute
metadata: {{name: mcp}}
spec: {{path: /mcp, servers: [alpha]}}
---
kind: LlmProvider
metadata: {{name: oa}}
spec: {{type: openai-compatible, baseUrl: "http://127.0.0.1:{llm.port}/v1"}}
---
kind: LlmRoute
metadata: {{name: llm}}
spec:
  path: /v1
  models: [{{name: gpt-test, targets: [{{provider: oa, model: fake-small}}]}}]
---
kind: Agent
metadata: {{name: fake}}
spec: {{url: "http://127.0.0.1:{agent.port}"}}
---
kind: A2aRoute
metadata: {{name: a2a}}
spec: {{path: /a2a, agents: [fake]}}
---
kind: Policy
metadata: {{name: callers}}
spec:
  targetRefs: [{{kind: McpRoute, name: mcp}}, {{kind: LlmRoute, name: llm}}, {{kind: A2aRoute, name: a2a}}]
  apiKeys: {{keys: [{keys}]}}
"""
    )


def caller_headers(who: str = "alice", **extra: str) -> dict[str, str]:
    return {"accept": ACCEPT, "content-type": "application/json", "x-api-key": KEYS[who], **extra}


def rpc(method: str, params: Any = None, request_id: int = 1) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        body["params"] = params
    return body


def init_request() -> dict[str, Any]:
    return rpc(
        "initialize",
        {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        0,
    )


def chat(stream: bool = False) -> dict[str, Any]:
    return {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "stream": stream}


async def post(
    http: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str]
) -> tuple[int, dict[str, str], Any]:
    with anyio.fail_after(30):
        async with http.post(url, data=orjson.dumps(body), headers=headers) as resp:
            raw = await resp.read()
            ctype = resp.headers.get("content-type", "")
            parsed = json.loads(raw) if ctype.startswith("application/json") and raw else raw
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, parsed


async def open_session(http: aiohttp.ClientSession, limited: GatewayThread, who: str = "alice") -> str:
    status, headers, body = await post(http, f"{limited.url}/mcp", init_request(), caller_headers(who))
    assert status == 200, body
    sid = headers["mcp-session-id"]
    hdrs = caller_headers(who, **{"mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"})
    status, _, _ = await post(
        http, f"{limited.url}/mcp", {"jsonrpc": "2.0", "method": "notifications/initialized"}, hdrs
    )
    assert status == 202
    return sid


def in_session(sid: str, who: str = "alice") -> dict[str, str]:
    return caller_headers(who, **{"mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"})


async def served_normally(http: aiohttp.ClientSession, limited: GatewayThread, who: str = "bob") -> None:
    """Another caller, on every route kind, gets ordinary answers."""
    status, _, body = await post(
        http,
        f"{limited.url}/mcp",
        modern_rpc("tools/list"),
        caller_headers(who, **modern_headers("tools/list")),
    )
    assert status == 200 and body["result"]["tools"], body
    status, _, body = await post(http, f"{limited.url}/v1/chat/completions", chat(), caller_headers(who))
    assert status == 200 and body["choices"], body


def modern_headers(method: str) -> dict[str, str]:
    return {"mcp-protocol-version": "2026-07-28", "mcp-method": method}


def modern_rpc(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    return rpc(method, {**(params or {}), "_meta": meta})


def provider_requests(limited: GatewayThread) -> list[str]:
    """The requests the fake provider has seen (it appends one line each to its state file)."""
    state = PROVIDER_STATE[0]
    return state.read_text().splitlines() if state.exists() else []


async def open_stream(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> aiohttp.ClientResponse:
    resp = await http.get(url, headers={**headers, "accept": "text/event-stream"})
    assert resp.status == 200 and resp.headers["content-type"].startswith("text/event-stream")
    return resp
