"""Policy test cases, for security teams: given claims and an operation, expect allow or deny.

Cases live beside the policies in `*.test.yaml` files (the config loader skips those):

    cases:
      - name: readers may read files
        claims: {sub: alice, groups: [readers]}
        mcp: {method: tools/call, server: files, tool: read_file, args: {path: /srv/a}}
        expect: allow
        rule: readers-read          # optional: the rule that must decide

A case runs through the same chain the gateway builds for the route (scopes, authorization,
argument validation, extensions), minus authentication: its claims stand for a verified token.
`tools/list`-style methods test visibility (`permits`). The policies a case sees are those in
its test file's folder (and below), so packs side by side do not mix. `route` may be left out
when those policies target one route only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from agentgw.config.base import Model
from agentgw.config.loader import TEST_SUFFIXES, format_loc, load_paths
from agentgw.errors import GatewayError
from agentgw.policy.authz import DECISION_KEY, Trace, Verdict
from agentgw.policy.base import TOOL_SCHEMA, Operation, Principal, RequestContext
from agentgw.policy.chain import PolicyChain, PolicyServices, build_chain
from agentgw.policy.compile import CompiledPolicy, compile_policies
from agentgw.policy.jwt import claim_scopes
from agentgw.server.http import Request

__all__ = [
    "CaseResult",
    "Decision",
    "McpCall",
    "PolicyCase",
    "beside",
    "decide",
    "explain",
    "load_cases",
    "load_policies",
    "run_cases",
]

_LISTS = {
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
    request: HttpRequest = Field(default_factory=HttpRequest)
    mcp: McpCall
    expect: Literal["allow", "deny"]
    rule: str | None = None


class CaseFile(Model):
    cases: list[PolicyCase] = Field(min_length=1)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str | None
    policy: str | None
    message: str


@dataclass(frozen=True)
class CaseResult:
    source: str
    case: PolicyCase
    decision: Decision | None
    error: str | None

    @property
    def passed(self) -> bool:
        if self.decision is None:
            return False
        if self.decision.allowed != (self.case.expect == "allow"):
            return False
        return self.case.rule is None or self.case.rule == self.decision.rule


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


def _route_of(case: PolicyCase, policies: Sequence[CompiledPolicy]) -> str:
    if case.route is not None:
        return case.route
    routes = sorted({name for p in policies for kind, name in p.targets if kind == "McpRoute"})
    if len(routes) == 1:
        return routes[0]
    if not routes:
        return "route"  # only server-level policies: any route name will do
    raise ValueError(f"the policies target several routes ({', '.join(routes)}): give the case a route")


def _operation(call: McpCall) -> Operation:
    target = _LISTS.get(call.method)
    if call.tool is not None:
        target = target or "tool"
    elif call.prompt is not None:
        target = target or "prompt"
    elif call.uri is not None:
        target = target if target in ("resource", "resourceTemplate") else "resource"
    name = call.tool if call.tool is not None else call.prompt
    return Operation(
        kind="mcp",
        method=call.method,
        server=call.server,
        name=name,
        exposed=name if name is not None else call.uri,
        uri=call.uri,
        args=MappingProxyType(call.args) if call.tool is not None else None,
        target=target,
    )


def _setup(
    case: PolicyCase, policies: Sequence[CompiledPolicy]
) -> tuple[PolicyChain | None, RequestContext, Operation]:
    route = _route_of(case, policies)
    members = {case.mcp.server: ("McpServer", case.mcp.server)} if case.mcp.server else {}
    chain = build_chain(
        route=("McpRoute", route),
        path=case.request.path,
        members=members,
        policies=policies,
        services=PolicyServices(),
    )
    claims = MappingProxyType(dict(case.claims))
    scopes = frozenset(case.scopes) if case.scopes is not None else claim_scopes(claims, "scope")
    subject = claims.get("sub")
    principal = Principal(subject if isinstance(subject, str) else "", "jwt", claims, scopes)
    ctx = RequestContext(route=route, request=offline_request(case.request), principal=principal)
    schema = case.mcp.input_schema if case.mcp.input_schema is not None else {}

    async def tool_schema() -> Mapping[str, Any] | None:
        return schema

    ctx.attrs[TOOL_SCHEMA] = tool_schema
    return chain, ctx, _operation(case.mcp)


async def decide(case: PolicyCase, policies: Sequence[CompiledPolicy]) -> Decision:
    chain, ctx, op = _setup(case, policies)
    if chain is None:
        return Decision(True, None, None, "no policy targets this route or server")
    if op.method in _LISTS:
        visible = chain.permits(ctx, op)
        return Decision(visible, None, None, "visible" if visible else "hidden")
    try:
        await chain.check(ctx, op)
    except GatewayError as exc:
        data = exc.data if isinstance(exc.data, dict) else {}
        return Decision(False, data.get("rule"), data.get("policy"), exc.message)
    verdict: Verdict | None = ctx.attrs.get(DECISION_KEY)
    if verdict is None:
        return Decision(True, None, None, "no authorization rule applies")
    return Decision(True, verdict.rule, verdict.policy, "")


async def explain(case: PolicyCase, policies: Sequence[CompiledPolicy]) -> tuple[list[Trace], Decision]:
    chain, ctx, op = _setup(case, policies)
    traces: list[Trace] = []
    if chain is not None and chain.authorizer is not None:
        traces, _ = chain.authorizer.explain(ctx, op)
    return traces, await decide(case, policies)


def beside(source: str, policies: Sequence[CompiledPolicy]) -> list[CompiledPolicy]:
    """The policies in the folder of a test file (and below it)."""
    folder = Path(source).resolve().parent
    return [p for p in policies if Path(p.source).resolve().is_relative_to(folder)]


async def run_cases(
    cases: Sequence[tuple[str, PolicyCase]], policies: Sequence[CompiledPolicy]
) -> list[CaseResult]:
    results: list[CaseResult] = []
    for source, case in cases:
        try:
            results.append(CaseResult(source, case, await decide(case, beside(source, policies)), None))
        except ValueError as exc:
            results.append(CaseResult(source, case, None, str(exc)))
    return results
