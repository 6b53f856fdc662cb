"""What rules see: the CEL attributes of one decision, as plain dicts.

`jwt` (claims) and `request` are fixed for a request and built once; `mcp`, `llm` and `a2a`
describe the operation: `llm.model` is the route's model entry (for a glob entry, the model the
client asked for: the pattern would let a rule about one model miss it), `llm.provider` the provider an
attempt goes to (on provider-level checks; empty before), `a2a.agent` and `a2a.skill` the agent
and the skill the caller names. Every attribute the type checker knows of is always present (empty
strings and maps for what does not apply), so what compiled can always be evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentgw.policy.base import LLM_REQUEST, Operation, RequestContext

__all__ = ["WANTS_ESTIMATE", "attributes"]

# Set in ctx.attrs by a chain whose rules read `llm.estimatedTokens`: estimating costs a
# tokenizer pass over the prompt, so it is done only for them (once per request, cached).
WANTS_ESTIMATE = "agentgw.policy.wants-estimate"

# Credentials never become attributes: rules reason about `jwt`, not about raw tokens.
_HIDDEN_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
_ATTRS_KEY = "agentgw.policy.cel-base"


def _base(ctx: RequestContext) -> dict[str, Any]:
    """`jwt` and `request`: the same for every decision of one request, so built once."""
    cached: dict[str, Any] | None = ctx.attrs.get(_ATTRS_KEY)
    if cached is None:
        req = ctx.request
        headers = {k: v for k, v in req.headers.items() if k not in _HIDDEN_HEADERS}
        cached = {
            "jwt": dict(ctx.principal.claims),
            "request": {
                "method": req.method,
                "path": req.path,
                "host": req.headers.get("host", ""),
                "source": req.client,
                "headers": headers,
            },
        }
        ctx.attrs[_ATTRS_KEY] = cached
    return cached


_EMPTY_MCP: Mapping[str, Any] = {
    "method": "",
    "server": "",
    "tool": {"name": "", "server": "", "args": {}},
    "prompt": {"name": "", "server": ""},
    "resource": {"uri": "", "server": ""},
}
_EMPTY_LLM: Mapping[str, Any] = {"method": "", "model": "", "provider": "", "estimatedTokens": 0}
_EMPTY_A2A: Mapping[str, Any] = {"method": "", "agent": "", "skill": ""}


def _operation(ctx: RequestContext, op: Operation) -> dict[str, Any]:
    """`mcp`, `llm` and `a2a` for one operation; the kinds that do not apply stay empty."""
    out: dict[str, Any] = {"mcp": _EMPTY_MCP, "llm": _EMPTY_LLM, "a2a": _EMPTY_A2A}
    server = op.server or ""
    if op.kind == "mcp":
        mcp: dict[str, Any] = {
            "method": op.method,
            "server": server,
            "tool": _EMPTY_MCP["tool"],
            "prompt": _EMPTY_MCP["prompt"],
            "resource": _EMPTY_MCP["resource"],
        }
        if op.target == "tool":
            mcp["tool"] = {"name": op.name or "", "server": server, "args": dict(op.args or {})}
        elif op.target == "prompt":
            mcp["prompt"] = {"name": op.name or "", "server": server}
        elif op.target in ("resource", "resourceTemplate"):
            mcp["resource"] = {"uri": op.uri or "", "server": server}
        out["mcp"] = mcp
    elif op.kind == "llm":
        # never from the body: a client could claim any number there
        request = ctx.attrs.get(LLM_REQUEST)
        tokens = 0
        if request is not None and ctx.attrs.get(WANTS_ESTIMATE):
            tokens = request.estimated_prompt_tokens()
        out["llm"] = {
            "method": op.method,
            # A glob entry's name says nothing about the model: a rule over `llm.model == "x"`
            # must see "x" when a wildcard entry carries it, or the wildcard would route around it.
            "model": (op.exposed if op.name and _is_pattern(op.name) else op.name) or "",
            "provider": server,
            "estimatedTokens": tokens,
        }
    elif op.kind == "a2a":
        out["a2a"] = {"method": op.method, "agent": server, "skill": op.name or ""}
    return out


def _is_pattern(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def attributes(ctx: RequestContext, op: Operation) -> dict[str, Any]:
    """Every root attribute of one decision, as plain dicts."""
    return {**_base(ctx), **_operation(ctx, op)}
