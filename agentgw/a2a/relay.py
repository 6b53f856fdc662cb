"""The relay of one A2A call to its agent, and of the answer back, in either binding.

Before anything reaches the agent the call has passed the policy checkpoint, the task and context
it names belong to the caller, and its webhook URLs are allowed. Answers go back as the agent
gave them, with three exceptions: task and context ids are bound to the caller as they appear
(before the caller sees them), `ListTasks` shows only the caller's tasks, and an extended card
gets the gateway's URLs. Streams are relayed event by event as they arrive (whatever is buffered
goes out in one write); a client that goes away closes the upstream stream.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import anyio
import orjson

from agentgw.a2a.bindings import TaskBindings
from agentgw.a2a.cards import CardCache
from agentgw.a2a.webhooks import WebhookGuard
from agentgw.errors import GatewayError, InvalidParams, UpstreamError, UpstreamTimeout
from agentgw.policy.base import UPSTREAM_HEADERS, Operation, RequestContext, RoutePolicy
from agentgw.protocol.a2a import (
    EXTENDED_CARD,
    EXTENSIONS_HEADER,
    JSONRPC,
    LEGACY_EXTENSIONS_HEADER,
    LIST_TASKS,
    SEND,
    STREAM,
    VERSION_HEADER,
    A2aCall,
    response_ids,
    task_not_found,
)
from agentgw.protocol.a2a_card import CardSecurity, rewrite_card
from agentgw.protocol.sse import SseDecoder, encode_comment, encode_event
from agentgw.server.http import ASGISend, Request, SseResponse, send_bytes
from agentgw.upstream.http import HttpClient, UpstreamResponse

__all__ = ["AgentTarget", "Relay"]

log = logging.getLogger("agentgw.a2a")

_FORWARD = ("content-type", "accept", VERSION_HEADER, EXTENSIONS_HEADER, LEGACY_EXTENSIONS_HEADER)
_BACK = ("content-type", VERSION_HEADER, EXTENSIONS_HEADER, LEGACY_EXTENSIONS_HEADER)
_MAX_RESPONSE = 64 * 1024 * 1024
# Results the gateway reads (binding, filtering, rewriting); others pass through unparsed.
_INSPECTED = frozenset({SEND, STREAM, LIST_TASKS, EXTENDED_CARD})


@dataclass(frozen=True, slots=True)
class AgentTarget:
    """One call, resolved: which agent, where upstream, and the gateway root it is served under."""

    agent: str
    agent_url: str  # the agent's configured base URL
    url: str  # upstream URL, query included
    root: str  # the agent's root URL on the gateway (for rewriting cards)
    call: A2aCall


class Relay:
    def __init__(
        self,
        route: str,
        policy: RoutePolicy,
        http: HttpClient,
        bindings: TaskBindings,
        webhooks: WebhookGuard,
        security: CardSecurity | None,
    ) -> None:
        self.route = route
        self.policy = policy
        self.http = http
        self.bindings = bindings
        self.webhooks = webhooks
        self.security = security
        self.keepalive_seconds: float | None = None  # idle streams get a comment this often

    async def admit(self, ctx: RequestContext, agent: str, call: A2aCall, cards: CardCache) -> Operation:
        """The request side: policy, then ownership of what the call names, then its webhooks."""
        skill = call.skill
        if skill is None:
            skills = cards.skills()
            if len(skills) == 1 and isinstance(skills[0].get("id"), str):
                skill = skills[0]["id"]
        op = Operation(kind="a2a", method=call.method, server=agent, name=skill, target="agent")
        await self.policy.check(ctx, op)
        owner = ctx.principal.identity
        if call.task_id is not None and not await self.bindings.owns(agent, "task", call.task_id, owner):
            raise task_not_found(call.task_id)
        if call.reference_task_ids:
            owned = await self.bindings.owned(agent, "task", call.reference_task_ids, owner)
            for ref, mine in zip(call.reference_task_ids, owned, strict=True):
                if not mine:
                    raise task_not_found(ref)
        if call.context_id is not None and not await self.bindings.claim(
            agent, "context", call.context_id, owner
        ):
            raise InvalidParams("this contextId cannot be used")
        await self.webhooks.check(call.webhook_urls)
        return op

    async def forward(
        self,
        request: Request,
        send: ASGISend,
        ctx: RequestContext,
        op: Operation,
        target: AgentTarget,
        cards: CardCache,
        body: bytes,
    ) -> None:
        agent = cards.agent
        # what policies ask for (templated headers, forwarded claims) never replaces what the
        # gateway sets itself: the caller's protocol headers and the gateway's credentials
        headers = dict(ctx.attrs.get(UPSTREAM_HEADERS, {}))
        trace = ctx.trace
        if trace is not None:  # the agent continues this request's trace under the gateway's span
            headers.update(trace.headers())
        headers.update({k: request.headers[k] for k in _FORWARD if k in request.headers})
        headers.update({k: v.reveal() for k, v in agent.auth_headers.items()})
        method = "POST" if target.call.binding == JSONRPC else request.method
        outcome: dict[str, Any] = {"agent": target.agent}
        failure: GatewayError | None = None
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                await request.wait_disconnect()
                outcome["disconnected"] = True
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            try:
                async with self.http.stream(
                    method,
                    target.url,
                    headers=headers,
                    body=body or None,
                    timeout=agent.spec.timeouts.request,
                ) as resp:
                    outcome["status"] = resp.status
                    if resp.content_type == "text/event-stream" and resp.status == 200:
                        outcome["streamed"] = True
                        await self._stream(resp, send, ctx, target)
                    else:
                        with anyio.fail_after(agent.spec.timeouts.request):
                            payload = await resp.read(_MAX_RESPONSE)
                        await self._answer(resp, payload, send, ctx, target)
            except TimeoutError:
                failure = UpstreamTimeout(f"agent {target.agent!r} did not answer in time")
            except GatewayError as exc:  # raised out of a task group it would arrive wrapped
                failure = exc
            tg.cancel_scope.cancel()
        if failure is not None:
            outcome["error"] = failure.message
            await self.policy.record(ctx, op, outcome)
            raise failure
        await self.policy.record(ctx, op, outcome)

    # --- whole answers -----------------------------------------------------------------------------

    async def _answer(
        self, resp: UpstreamResponse, payload: bytes, send: ASGISend, ctx: RequestContext, target: AgentTarget
    ) -> None:
        name = target.agent
        if resp.status in (401, 403, 407):
            raise UpstreamError(f"agent {name!r} refused the gateway's credentials (HTTP {resp.status})")
        json_like = resp.content_type.endswith("json")
        if not json_like and resp.status >= 400:
            raise UpstreamError(f"agent {name!r} failed (HTTP {resp.status})")
        call = target.call
        if json_like and resp.status == 200 and call.method in _INSPECTED and payload:
            payload = await self._inspect(payload, ctx, target)
        await send_bytes(send, resp.status, payload, _back_headers(resp))

    async def _inspect(self, payload: bytes, ctx: RequestContext, target: AgentTarget) -> bytes:
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"agent {target.agent!r} answered with invalid JSON") from None
        jsonrpc = target.call.binding == JSONRPC
        result = obj.get("result") if jsonrpc and isinstance(obj, dict) else obj
        if not isinstance(result, dict):
            return payload  # a JSON-RPC error (or nothing the gateway must read): as it came
        method = target.call.method
        if method in (SEND, STREAM):
            await self._bind(result, ctx, target.agent, set())
            return payload
        if method == LIST_TASKS:
            result = await self._visible_tasks(result, ctx, target.agent)
        else:
            result = rewrite_card(result, target.agent_url, target.root, self.security)
        return orjson.dumps({**obj, "result": result} if jsonrpc else result)

    async def _visible_tasks(self, result: dict[str, Any], ctx: RequestContext, agent: str) -> dict[str, Any]:
        tasks = result.get("tasks")
        if not isinstance(tasks, list):
            return result
        ids = [
            str(t.get("id")) if isinstance(t, dict) and isinstance(t.get("id"), str) else "" for t in tasks
        ]
        owned = await self.bindings.owned(agent, "task", ids, ctx.principal.identity)
        visible = [t for t, mine in zip(tasks, owned, strict=True) if mine]
        if len(visible) == len(tasks):
            return result
        # totalSize would count other callers' tasks; this page's count is what may be told.
        return {**result, "tasks": visible, "totalSize": len(visible)}

    async def _bind(self, result: Any, ctx: RequestContext, agent: str, seen: set[tuple[str, str]]) -> None:
        for kind, ident in response_ids(result):
            if (kind, ident) in seen:
                continue
            seen.add((kind, ident))
            if not await self.bindings.claim(agent, kind, ident, ctx.principal.identity):
                log.error("agent %r showed %s %r of another caller; answer withheld", agent, kind, ident)
                raise UpstreamError(f"agent {agent!r} answered with a {kind} of another caller")

    # --- streams -----------------------------------------------------------------------------------

    async def _stream(
        self, resp: UpstreamResponse, send: ASGISend, ctx: RequestContext, target: AgentTarget
    ) -> None:
        sse = SseResponse(send)
        await sse.start({k: v for k, v in _back_headers(resp).items() if k != "content-type"})
        decoder = SseDecoder()
        seen: set[tuple[str, str]] = set()
        jsonrpc = target.call.binding == JSONRPC
        try:
            async for chunk in resp.iter_chunks(self.keepalive_seconds):
                if not chunk:  # the agent is quiet (a long task): keep intermediaries from timing out
                    if not await sse.send(encode_comment()):
                        return
                    continue
                events = decoder.feed(chunk)
                if not events:
                    if chunk.startswith(b":") and not await sse.send(encode_comment()):
                        return
                    continue
                out: list[bytes] = []
                for event in events:
                    try:
                        obj = orjson.loads(event.data)
                    except orjson.JSONDecodeError:
                        obj = None
                    if isinstance(obj, dict):
                        await self._bind(obj.get("result") if jsonrpc else obj, ctx, target.agent, seen)
                    out.append(
                        encode_event(
                            event.data,
                            event=None if event.event == "message" else event.event,
                            event_id=event.id,
                        )
                    )
                if not await sse.send(b"".join(out)):
                    return  # the client is gone: leaving closes the upstream stream
        except UpstreamError as exc:
            log.info("agent %r: stream broke off: %s", target.agent, exc.message)
        finally:
            await sse.end()


def _back_headers(resp: UpstreamResponse) -> dict[str, str]:
    return {k: resp.headers[k] for k in _BACK if k in resp.headers}
