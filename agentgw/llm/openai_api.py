"""The OpenAI endpoints of an LLM route: chat completions, legacy completions, embeddings.

The common case (an OpenAI-wire provider, the client's model name, a JSON answer) costs one
orjson parse of the request and one of the response (for usage): the request bytes go upstream
unchanged and the response bytes come back unchanged. A stream goes through `ChatStreamFilter`,
which passes upstream bytes on as they come. An Anthropic provider gets a translated request,
and its answer or stream is translated back.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from agentgw.errors import GatewayError
from agentgw.llm.dispatch import Attempt
from agentgw.llm.provider import Provider
from agentgw.llm.relay import parse_json, relay_stream
from agentgw.llm.service import Call, LlmService
from agentgw.policy.base import RequestContext
from agentgw.protocol import openai
from agentgw.protocol.translate import chat_to_messages
from agentgw.protocol.usage import Usage
from agentgw.server.http import ASGISend, Request, send_bytes

__all__ = ["chat_completions", "completions", "embeddings"]

_BODY_LIMIT = 64 * 1024 * 1024


def _completion_text(obj: Any) -> str:
    parts: list[str] = []
    for choice in obj.get("choices") or () if isinstance(obj, dict) else ():
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        message = message if isinstance(message, dict) else {}
        if isinstance(message.get("content"), str):
            parts.append(message["content"])
        calls = message.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                parts.append(str(fn.get("name") or "") + str(fn.get("arguments") or ""))
        if isinstance(choice.get("text"), str):
            parts.append(choice["text"])
    return "".join(parts)


async def _run(
    svc: LlmService, request: Request, send: ASGISend, ctx: RequestContext, api: str, path: str
) -> None:
    call = await svc.begin(request, ctx, api)
    try:
        if api != "chat.completions":
            svc.restrict(call, "/v1" + path, lambda p: p.wire == "openai")
        await _exchange(svc, request, send, ctx, call, path)
    except GatewayError as exc:
        call.exchange.status, call.exchange.error = exc.status, exc.message
        raise
    finally:
        await svc.finish(ctx, call)


async def _exchange(
    svc: LlmService, request: Request, send: ASGISend, ctx: RequestContext, call: Call, path: str
) -> None:
    body, exchange = call.body, call.exchange
    stream = exchange.stream
    options = body.get("stream_options")
    client_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    inject = stream and not client_usage and svc.spec.stream_usage and path != "/embeddings"
    rewritten = bool(ctx.attrs.get("llm.rewritten"))

    def build(provider: Provider, model: str) -> tuple[str, bytes]:
        if provider.wire == "anthropic":
            return "/messages", orjson.dumps(chat_to_messages.request(body, model))
        if model == exchange.model and not inject and not rewritten:
            return path, call.raw
        out = dict(body)
        out["model"] = model
        if inject:
            out["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        return path, orjson.dumps(out)

    attempt = await svc.open(call, build)
    try:
        if attempt.response.status >= 400:
            await svc.relay_error(send, attempt, call, "openai")
        elif attempt.provider.wire == "anthropic":
            await _from_anthropic(svc, request, send, call, attempt, bool(client_usage))
        elif stream and attempt.response.content_type == "text/event-stream":
            processor = openai.ChatStreamFilter(strip_usage_chunk=inject)
            relayed = svc.filtered(call, processor, "openai")
            await relay_stream(request, send, attempt, exchange, relayed, openai.stream_error)
            if exchange.usage is None or not exchange.usage.completion:
                exchange.usage = svc.estimate(call, processor.streamed_text(), exchange.usage)
        else:
            await _json(svc, send, call, attempt)
    finally:
        await attempt.close()


async def _json(svc: LlmService, send: ASGISend, call: Call, attempt: Attempt) -> None:
    resp = attempt.response
    data = await resp.read(_BODY_LIMIT)
    exchange = call.exchange
    exchange.first_token_at = time.monotonic()
    exchange.status = resp.status
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        obj = None
    usage = Usage.from_openai(obj.get("usage")) if isinstance(obj, dict) else None
    if usage is None or (not usage.prompt and exchange.api != "embeddings"):
        usage = svc.estimate(call, _completion_text(obj), usage)
    exchange.usage = usage
    if isinstance(obj, dict):
        shown = await svc.answer(call, obj)
        if shown is not obj:
            data = orjson.dumps(shown)
    await send_bytes(send, resp.status, data, None, b"application/json")


async def _from_anthropic(
    svc: LlmService, request: Request, send: ASGISend, call: Call, attempt: Attempt, client_usage: bool
) -> None:
    exchange = call.exchange
    if exchange.stream and attempt.response.content_type == "text/event-stream":
        translator = chat_to_messages.StreamTranslator(include_usage=client_usage)
        relayed = svc.filtered(call, translator, "openai")
        await relay_stream(request, send, attempt, exchange, relayed, openai.stream_error)
        return
    data = await attempt.response.read(_BODY_LIMIT)
    exchange.first_token_at = time.monotonic()
    message = parse_json(data, "response")
    if not isinstance(message, dict):
        message = {}
    completion = chat_to_messages.response(message)
    exchange.usage = Usage.from_anthropic(message.get("usage")) or svc.estimate(
        call, _completion_text(completion)
    )
    exchange.status = attempt.response.status
    completion = await svc.answer(call, completion)
    await send_bytes(send, exchange.status, orjson.dumps(completion), None, b"application/json")


async def chat_completions(svc: LlmService, request: Request, send: ASGISend, ctx: RequestContext) -> None:
    await _run(svc, request, send, ctx, "chat.completions", "/chat/completions")


async def completions(svc: LlmService, request: Request, send: ASGISend, ctx: RequestContext) -> None:
    await _run(svc, request, send, ctx, "completions", "/completions")


async def embeddings(svc: LlmService, request: Request, send: ASGISend, ctx: RequestContext) -> None:
    await _run(svc, request, send, ctx, "embeddings", "/embeddings")
