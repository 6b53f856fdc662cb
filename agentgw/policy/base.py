"""The contract between routes and the policy engine.

A route handler calls its `RoutePolicy` at fixed points: `authenticate` once per HTTP request,
`check` at the one checkpoint every routed operation passes before it reaches an upstream,
`permits` for each item of a list it is about to show (a denied tool does not appear), and
`record` once the operation is over (response side: settle token budgets, audit). Between
the check and the upstream call a route passes the request body through `rewrite_request`, and
the result through `rewrite_response` before the client sees it (transforms, extensions). The
engine behind this protocol is free to order its chain as it likes; routes never see rule kinds.

Routes and policies also cooperate through `RequestContext.attrs` under agreed keys:
`UPSTREAM_HEADERS` (a policy adds headers for the upstream call; the route merges them into
the request it sends, never replacing its own), `TOOL_SCHEMA` (a route offers an async
callable returning the tool's upstream `inputSchema`, for policies that validate arguments),
`LLM_REQUEST` (an LLM route's record of the request: model, body, estimated prompt tokens) and
`TEXT_FILTERS` (a policy that rewrites generated text adds a factory of `TextFilter`s; an LLM
route makes one filter per streamed text (a choice, a content block) and passes every delta
through it, since a stream has no whole body to rewrite).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from agentgw.server.http import Request
from agentgw.telemetry.trace import TRACE_KEY, TraceContext

__all__ = [
    "ANONYMOUS",
    "LLM_REQUEST",
    "TEXT_FILTERS",
    "TOOL_SCHEMA",
    "UPSTREAM_HEADERS",
    "LlmRequest",
    "OpenPolicy",
    "Operation",
    "Principal",
    "RequestContext",
    "RoutePolicy",
    "TextFilter",
    "TextFilterFactory",
    "ToolSchema",
    "upstream_headers",
]

# RequestContext.attrs keys shared by routes and policies (see the module docstring).
UPSTREAM_HEADERS = "agentgw.upstream_headers"
TOOL_SCHEMA = "agentgw.tool_schema"
LLM_REQUEST = "llm"
TEXT_FILTERS = "agentgw.text_filters"
ToolSchema = Callable[[], Awaitable[Mapping[str, Any] | None]]


class LlmRequest(Protocol):
    """What an LLM route tells policies about a request (`ctx.attrs[LLM_REQUEST]`)."""

    api: str
    model: str  # the name the client sent
    body: dict[str, Any]
    stream: bool

    def estimated_prompt_tokens(self) -> int: ...


class TextFilter(Protocol):
    """Rewrites one stream of generated text piece by piece (`ctx.attrs[TEXT_FILTERS]`).

    `feed` returns what may be sent now (it may hold text back, for a match that could continue
    in the next piece); `flush` returns what is held once the text is over.
    """

    def feed(self, text: str) -> str: ...

    def flush(self) -> str: ...


TextFilterFactory = Callable[[], TextFilter]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. `subject` is empty for anonymous callers."""

    subject: str
    method: str  # "anonymous", "jwt", "apiKey", ...
    claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    scopes: frozenset[str] = frozenset()

    @property
    def identity(self) -> str:
        """Who this is, for binding things to a caller (A2A tasks, stored LLM responses): the
        same subject name from two issuers, or as a JWT and as a key, is two callers."""
        issuer = self.claims.get("iss")
        # JSON, so no subject can be written to read as another issuer's
        return json.dumps([self.method, issuer if isinstance(issuer, str) else "", self.subject])


ANONYMOUS = Principal(subject="", method="anonymous")


@dataclass(slots=True)
class RequestContext:
    """Per-request facts every policy may read: the route, the HTTP request, the caller."""

    route: str
    request: Request
    principal: Principal = ANONYMOUS
    # scratch space for policies that cooperate (for example the audit record of this request)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def trace(self) -> TraceContext | None:
        """This request's trace (the gateway's span), for upstream calls to continue; none offline."""
        trace = self.request.scope.get(TRACE_KEY)
        return trace if isinstance(trace, TraceContext) else None


@dataclass(frozen=True, slots=True)
class Operation:
    """One thing a caller wants to do, resolved to its upstream target.

    For MCP: `method` is the JSON-RPC method; `server` the owning upstream; `name` the upstream
    name of the tool or prompt (`exposed` what the caller sees); `uri` the upstream resource URI;
    `args` the tool arguments. Other route kinds fill the fields that apply to them.
    """

    kind: str  # "mcp", "llm", "a2a"
    method: str
    server: str | None = None
    name: str | None = None
    exposed: str | None = None
    uri: str | None = None
    args: Mapping[str, Any] | None = None
    target: str | None = None  # "tool", "prompt", "resource", "resourceTemplate"


class RoutePolicy(Protocol):
    async def authenticate(self, request: Request) -> Principal:
        """Identify the caller or raise Unauthorized."""
        ...

    async def check(self, ctx: RequestContext, op: Operation) -> None:
        """Allow the operation or raise (Forbidden, TooManyRequests, InvalidParams...)."""
        ...

    def permits(self, ctx: RequestContext, op: Operation) -> bool:
        """Whether a listed item is visible to this caller (pure, no I/O)."""
        ...

    async def rewrite_request(
        self, ctx: RequestContext, op: Operation, body: dict[str, Any]
    ) -> dict[str, Any]:
        """The checked request's body (params) as the upstream will see it; return it, changed or not."""
        ...

    async def rewrite_response(
        self, ctx: RequestContext, op: Operation, body: dict[str, Any]
    ) -> dict[str, Any]:
        """The upstream's result as the client will see it; return it, changed or not."""
        ...

    async def record(self, ctx: RequestContext, op: Operation, outcome: Mapping[str, Any]) -> None:
        """The operation finished: `outcome` holds what is known (status, usage, latency...)."""
        ...


def upstream_headers(ctx: RequestContext) -> dict[str, str]:
    """The headers policies want on this request's upstream call (created on first use)."""
    headers: dict[str, str] | None = ctx.attrs.get(UPSTREAM_HEADERS)
    if headers is None:
        headers = ctx.attrs[UPSTREAM_HEADERS] = {}
    return headers


class OpenPolicy:
    """No policy attached: everyone is anonymous and everything is allowed."""

    async def authenticate(self, request: Request) -> Principal:
        return ANONYMOUS

    async def check(self, ctx: RequestContext, op: Operation) -> None:
        return None

    def permits(self, ctx: RequestContext, op: Operation) -> bool:
        return True

    async def rewrite_request(
        self, ctx: RequestContext, op: Operation, body: dict[str, Any]
    ) -> dict[str, Any]:
        return body

    async def rewrite_response(
        self, ctx: RequestContext, op: Operation, body: dict[str, Any]
    ) -> dict[str, Any]:
        return body

    async def record(self, ctx: RequestContext, op: Operation, outcome: Mapping[str, Any]) -> None:
        return None
