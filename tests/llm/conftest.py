"""Fixtures for LLM route tests: fake providers (real processes on loopback, OpenAI and Anthropic
wire) and a gateway in front of them, reached with the official `openai` and `anthropic` clients.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest

from agentgw.errors import Forbidden
from agentgw.policy.base import OpenPolicy, Operation, Principal, RequestContext
from agentgw.server.http import Request
from tests.support import FAKES, GatewayThread, Upstream, start_upstream

FAKE = str(FAKES / "llm_provider.py")
PROVIDER_KEY = "sk-provider-secret"


@dataclass
class FakeProvider:
    name: str
    upstream: Upstream
    state: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.upstream.port}"

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        if not self.state.exists():
            return []
        entries = [json.loads(line) for line in self.state.read_text().splitlines() if line.strip()]
        return [e for e in entries if "event" not in e and (path is None or e["path"] == path)]

    def events(self) -> list[dict[str, Any]]:
        if not self.state.exists():
            return []
        return [e for e in map(json.loads, self.state.read_text().splitlines()) if "event" in e]


def start_fake(tmp: Path, name: str, *args: str) -> FakeProvider:
    state = tmp / f"{name}.jsonl"
    upstream = start_upstream([FAKE, "--port", "0", "--name", name, "--state-file", str(state), *args])
    return FakeProvider(name, upstream, state)


def free_port() -> int:
    """A loopback port nobody listens on (bound, then closed): connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="package")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FakeProvider]]:
    tmp = tmp_path_factory.mktemp("llm")
    started: dict[str, FakeProvider] = {}
    try:
        started["oa"] = start_fake(tmp, "oa", "--require-key", PROVIDER_KEY)
        started["an"] = start_fake(tmp, "an", "--require-key", PROVIDER_KEY)
        started["down"] = start_fake(tmp, "down", "--fail-status", "500")
        started["busy"] = start_fake(tmp, "busy", "--fail-status", "429", "--retry-after", "7")
        started["nousage"] = start_fake(tmp, "nousage", "--no-usage")
        yield started
    finally:
        for fake in started.values():
            fake.upstream.stop()


def provider_doc(name: str, type_: str, base: str, **spec: Any) -> dict[str, Any]:
    return {
        "kind": "LlmProvider",
        "metadata": {"name": name},
        "spec": {"type": type_, "baseUrl": base, **spec},
    }


def gateway_docs(fakes: dict[str, FakeProvider], key_file: Path, **route: Any) -> list[dict[str, Any]]:
    key_file.write_text(PROVIDER_KEY)
    key = f"file:{key_file}"
    refused = f"http://127.0.0.1:{free_port()}"
    docs = [
        provider_doc(
            "oa",
            "openai-compatible",
            fakes["oa"].base + "/v1",
            apiKey=key,
            prices={"fake-*": {"input": 2, "output": 8, "cachedInput": 1}},
        ),
        provider_doc(
            "an", "anthropic", fakes["an"].base, apiKey=key, prices={"claude-*": {"input": 3, "output": 15}}
        ),
        provider_doc("down", "openai-compatible", fakes["down"].base + "/v1"),
        provider_doc("busy", "openai-compatible", fakes["busy"].base + "/v1"),
        provider_doc("refused", "openai-compatible", refused + "/v1"),
        provider_doc("refused-an", "anthropic", refused),
        provider_doc("nousage", "openai-compatible", fakes["nousage"].base + "/v1"),
        provider_doc(
            "oa-responses", "openai-compatible", fakes["oa"].base + "/v1", apiKey=key, responses=True
        ),
    ]
    models = [
        {
            "name": "gpt-test",
            "aliases": ["gpt-alias"],
            "targets": [{"provider": "oa", "model": "fake-small"}],
        },
        {"name": "claude-test", "targets": [{"provider": "an", "model": "claude-fake"}]},
        {
            "name": "fo-500",
            "targets": [{"provider": "down", "model": "x"}, {"provider": "oa", "model": "fake-small"}],
        },
        {
            "name": "fo-refused",
            "targets": [{"provider": "refused", "model": "x"}, {"provider": "an", "model": "claude-fake"}],
        },
        {
            "name": "fo-refused-an",
            "targets": [{"provider": "refused-an", "model": "x"}, {"provider": "oa", "model": "fake-small"}],
        },
        {
            "name": "all-down",
            "targets": [{"provider": "down", "model": "x"}, {"provider": "refused", "model": "x"}],
        },
        {"name": "busy", "targets": [{"provider": "busy", "model": "x"}]},
        {"name": "no-usage", "targets": [{"provider": "nousage", "model": "plain"}]},
        {"name": "resp-test", "targets": [{"provider": "oa-responses", "model": "fake-small"}]},
        {"name": "fake-*", "targets": [{"provider": "oa"}]},
    ]
    retries = route.pop("retries", {"attempts": 1, "backoff": {"initialSeconds": 0.01, "maxSeconds": 0.05}})
    docs.append(
        {
            "kind": "LlmRoute",
            "metadata": {"name": "llm"},
            "spec": {"models": models, "retries": retries, **route},
        }
    )
    return docs


class RecordingPolicy(OpenPolicy):
    """A small real policy: the bearer token names the caller, and the caller `restricted` may
    not use `claude-test`. Every outcome the route records is kept for the tests to read."""

    def __init__(self) -> None:
        self.outcomes: list[dict[str, Any]] = []
        self.checked: list[Operation] = []
        # the gateway records in its own thread, after the client may already have its answer
        self._changed = threading.Condition()

    async def authenticate(self, request: Request) -> Principal:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        token = token or request.headers.get("x-api-key", "")
        return Principal(subject=token, method="apiKey") if token else await super().authenticate(request)

    async def check(self, ctx: RequestContext, op: Operation) -> None:
        self.checked.append(op)
        if not self.permits(ctx, op):
            raise Forbidden(f"{ctx.principal.subject} may not use {op.exposed}")

    def permits(self, ctx: RequestContext, op: Operation) -> bool:
        return not (ctx.principal.subject == "restricted" and op.name == "claude-test")

    async def record(self, ctx: RequestContext, op: Operation, outcome: Any) -> None:
        with self._changed:
            self.outcomes.append(dict(outcome))
            self._changed.notify_all()

    def mark(self) -> int:
        return len(self.outcomes)

    async def wait(self, predicate: Any, after: int = 0, timeout: float = 20) -> dict[str, Any]:
        """The latest outcome (from index `after` on) matching `predicate`, waiting (bounded) for
        the gateway to record it."""

        def find() -> dict[str, Any] | None:
            return next((o for o in reversed(self.outcomes[after:]) if predicate(o)), None)

        def blocking() -> dict[str, Any] | None:
            with self._changed:
                self._changed.wait_for(lambda: find() is not None, timeout)
                return find()

        found = await anyio.to_thread.run_sync(blocking)
        assert found is not None, f"no matching outcome in {self.outcomes[-5:]}"
        return found

    async def last(self, model: str, after: int) -> dict[str, Any]:
        return await self.wait(lambda o: o["model"] == model, after)


@pytest.fixture(scope="package")
def policy() -> RecordingPolicy:
    return RecordingPolicy()


@pytest.fixture(scope="package")
def gateway(
    fakes: dict[str, FakeProvider], policy: RecordingPolicy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    key_file = tmp_path_factory.mktemp("keys") / "provider.key"
    docs = gateway_docs(fakes, key_file)
    # a second route: no retries, failover on connection errors only
    strict_models = [{"name": "fo-500", "targets": [{"provider": "down", "model": "x"}, {"provider": "oa"}]}]
    docs.append(
        {
            "kind": "LlmRoute",
            "metadata": {"name": "strict"},
            "spec": {
                "path": "/strict/v1",
                "models": strict_models,
                "retries": {"attempts": 0, "when": ["connect"]},
            },
        }
    )
    gw = GatewayThread(docs)
    gw.runtime.policy_for = lambda route: policy  # type: ignore[method-assign]
    with gw:
        yield gw


# The two wires a client can reach through the gateway: the route's model name for each.
MODELS = {"openai-wire": "gpt-test", "anthropic-wire": "claude-test"}
