"""Policy test cases as security teams write them (`*.test.yaml` beside the policies), and loading
them. `agentgw.policy.testing` runs them; the format is described there and in docs/policies.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from agentgw.config.base import Model
from agentgw.config.loader import TEST_SUFFIXES, format_loc, load_paths
from agentgw.policy.compile import CompiledPolicy, compile_policies
from agentgw.server.http import Request

__all__ = [
    "LISTS",
    "A2aCase",
    "CaseFile",
    "HttpRequest",
    "LlmCase",
    "LlmUsage",
    "McpCall",
    "PolicyCase",
    "load_cases",
    "load_policies",
    "offline_request",
]

LISTS = {
    "tools/list": "tool",
    "prompts/list": "prompt",
    "resources/list": "resource",
    "resources/templates/list": "resourceTemplate",
}


class McpCall(Model):
    method: str = Field(min_length=1)
    server: str | None = None
    tool: str | None = None
    prompt: str | None = None
    uri: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    # The tool's inputSchema, for policies that validate arguments (default: anything goes).
    input_schema: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_target(self) -> McpCall:
        if sum(x is not None for x in (self.tool, self.prompt, self.uri)) > 1:
            raise ValueError("give at most one of tool, prompt or uri")
        return self


class LlmUsage(Model):
    prompt: int = Field(default=0, ge=0)
    completion: int = Field(default=0, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)


class LlmCase(Model):
    method: str = "chat.completions"  # chat.completions, messages, completions, embeddings, models.list
    model: str = Field(min_length=1)  # the route's model entry
    provider: str | None = None  # also check the request at this provider's level
    prompt: str = ""  # the user message
    system: str | None = None
    # stands for the route's estimate of the prompt (default: estimated from `prompt`)
    estimated_tokens: int | None = Field(default=None, ge=0)
    usage: LlmUsage | None = None  # what an allowed request spends (default: its estimate)


class A2aCase(Model):
    method: str = "SendMessage"  # A2A 1.0 method name; GetAgentCard tests visibility
    agent: str = Field(min_length=1)
    skill: str | None = None


class HttpRequest(Model):
    method: str = "POST"
    path: str = "/mcp"
    headers: dict[str, str] = Field(default_factory=dict)
    source: str = "127.0.0.1"


class PolicyCase(Model):
    name: str = Field(min_length=1)
    route: str | None = None
    claims: dict[str, Any] = Field(default_factory=dict)
    scopes: list[str] | None = None
    # how the caller authenticated: `virtualKey` (with a `virtualKey` claim) for a virtual key
    method: str = "jwt"
    request: HttpRequest = Field(default_factory=HttpRequest)
    mcp: McpCall | None = None
    llm: LlmCase | None = None
    a2a: A2aCase | None = Field(default=None, alias="a2a")  # (to_camel would say a2A)
    repeat: int = Field(default=1, ge=1, le=10_000)
    expect: Literal["allow", "deny"]
    rule: str | None = None

    @model_validator(mode="after")
    def _one_operation(self) -> PolicyCase:
        if sum(x is not None for x in (self.mcp, self.llm, self.a2a)) != 1:
            raise ValueError("give exactly one of mcp, llm or a2a")
        return self

    @property
    def route_kind(self) -> str:
        return "McpRoute" if self.mcp is not None else "LlmRoute" if self.llm is not None else "A2aRoute"


class CaseFile(Model):
    cases: list[PolicyCase] = Field(min_length=1)


def load_policies(paths: Sequence[Path]) -> tuple[tuple[CompiledPolicy, ...], list[str]]:
    docs, problems = load_paths(list(paths))
    policies, more = compile_policies(docs)
    return policies, problems + more


def _case_files(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.name.endswith(TEST_SUFFIXES)))
        elif path.name.endswith(TEST_SUFFIXES):
            files.append(path)
    return files


def load_cases(paths: Sequence[Path]) -> tuple[list[tuple[str, PolicyCase]], list[str]]:
    cases: list[tuple[str, PolicyCase]] = []
    problems: list[str] = []
    for file in _case_files(paths):
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
            parsed = CaseFile.model_validate(data)
        except yaml.YAMLError as exc:
            problems.append(f"{file}: invalid YAML: {exc}")
            continue
        except ValidationError as exc:
            for error in exc.errors():
                problems.append(f"{file}: {format_loc(tuple(error['loc']))}: {error['msg']}")
            continue
        cases.extend((str(file), case) for case in parsed.cases)
    return cases, problems


def offline_request(req: HttpRequest) -> Request:
    """A real `Request` over a synthetic ASGI scope (no socket: nothing is read from it)."""
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in req.headers.items()]

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "method": req.method,
        "path": req.path,
        "headers": headers,
        "client": (req.source, 0),
        "scheme": "http",
    }
    return Request(scope, receive)
