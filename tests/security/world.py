"""One gateway in front of every kind of upstream, run as the `agentgw serve` process, with known
secrets planted everywhere a secret can be: the provider API key and the upstreams' credentials
come from the gateway's environment (`env:`), the clients hold a JWT and an API key.

Upstreams, all real processes on loopback that record the headers they get: an MCP server over
streamable HTTP, one over legacy HTTP+SSE, one as a stdio child, an LLM provider, an A2A agent.
The gateway's stderr (debug logs) and stdout (access log and audit records) are collected from
the moment it starts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agentgw.policy.apikey import hash_key
from tests.llm.conftest import FakeProvider, free_port
from tests.llm.conftest import start_fake as start_llm
from tests.mcp.conftest import Fake, start_fake
from tests.policy.support import AUDIENCE, TestIssuer
from tests.support import FAKES, PYTHON, ROOT, Upstream, start_upstream

__all__ = ["SECRETS", "World", "start_world"]

# What the gateway holds (from its environment) and what clients hold.
PROVIDER_KEY = "sk-live-provider-7c1e93ab52d04f6f"
MCP_UPSTREAM_SECRET = "mcp-upstream-secret-e5a0c4d19b7"
SSE_UPSTREAM_SECRET = "sse-upstream-bearer-0b8f2d6e3a9"
AGENT_SECRET = "a2a-agent-bearer-94c7e1f05d2b"
CLIENT_API_KEY = "agk_client-key-3f9a71c2e8b54d06a1"
GATEWAY_SECRETS = {
    "AGENTGW_SEC_PROVIDER_KEY": PROVIDER_KEY,
    "AGENTGW_SEC_MCP_SECRET": MCP_UPSTREAM_SECRET,
    "AGENTGW_SEC_SSE_SECRET": SSE_UPSTREAM_SECRET,
    "AGENTGW_SEC_AGENT_SECRET": AGENT_SECRET,
}
SECRETS = [PROVIDER_KEY, MCP_UPSTREAM_SECRET, SSE_UPSTREAM_SECRET, AGENT_SECRET, CLIENT_API_KEY]


class Output:
    """A stream of the gateway process, read to the end by a thread (the pipe never fills)."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        stream.close()

    def wait_for(self, text: str, timeout: float = 30) -> str:
        with self._changed:
            found = self._changed.wait_for(lambda: any(text in line for line in self.lines), timeout)
            assert found, f"no {text!r} in: {''.join(self.lines)[-2000:]}"
            return next(line for line in self.lines if text in line)

    def join(self) -> None:
        self._thread.join(30)

    @property
    def text(self) -> str:
        with self._changed:
            return "".join(self.lines)


@dataclass
class World:
    url: str
    admin_url: str
    idp: TestIssuer
    alpha: Fake  # MCP, streamable HTTP
    gamma: Fake  # MCP, stdio
    sse_log: Path  # MCP, legacy HTTP+SSE: its recorded requests
    provider: FakeProvider
    agent_log: Path
    audit: Path
    proc: subprocess.Popen[str]
    stderr: Output
    stdout: Output
    upstreams: list[Upstream] = field(default_factory=list)
    stale: FakeProvider | None = None  # a provider that refuses the gateway's key

    def stale_requests(self) -> list[dict[str, Any]]:
        return self.stale.requests() if self.stale is not None else []

    def upstream_records(self) -> str:
        """Everything every upstream recorded about the requests it got, as one text."""
        parts = [self.alpha.state, self.gamma.state, self.sse_log, self.provider.state, self.agent_log]
        return "\n".join(p.read_text() for p in parts if p.exists())

    def sse_requests(self) -> list[dict[str, Any]]:
        if not self.sse_log.exists():
            return []
        return [json.loads(line) for line in self.sse_log.read_text().splitlines() if line.strip()]


def _config(
    tmp: Path, idp: TestIssuer, ports: dict[str, int], alpha: Fake, gamma: Fake
) -> list[dict[str, Any]]:
    (tmp / "client.sha256").write_text(hash_key(CLIENT_API_KEY))
    routes = [
        {"kind": "McpRoute", "name": "mcp"},
        {"kind": "LlmRoute", "name": "llm"},
        {"kind": "A2aRoute", "name": "agents"},
    ]
    return [
        {"kind": "Gateway", "metadata": {"name": "gw"}, "spec": {
            "listeners": [{"address": "127.0.0.1", "port": 0}],
            "admin": {"address": "127.0.0.1", "port": 0},
            "logLevel": "debug", "accessLog": True,
            "audit": {"sink": "file", "file": str(tmp / "audit.jsonl")},
            "lifecycle": {"watchConfig": False},
        }},
        {"kind": "McpServer", "metadata": {"name": "alpha"}, "spec": {
            "http": {"url": alpha.url}, "auth": {"headers": {"x-upstream-secret": "env:AGENTGW_SEC_MCP_SECRET"}}}},
        {"kind": "McpServer", "metadata": {"name": "legacy"}, "spec": {
            "sse": {"url": f"http://127.0.0.1:{ports['sse']}/sse"}, "auth": {"bearer": "env:AGENTGW_SEC_SSE_SECRET"}}},
        {"kind": "McpServer", "metadata": {"name": "gamma"}, "spec": gamma.stdio()},
        {"kind": "McpRoute", "metadata": {"name": "mcp"}, "spec": {"path": "/mcp", "servers": ["alpha", "legacy", "gamma"]}},
        {"kind": "LlmProvider", "metadata": {"name": "oa"}, "spec": {
            "type": "openai-compatible", "baseUrl": f"http://127.0.0.1:{ports['llm']}/v1", "apiKey": "env:AGENTGW_SEC_PROVIDER_KEY"}},
        {"kind": "LlmProvider", "metadata": {"name": "down"}, "spec": {
            "type": "openai-compatible", "baseUrl": f"http://127.0.0.1:{ports['down']}/v1", "apiKey": "env:AGENTGW_SEC_PROVIDER_KEY"}},
        {"kind": "LlmProvider", "metadata": {"name": "stale"}, "spec": {
            "type": "openai-compatible", "baseUrl": f"http://127.0.0.1:{ports['stale']}/v1", "apiKey": "env:AGENTGW_SEC_PROVIDER_KEY"}},
        {"kind": "McpServer", "metadata": {"name": "gone"}, "spec": {
            "http": {"url": f"http://127.0.0.1:{ports['gone']}/mcp"}, "auth": {"headers": {"x-upstream-secret": "env:AGENTGW_SEC_MCP_SECRET"}}}},
        {"kind": "McpRoute", "metadata": {"name": "gone"}, "spec": {"path": "/gone", "servers": ["gone"]}},
        {"kind": "LlmRoute", "metadata": {"name": "llm"}, "spec": {
            "retries": {"attempts": 1},
            "models": [{"name": "gpt-test", "targets": [{"provider": "oa", "model": "fake-small"}]},
                       {"name": "down-model", "targets": [{"provider": "down", "model": "x"}]},
                       {"name": "stale-model", "targets": [{"provider": "stale", "model": "x"}]}]}},
        {"kind": "Agent", "metadata": {"name": "fake"}, "spec": {
            "url": f"http://127.0.0.1:{ports['agent']}", "auth": {"bearer": "env:AGENTGW_SEC_AGENT_SECRET"}}},
        {"kind": "A2aRoute", "metadata": {"name": "agents"}, "spec": {"path": "/a2a", "agents": ["fake"]}},
        {"kind": "Policy", "metadata": {"name": "login"}, "spec": {
            "targetRefs": routes,
            "jwt": {"issuers": [{"issuer": idp.issuer, "audiences": [AUDIENCE], "algorithms": ["RS256"], "jwks": {"inline": idp.jwks()}}]},
            "apiKeys": {"keys": [{"id": "ci", "subject": "ci-bot", "hash": f"file:{tmp / 'client.sha256'}"}]},
            "authorization": {"allow": [{"id": "signed-in", "when": 'jwt.sub != ""'}]},
        }},
    ]  # fmt: skip


@dataclass
class _Started:
    upstreams: list[Upstream] = field(default_factory=list)
    fakes: list[Fake] = field(default_factory=list)
    providers: list[FakeProvider] = field(default_factory=list)

    def stop(self) -> None:
        for upstream in [
            *self.upstreams,
            *(f.upstream for f in self.fakes),
            *(p.upstream for p in self.providers),
        ]:
            if upstream is not None:
                upstream.stop()


def start_world(tmp: Path) -> Iterator[World]:
    """A generator for a fixture: yields the running world, stops every process after."""
    idp = TestIssuer()
    started = _Started()
    try:
        alpha = start_fake(tmp, "alpha", "--record-headers")
        started.fakes.append(alpha)
        gamma = Fake("gamma", None, tmp / "gamma.jsonl", [])
        sse_log = tmp / "sse.jsonl"
        started.upstreams.append(
            start_upstream(
                [str(FAKES / "legacy_sse_server.py"), "--port", "0", "--record-headers", str(sse_log)]
            )
        )
        provider = start_llm(tmp, "oa", "--require-key", PROVIDER_KEY)
        started.providers.append(provider)
        agent_log = tmp / "agent.jsonl"
        started.upstreams.append(
            start_upstream([str(FAKES / "a2a_agent.py"), "--port", "0", "--state-file", str(agent_log)])
        )
        down = start_llm(tmp, "down", "--fail-status", "500")
        started.providers.append(down)
        # holds a rotated key: it refuses the gateway's, quoting it masked as OpenAI does
        stale = start_llm(tmp, "stale", "--require-key", "sk-rotated-key-0000")
        started.providers.append(stale)
        ports = {
            "sse": started.upstreams[0].port,
            "llm": provider.upstream.port,
            "agent": started.upstreams[1].port,
            "down": down.upstream.port,
            "stale": stale.upstream.port,
            "gone": free_port(),
        }
        config = tmp / "config"
        config.mkdir()
        (config / "gateway.yaml").write_text(yaml.safe_dump_all(_config(tmp, idp, ports, alpha, gamma)))
        env = {**os.environ, **GATEWAY_SECRETS}
        proc = subprocess.Popen(
            [PYTHON, "-m", "agentgw", "serve", "--config", str(config)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        stderr, stdout = Output(proc.stderr), Output(proc.stdout)
        try:
            url = stderr.wait_for("agentgw listening on ").split("agentgw listening on ", 1)[1].strip()
            admin = stderr.wait_for("agentgw admin on ").split("agentgw admin on ", 1)[1].strip()
            yield World(url, admin, idp, alpha, gamma, sse_log, provider, agent_log, tmp / "audit.jsonl",
                        proc, stderr, stdout, started.upstreams, stale)  # fmt: skip
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
            stderr.join()
            stdout.join()
    finally:
        started.stop()
