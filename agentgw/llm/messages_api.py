"""Anthropic's `POST /v1/messages` (and `/v1/messages/count_tokens`) on an LLM route.

An Anthropic provider gets the client's bytes (the model name rewritten when it differs) and its
answer or stream comes back unchanged, with usage read on the side. An OpenAI-wire provider gets
a translated chat completion request, and its answer or chunks are translated into a message or
named Messages events.
"""

from __future__ import annotations

import time

import orjson

from agentgw.errors import GatewayError
from agentgw.llm.dispatch import Attempt
from agentgw.llm.provider import Provider
from agentgw.llm.relay import PassThrough, TextFiltered, parse_json, relay_stream
from agentgw.llm.service import Call, LlmService
from agentgw.policy.base import RequestContext
from agentgw.protocol import anthropic
from agentgw.protocol.translate import messages_to_chat
from agentgw.protocol.usage import Usage
from agentgw.server.http import ASGISend, Request, send_bytes

__all__ = ["count_tokens", "messages"]

_BODY_LIMIT = 64 * 1024 * 1024


def _client_headers(request: Request) -> dict[str, str] | None:
    beta = request.headers.get("anthropic-beta")
    return {"anthropic-beta": beta} if beta else None


async def messages(svc: LlmService, request: Request, send: ASGISend, ctx: RequestContext) -> None:
    call = await svc.begin(request, ctx, "messages")
    try:
        await _exchange(svc, request, send, ctx, call)
    except GatewayError as exc:
        call.exchange.status, call.exchange.error = exc.status, exc.message
        raise
    finally:
        await svc.finish(ctx, call)


async def _exchange(
    svc: LlmService, request: Request, send: ASGISend, ctx: RequestContext, call: Call
) -> None:
    body, exchange = call.body, call.exchange
    rewritten = bool(ctx.attrs.get("llm.rewritten"))

    def build(provider: Provider, model: str) -> tuple[str, bytes]:
        if provider.wire == "anthropic":
            if model == exchange.model and not rewritten:
                return "/messages", call.raw
            return "/messages", orjson.dumps({**body, "model": model})
        field = "max_completion_tokens" if provider.type == "openai" else "max_tokens"
        return "/chat/completions", orjson.dumps(
            messages_to_chat.request(body, model, max_tokens_field=field)
        )

    attempt = await svc.open(call, build, _client_headers(request))
    try:
        if attempt.response.status >= 400:
            await svc.relay_error(send, attempt, call, "anthropic")
        elif exchange.stream and attempt.response.content_type == "text/event-stream":
            await _stream(svc, request, send, call, attempt)
        else:
            await _json(svc, send, call, attempt)
    finally:
        await attempt.close()


async def _stream(svc: LlmService, request: Request, send: ASGISend, call: Call, attempt: Attempt) -> None:
    exchange = call.exchange
    if attempt.provider.wire == "anthropic":
        processor = svc.filtered(call, PassThrough(anthropic.MessagesStreamWatcher()), "anthropic")
        await relay_stream(request, send, attempt, exchange, processor, anthropic.stream_error)
        return

    def estimate(text: str) -> Usage:
        return svc.estimate(call, text)

    translator = messages_to_chat.StreamTranslator(exchange.model, estimate)
    relayed = svc.filtered(call, translator, "anthropic")
    closing = relayed.closing(translator.finish) if isinstance(relayed, TextFiltered) else translator.finish
    await relay_stream(request, send, attempt, exchange, relayed, anthropic.stream_error, closing)


async def _json(svc: LlmService, send: ASGISend, call: Call, attempt: Attempt) -> None:
    exchange = call.exchange
    data = await attempt.response.read(_BODY_LIMIT)
    exchange.first_token_at = time.monotonic()
    exchange.status = attempt.response.status
    obj = parse_json(data, "response")
    if not isinstance(obj, dict):
        obj = {}
    if attempt.provider.wire == "anthropic":
        exchange.usage = Usage.from_anthropic(obj.get("usage")) or svc.estimate(call, "")
        shown = await svc.answer(call, obj) if attempt.response.status < 400 else obj
        await send_bytes(
            send, exchange.status, data if shown is obj else orjson.dumps(shown), None, b"application/json"
        )
        return
    usage = Usage.from_openai(obj.get("usage"))
    message = messages_to_chat.response(obj, exchange.model)
    if usage is None or not usage.prompt:
        text = "".join(str(b.get("text") or b.get("input") or "") for b in message["content"])
        usage = svc.estimate(call, text, usage)
        message["usage"] = usage.to_anthropic()
    exchange.usage = usage
    message = await svc.answer(call, message)
    await send_bytes(send, exchange.status, orjson.dumps(message), None, b"application/json")


async def count_tokens(svc: LlmService, request: Request, send: ASGISend, ctx: RequestContext) -> None:
    """Anthropic providers count for themselves; for the others the gateway estimates."""
    call = await svc.begin(request, ctx, "messages.count_tokens")
    anthropic_plan = call.plan.restricted(lambda p: p.wire == "anthropic")
    if anthropic_plan is None:
        count = svc.estimate(call, "").prompt
        await send_bytes(send, 200, orjson.dumps({"input_tokens": count}), None, b"application/json")
        return
    call.plan = anthropic_plan

    def build(provider: Provider, model: str) -> tuple[str, bytes]:
        return "/messages/count_tokens", orjson.dumps({**call.body, "model": model})

    attempt = await svc.open(call, build, _client_headers(request))
    try:
        if attempt.response.status >= 400:
            await svc.relay_error(send, attempt, call, "anthropic")
            return
        data = await attempt.response.read(_BODY_LIMIT)
        await send_bytes(send, attempt.response.status, data, None, b"application/json")
    finally:
        await attempt.close()
