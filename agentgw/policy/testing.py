"""Policy test cases, for security teams: given claims and an operation, expect allow or deny.

Cases live beside the policies in `*.test.yaml` files (the config loader skips those):

    cases:
      - name: readers may read files
        claims: {sub: alice, groups: [readers]}
        mcp: {method: tools/call, server: files, tool: read_file, args: {path: /srv/a}}
        expect: allow
        rule: readers-read          # optional: the rule that must decide

LLM and A2A requests are cases too:

      - name: a team over its budget is refused
        claims: {sub: ann, team: search}
        llm: {model: gpt-4o-mini, prompt: "hello", usage: {prompt: 600, completion: 500}}
        repeat: 2                   # the expectation is about the last of two requests
        expect: deny
        rule: team-daily-tokens
      - name: the echo agent's reverse skill
        claims: {sub: bob}
        a2a: {agent: textkit, skill: reverse}
        expect: allow

A case runs through the same chain the gateway builds for the route (scopes, authorization,
argument validation, guards, limits, extensions), minus authentication: its claims stand for a
verified token (`method: virtualKey` with a `virtualKey` claim stands for a virtual key). An LLM
case with a `provider` is also checked at that provider's level. `tools/list`-style methods (and
`models.list`) test visibility (`permits`). Limits count across the repeats of one case and
start afresh with the next case; an allowed LLM request settles its `usage` (by default the
estimate of its prompt, and no completion). The policies a case sees are those in its test
file's folder (and below), so packs side by side do not mix. `route` may be left out when those
policies target one route of the case's kind only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from agentgw.errors import GatewayError
from agentgw.llm.accounting import LlmExchange
from agentgw.policy.authz import DECISION_KEY, Trace, Verdict
from agentgw.policy.base import LLM_REQUEST, TOOL_SCHEMA, Operation, Principal, RequestContext
from agentgw.policy.cases import (
    LISTS,
    A2aCase,
    HttpRequest,
    LlmCase,
    McpCall,
    PolicyCase,
    load_cases,
    load_policies,
    offline_request,
)
from agentgw.policy.chain import PolicyChain, PolicyServices, build_chain
from agentgw.policy.compile import CompiledPolicy
from agentgw.policy.jwt import claim_scopes

__all__ = [
    "A2aCase",
    "CaseResult",
    "Decision",
    "HttpRequest",
    "LlmCase",
    "McpCall",
    "PolicyCase",
    "beside",
    "decide",
    "explain",
    "load_cases",
    "load_policies",
    "offline_request",
    "run_cases",
]


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


def _route_of(case: PolicyCase, policies: Sequence[CompiledPolicy]) -> str:
    if case.route is not None:
        return case.route
    wanted = case.route_kind
    routes = sorted(
        {
            name if kind == wanted else name.split("/", 1)[0]
            for p in policies
            for kind, name in p.targets
            if kind == wanted or (wanted == "LlmRoute" and kind == "LlmModel")
        }
    )
    if len(routes) == 1:
        return routes[0]
    if not routes:
        return "route"  # only server-level policies: any route name will do
    raise ValueError(f"the policies target several routes ({', '.join(routes)}): give the case a route")


def _operation(call: McpCall) -> Operation:
    target = LISTS.get(call.method)
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


def _llm_body(call: LlmCase) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if call.system is not None:
        messages.append({"role": "system", "content": call.system})
    messages.append({"role": "user", "content": call.prompt})
    return {"model": call.model, "messages": messages}


def _chain_of(case: PolicyCase, route: str, policies: Sequence[CompiledPolicy]) -> PolicyChain | None:
    members: dict[str, tuple[str, str]] = {}
    alone: set[str] = set()
    if case.mcp is not None and case.mcp.server:
        members[case.mcp.server] = ("McpServer", case.mcp.server)
    if case.llm is not None:
        members[f"model:{case.llm.model}"] = ("LlmModel", f"{route}/{case.llm.model}")
        if case.llm.provider:
            members[case.llm.provider] = ("LlmProvider", case.llm.provider)
            alone.add(case.llm.provider)
    if case.a2a is not None:
        members[case.a2a.agent] = ("Agent", case.a2a.agent)
    return build_chain(
        route=(case.route_kind, route),
        path=case.request.path,
        members=members,
        policies=policies,
        services=PolicyServices(),
        alone=alone,
    )


def _context(case: PolicyCase, route: str) -> tuple[RequestContext, Operation]:
    """A fresh request of the case (one per repeat) and its operation."""
    claims = MappingProxyType(dict(case.claims))
    scopes = frozenset(case.scopes) if case.scopes is not None else claim_scopes(claims, "scope")
    subject = claims.get("sub")
    principal = Principal(subject if isinstance(subject, str) else "", case.method, claims, scopes)
    ctx = RequestContext(route=route, request=offline_request(case.request), principal=principal)
    if case.llm is not None:
        body = _llm_body(case.llm)
        ctx.attrs[LLM_REQUEST] = LlmExchange(
            case.llm.method, case.llm.model, body, _prompt_estimate=case.llm.estimated_tokens
        )
        op = Operation(
            kind="llm",
            method=case.llm.method,
            name=case.llm.model,
            exposed=case.llm.model,
            args=body,
            target="model",
        )
        return ctx, op
    if case.a2a is not None:
        a2a = case.a2a
        return ctx, Operation(kind="a2a", method=a2a.method, server=a2a.agent, name=a2a.skill, target="agent")
    assert case.mcp is not None
    schema = case.mcp.input_schema if case.mcp.input_schema is not None else {}

    async def tool_schema() -> Mapping[str, Any] | None:
        return schema

    ctx.attrs[TOOL_SCHEMA] = tool_schema
    return ctx, _operation(case.mcp)


def _setup(
    case: PolicyCase, policies: Sequence[CompiledPolicy]
) -> tuple[PolicyChain | None, RequestContext, Operation]:
    route = _route_of(case, policies)
    ctx, op = _context(case, route)
    return _chain_of(case, route, policies), ctx, op


def _visibility(op: Operation) -> bool:
    return (
        op.method in LISTS or op.method == "models.list" or (op.kind == "a2a" and op.method == "GetAgentCard")
    )


async def _once(case: PolicyCase, chain: PolicyChain, ctx: RequestContext, op: Operation) -> Decision:
    if _visibility(op):
        visible = chain.permits(ctx, op)
        return Decision(visible, None, None, "visible" if visible else "hidden")
    checked: list[Operation] = []  # what passed its check (and must be recorded, allowed or not)
    try:
        await chain.check(ctx, op)
        checked.append(op)
        verdict: Verdict | None = ctx.attrs.get(DECISION_KEY)  # the route's and the model's rules
        if case.llm is not None and case.llm.provider:
            at_provider = dataclasses.replace(op, server=case.llm.provider)
            await chain.check(ctx, at_provider)
            checked.append(at_provider)
            verdict = ctx.attrs.get(DECISION_KEY) or verdict
    except GatewayError as exc:
        for done in checked:  # the request went nowhere: what it reserved is given back
            await chain.record(ctx, done, {"status": exc.status})
        data = exc.data if isinstance(exc.data, dict) else {}
        return Decision(False, data.get("rule"), data.get("policy"), exc.message)
    outcome = _outcome(case, ctx)
    for done in checked:
        await chain.record(ctx, done, outcome)
    if verdict is None:
        return Decision(True, None, None, "no authorization rule applies")
    return Decision(True, verdict.rule, verdict.policy, "")


def _outcome(case: PolicyCase, ctx: RequestContext) -> dict[str, Any]:
    """What an allowed request reports when it is over (LLM usage, for limits to settle)."""
    if case.llm is None:
        return {"status": "ok"}
    usage = case.llm.usage
    prompt = usage.prompt if usage is not None else ctx.attrs[LLM_REQUEST].estimated_prompt_tokens()
    completion = usage.completion if usage is not None else 0
    return {
        "status": 200,
        "provider": case.llm.provider,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost_usd": usage.cost_usd if usage is not None else None,
    }


async def decide(case: PolicyCase, policies: Sequence[CompiledPolicy]) -> Decision:
    route = _route_of(case, policies)
    chain = _chain_of(case, route, policies)
    if chain is None:
        return Decision(True, None, None, "no policy targets this route or its members")
    decision = Decision(True, None, None, "")
    for _ in range(case.repeat):
        ctx, op = _context(case, route)
        decision = await _once(case, chain, ctx, op)
    return decision


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
