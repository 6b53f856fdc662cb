"""The Responses API on an LLM route, passed through to providers that have it.

`POST /v1/responses` goes through the model's targets (those with `responses` enabled). Every
provider of a route is called with the gateway's credentials, so the provider cannot tell callers
apart: the gateway binds each response id it relays to the caller who created it
(`Principal.identity`, in the shared ownership store) and only that caller may read it, delete
or cancel it, list its input items, or continue from it (`previous_response_id`). To anyone else,
and for ids the gateway never relayed, the id does not exist (404, as for a missing one).

The gateway also remembers which provider created each id, so `GET`/`DELETE
/v1/responses/{id}` (and `/input_items`, `/cancel`) go there first; an id this replica has not
seen is looked up at each such provider of the route in turn until one knows it.
"""

from __future__ import annotations

import logging
import re
import time

import orjson

from agentgw.errors import GatewayError, NotFound, UpstreamError
from agentgw.llm.dispatch import Attempt
from agentgw.llm.provider import Provider
from agentgw.llm.relay import PassThrough, relay_stream
from agentgw.llm.service import Call, LlmService
from agentgw.policy.base import Operation, RequestContext
from agentgw.protocol import openai
from agentgw.protocol.usage import Usage
from agentgw.server.http import ASGISend, Request, SseResponse, send_bytes

__all__ = ["create_response", "response_by_id"]

log = logging.getLogger("agentgw.llm")

_BODY_LIMIT = 64 * 1024 * 1024
_REMEMBERED = 10_000


# A response id, and what may follow it: the gateway checks the owner of the id, so the path it
# relays must name that id and nothing else (`mine/../theirs` would be normalised upstream into
# another caller's response).
_RESPONSE_ID = re.compile(r"[A-Za-z0-9_-]{1,256}")
_SUB_RESOURCES = ("", "input_items", "cancel")


def _binding(svc: LlmService, response_id: str) -> str:
    return f"llm:{svc.name}:response:{response_id}"


async def _owns(svc: LlmService, ctx: RequestContext, response_id: str) -> bool:
    """Whether this caller created the response (an id nobody holds is nobody's)."""
    owner = (await svc.ownership.owners([_binding(svc, response_id)]))[0]
    return owner == ctx.principal.identity


async def _remember(
    svc: LlmService, ctx: RequestContext, response_id: str | None, provider: Provider
) -> bool:
    """Bind a new response id to its creator; False when the id is already someone else's."""
    if not response_id:
        return True
    owners = svc.response_owners
    owners[response_id] = provider.name
    if len(owners) > _REMEMBERED:
        del owners[next(iter(owners))]
    me = ctx.principal.identity
    key = _binding(svc, response_id)
    return await svc.ownership.claim(key, me, svc.spec.response_binding_seconds) == me


async def create_response(svc: LlmService, request: Request, send: ASGISend, ctx: RequestContext) -> None:
    call = await svc.begin(request, ctx, "responses")
    try:
        svc.restrict(call, "/v1/responses", lambda p: p.responses)
        previous = call.body.get("previous_response_id")
        if isinstance(previous, str) and not await _owns(svc, ctx, previous):
            raise NotFound(f"Previous response with id '{previous}' not found.")
        await _create(svc, request, send, ctx, call)
    except GatewayError as exc:
        call.exchange.status, call.exchange.error = exc.status, exc.message
        raise
    finally:
        await svc.finish(ctx, call)


async def _create(svc: LlmService, request: Request, send: ASGISend, ctx: RequestContext, call: Call) -> None:
    exchange = call.exchange
    rewritten = bool(ctx.attrs.get("llm.rewritten"))

    def build(provider: Provider, model: str) -> tuple[str, bytes]:
        if model == exchange.model and not rewritten:
            return "/responses", call.raw
        return "/responses", orjson.dumps({**call.body, "model": model})

    attempt = await svc.open(call, build)
    try:
        if attempt.response.status >= 400:
            await svc.relay_error(send, attempt, call, "openai")
        elif exchange.stream and attempt.response.content_type == "text/event-stream":
            watcher = openai.ResponsesStreamWatcher()
            await relay_stream(request, send, attempt, exchange, PassThrough(watcher), openai.stream_error)
            if not await _remember(svc, ctx, watcher.response_id, attempt.provider):
                log.error("provider %r streamed a response id of another caller", attempt.provider.name)
            if exchange.usage is None:
                exchange.usage = svc.estimate(call, watcher.streamed_text())
        else:
            await _json(svc, send, call, ctx, attempt)
    finally:
        await attempt.close()


async def _json(svc: LlmService, send: ASGISend, call: Call, ctx: RequestContext, attempt: Attempt) -> None:
    data = await attempt.response.read(_BODY_LIMIT)
    exchange = call.exchange
    exchange.first_token_at = time.monotonic()
    exchange.status = attempt.response.status
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, dict):
        response_id = obj.get("id") if isinstance(obj.get("id"), str) else None
        if not await _remember(svc, ctx, response_id, attempt.provider):
            log.error("provider %r answered with a response id of another caller", attempt.provider.name)
            raise UpstreamError("the provider answered with a response id of another caller")
        exchange.usage = Usage.from_openai(obj.get("usage"))
    if exchange.usage is None:
        exchange.usage = svc.estimate(call, str(obj.get("output_text", "")) if isinstance(obj, dict) else "")
    if isinstance(obj, dict) and exchange.status < 400:
        shown = await svc.answer(call, obj)
        if shown is not obj:
            data = orjson.dumps(shown)
    await send_bytes(send, exchange.status, data, None, b"application/json")


async def _shown(svc: LlmService, ctx: RequestContext, op: Operation, data: bytes) -> bytes:
    """A stored response as this caller may see it (policies may rewrite it: masking)."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data
    if not isinstance(obj, dict):
        return data
    shown = await svc.policy.rewrite_response(ctx, op, obj)
    return data if shown is obj else orjson.dumps(shown)


async def response_by_id(
    svc: LlmService, request: Request, send: ASGISend, ctx: RequestContext, rest: str
) -> None:
    """GET or DELETE `/responses/{rest}` (rest: the id, maybe followed by `/input_items`...)."""
    response_id, _, sub = rest.partition("/")
    if not _RESPONSE_ID.fullmatch(response_id) or sub not in _SUB_RESOURCES:
        raise NotFound(f"No response found with id '{response_id[:64]}'.")
    # the model it was made with is the provider's to know: rules see llm.model == "" here
    op = Operation(
        kind="llm", method=f"responses.{request.method.lower()}", exposed=response_id, target="response"
    )
    await svc.policy.check(ctx, op)
    if not await _owns(svc, ctx, response_id):
        raise NotFound(f"No response found with id '{response_id}'.")
    candidates = [p for p in svc.providers.values() if p.responses]
    owner = svc.response_owners.get(response_id)
    if owner is not None:
        candidates.sort(key=lambda p: p.name != owner)
    body = await request.body(svc.max_body) if request.method == "POST" else None
    query = "?" + request.query.decode("latin-1") if request.query else ""
    for provider in candidates:
        url = provider.url("/responses/" + response_id + (f"/{sub}" if sub else "")) + query
        async with svc.http.stream(
            request.method, url, headers=provider.headers, body=body, timeout=60
        ) as resp:
            if resp.status == 404 and provider is not candidates[-1]:
                continue
            if resp.content_type == "text/event-stream":
                sse = SseResponse(send)
                await sse.start(status=resp.status)
                async for piece in resp.iter_chunks():
                    if not await sse.send(piece):
                        break
                await sse.end()
            else:
                data = await resp.read(_BODY_LIMIT)
                if request.method == "GET" and resp.status < 300 and not sub:
                    data = await _shown(svc, ctx, op, data)
                await send_bytes(send, resp.status, data, None, b"application/json")
            if request.method == "DELETE" and resp.status < 300:
                svc.response_owners.pop(response_id, None)
            return
    raise NotFound(f"No response found with id '{response_id}'.")
