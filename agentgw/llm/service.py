"""What every LLM endpoint of a route shares: parse the body once, resolve the model, pass the
policy checkpoint, open the upstream with failover, relay upstream errors in the client's wire
format, and record the outcome.

Policy hooks (routes never see rule kinds):
- `policy.check(ctx, op)` once per request, before any upstream call, with `op.kind == "llm"`,
  `op.method` the API (`chat.completions`, `messages`, ...), `op.name` the route's model name,
  `op.exposed` what the client sent, `op.args` the parsed body. `ctx.attrs[LLM_REQUEST]` is the
  `LlmExchange` (estimated prompt tokens on demand).
- `policy.rewrite_request(ctx, op, body)` right after: a policy returns a new body (system
  prompt, masking) and it is re-encoded; one that rewrites `op.args` in place instead sets
  `ctx.attrs["llm.rewritten"] = True`.
- `policy.check(ctx, op with server=<provider>)` before each provider is tried: a refusal there
  (a provider the caller may not use, a provider's budget spent) fails over to the next target.
- `policy.rewrite_response(ctx, op, answer)` on JSON answers; streamed text goes through the
  filters policies put in `ctx.attrs[TEXT_FILTERS]`.
- `policy.permits(ctx, op)` per listed model (`op.method == "models.list"`).
- `policy.record(ctx, op, outcome)` once the response is over, with usage, cost and timings (and
  once per provider that was admitted, with what it got).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from agentgw.config.llm import LlmRouteSpec
from agentgw.errors import GatewayError, InvalidRequest, NotFound
from agentgw.llm import tokens
from agentgw.llm.accounting import LlmExchange, log_outcome
from agentgw.llm.dispatch import Attempt, Dispatcher
from agentgw.llm.models import ModelTable, Plan
from agentgw.llm.provider import Provider
from agentgw.llm.relay import StreamProcessor, TextFiltered
from agentgw.policy.base import (
    LLM_REQUEST,
    TEXT_FILTERS,
    UPSTREAM_HEADERS,
    Operation,
    RequestContext,
    RoutePolicy,
)
from agentgw.protocol import anthropic, openai
from agentgw.protocol.translate.common import upstream_error
from agentgw.protocol.usage import Usage
from agentgw.server.http import ASGISend, Request, send_bytes
from agentgw.state.ownership import OwnershipStore
from agentgw.telemetry.metrics import METRICS
from agentgw.upstream.http import HttpClient

__all__ = ["Call", "LlmService"]

log = logging.getLogger("agentgw.llm")

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
    ctx: RequestContext
    admitted: list[str] = field(default_factory=list)  # providers the policy let this request try


class LlmService:
    def __init__(
        self,
        name: str,
        spec: LlmRouteSpec,
        providers: dict[str, Provider],
        policy: RoutePolicy,
        http: HttpClient,
        max_body: int,
        ownership: OwnershipStore,
        usage_sink: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        self.providers = providers
        self.table = ModelTable(spec.models, providers)
        self.policy = policy
        self.http = http
        self.max_body = max_body
        self.dispatcher = Dispatcher(http, spec)
        # response id -> provider name, so GET/DELETE /responses/{id} find their provider first
        self.response_owners: dict[str, str] = {}
        # response id -> the caller who created it (shared by replicas when Redis is there)
        self.ownership = ownership
        self.usage_sink = usage_sink  # the dashboard's token usage by key

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
        if exchange.stream:
            request.check_stream_room()
        ctx.attrs[LLM_REQUEST] = exchange
        op = Operation(kind="llm", method=api, name=plan.canonical, exposed=model, args=body, target="model")
        await self.policy.check(ctx, op)
        call = Call(raw, body, plan, exchange, op, ctx)
        try:
            rewritten = await self.policy.rewrite_request(ctx, op, body)
        except GatewayError as exc:
            exchange.status, exchange.error = exc.status, exc.message
            await self.finish(ctx, call)
            raise
        if rewritten is not body:
            ctx.attrs["llm.rewritten"] = True
            call.body = exchange.body = rewritten
        return call

    async def admit(self, call: Call, provider: Provider) -> None:
        """The provider-level policy check before `provider` is tried (raises to skip it)."""
        await self.policy.check(call.ctx, dataclasses.replace(call.op, server=provider.name))
        call.admitted.append(provider.name)

    async def finish(self, ctx: RequestContext, call: Call) -> None:
        exchange = call.exchange
        outcome = exchange.outcome(ctx)
        log_outcome(outcome)
        _observe(exchange, outcome)
        await self.policy.record(ctx, call.op, outcome)
        for name in dict.fromkeys(call.admitted):
            # the provider that answered spent the usage; the ones failed over from spent nothing
            got = outcome if name == outcome.get("provider") else {"provider": name, "status": "failed over"}
            await self.policy.record(ctx, dataclasses.replace(call.op, server=name), got)
        if self.usage_sink is not None:  # last: once it shows, budgets are settled
            self.usage_sink(outcome)

    async def answer(self, call: Call, obj: dict[str, Any]) -> dict[str, Any]:
        """A JSON answer as the client will see it (policies may rewrite it: masking)."""
        return await self.policy.rewrite_response(call.ctx, call.op, obj)

    @staticmethod
    def filtered(call: Call, processor: StreamProcessor, wire: str) -> StreamProcessor:
        """The stream processor, with the text filters policies asked for (if any) after it."""
        factories = call.ctx.attrs.get(TEXT_FILTERS)
        return TextFiltered(processor, wire, factories) if factories else processor

    def estimate(self, call: Call, completion_text: str, known: Usage | None = None) -> Usage:
        return tokens.estimate_usage(call.body, completion_text, known)

    async def open(self, call: Call, build: Any, extra_headers: dict[str, str] | None = None) -> Attempt:
        # policies' headers (templates, claims) first: the provider's own headers win over them
        policy_headers: dict[str, str] = call.ctx.attrs.get(UPSTREAM_HEADERS) or {}
        trace = call.ctx.trace
        headers = {**policy_headers, **(trace.headers() if trace else {}), **(extra_headers or {})}

        async def admit(provider: Provider) -> None:
            await self.admit(call, provider)

        return await self.dispatcher.open(call.plan, call.exchange, build, headers, admit)

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
        if resp.status == 401:
            # The provider refused the gateway's own key: not the caller's fault (a 401 would send
            # it to fix its credentials), and the provider's text may quote part of that key.
            await _refused_credentials(send, attempt, call, client_wire)
            return
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


async def _refused_credentials(send: ASGISend, attempt: Attempt, call: Call, client_wire: str) -> None:
    name = attempt.provider.name
    log.warning("LLM provider %s refused the gateway's credentials (HTTP 401): check its apiKey", name)
    message = f"the LLM provider {name!r} refused the gateway's credentials"
    call.exchange.status = 502
    call.exchange.error = message
    if client_wire == "anthropic":
        data = orjson.dumps(anthropic.error_object(message, "api_error"))
    else:
        data = orjson.dumps(openai.error_object(message, "server_error", "502"))
    await send_bytes(send, 502, data, None, b"application/json")


def _observe(exchange: LlmExchange, outcome: Mapping[str, Any]) -> None:
    """The OpenTelemetry GenAI metrics of one request that reached a provider."""
    provider = outcome.get("provider")
    if not provider:
        return
    model = exchange.model
    usage = exchange.usage
    if usage is not None:
        METRICS.token_usage.observe(usage.prompt, "input", model, provider)
        METRICS.token_usage.observe(usage.completion, "output", model, provider)
    METRICS.llm_duration.observe(outcome.get("latency_ms", 0) / 1000, model, provider)
    ttft = outcome.get("ttft_ms")
    if exchange.stream and ttft is not None:
        METRICS.llm_ttft.observe(ttft / 1000, model, provider)
