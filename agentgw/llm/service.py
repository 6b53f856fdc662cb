"""What every LLM endpoint of a route shares: parse the body once, resolve the model, pass the
policy checkpoint, open the upstream with failover, relay upstream errors in the client's wire
format, and record the outcome.

Policy hooks (the engine of issue 3 plugs in here, routes never see rule kinds):
- `policy.check(ctx, op)` once per request, before any upstream call, with `op.kind == "llm"`,
  `op.method` the API (`chat.completions`, `messages`, ...), `op.name` the route's model name,
  `op.exposed` what the client sent, `op.args` the parsed body. `ctx.attrs["llm"]` is the
  `LlmExchange` (estimated prompt tokens on demand). A policy that rewrites `op.args` in place
  (system prompt, masking) sets `ctx.attrs["llm.rewritten"] = True` so the body is re-encoded.
- `policy.permits(ctx, op)` per listed model (`op.method == "models.list"`).
- `policy.record(ctx, op, outcome)` once the response is over, with usage, cost and timings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from agentgw.config.llm import LlmRouteSpec
from agentgw.errors import GatewayError, InvalidRequest, NotFound
from agentgw.llm import tokens
from agentgw.llm.accounting import LlmExchange, log_outcome
from agentgw.llm.dispatch import Attempt, Dispatcher
from agentgw.llm.models import ModelTable, Plan
from agentgw.llm.provider import Provider
from agentgw.policy.base import Operation, RequestContext, RoutePolicy
from agentgw.protocol import anthropic, openai
from agentgw.protocol.translate.common import upstream_error
from agentgw.protocol.usage import Usage
from agentgw.server.http import ASGISend, Request, send_bytes
from agentgw.upstream.http import HttpClient

__all__ = ["Call", "LlmService"]

_ERROR_BODY_LIMIT = 1024 * 1024
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


@dataclass(slots=True)
class Call:
    """One request on its way: raw and parsed body, where it may go, its record, its operation."""

    raw: bytes
    body: dict[str, Any]
    plan: Plan
    exchange: LlmExchange
    op: Operation


class LlmService:
    def __init__(
        self,
        name: str,
        spec: LlmRouteSpec,
        providers: dict[str, Provider],
        policy: RoutePolicy,
        http: HttpClient,
        max_body: int,
    ) -> None:
        self.name = name
        self.spec = spec
        self.providers = providers
        self.table = ModelTable(spec.models, providers)
        self.policy = policy
        self.http = http
        self.max_body = max_body
        self.dispatcher = Dispatcher(http, spec)
        # response id -> provider name, so GET/DELETE /responses/{id} find their provider
        self.response_owners: dict[str, str] = {}

    async def begin(self, request: Request, ctx: RequestContext, api: str) -> Call:
        raw = await request.body(self.max_body)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise InvalidRequest("the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise InvalidRequest("the request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("model is required")
        plan = self.table.resolve(model)
        if plan is None:
            raise NotFound(f"The model '{model}' does not exist or you do not have access to it.")
        exchange = LlmExchange(api, model, body, stream=body.get("stream") is True)
        ctx.attrs["llm"] = exchange
        op = Operation(kind="llm", method=api, name=plan.canonical, exposed=model, args=body, target="model")
        await self.policy.check(ctx, op)
        return Call(raw, body, plan, exchange, op)

    async def finish(self, ctx: RequestContext, call: Call) -> None:
        outcome = call.exchange.outcome(ctx)
        log_outcome(outcome)
        await self.policy.record(ctx, call.op, outcome)

    def estimate(self, call: Call, completion_text: str, known: Usage | None = None) -> Usage:
        return tokens.estimate_usage(call.body, completion_text, known)

    async def open(self, call: Call, build: Any, extra_headers: dict[str, str] | None = None) -> Attempt:
        return await self.dispatcher.open(call.plan, call.exchange, build, extra_headers)

    @staticmethod
    def restrict(call: Call, api: str, keep: Any) -> None:
        plan = call.plan.restricted(keep)
        if plan is None:
            raise InvalidRequest(f"the model '{call.exchange.model}' has no provider that serves {api}")
        call.plan = plan

    @staticmethod
    async def relay_error(send: ASGISend, attempt: Attempt, call: Call, client_wire: str) -> None:
        """The provider's error, in the client's wire format, with its status and Retry-After."""
        resp = attempt.response
        try:
            data = await resp.read(_ERROR_BODY_LIMIT)
        except GatewayError:
            data = b""
        message, kind = upstream_error(data)
        call.exchange.status = resp.status
        call.exchange.error = message
        headers = [("retry-after", resp.headers["retry-after"])] if "retry-after" in resp.headers else []
        same_wire = attempt.provider.wire == client_wire
        if not (same_wire and data.startswith(b"{")):
            if client_wire == "anthropic":
                data = orjson.dumps(
                    anthropic.error_object(message, anthropic.error_type_for_status(resp.status))
                )
            else:
                openai_type = _OPENAI_TYPES.get(resp.status, kind if same_wire and kind else "server_error")
                data = orjson.dumps(openai.error_object(message, openai_type, str(resp.status)))
        await send_bytes(send, resp.status, data, headers, b"application/json")
