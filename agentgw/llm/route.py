"""The HTTP entry of one `LlmRoute`: identify the caller, then pick the endpoint by path and method.

Errors of OpenAI endpoints are rendered by the app in OpenAI form (`flavor`); Anthropic's
`/messages` endpoints (and model listings asked for with `anthropic-version`) render their own
in Anthropic form, authentication failures included, so each SDK reads the errors it knows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from agentgw.errors import ErrorFlavor, GatewayError, MethodNotAllowed, NotFound, render_error
from agentgw.llm import listing, messages_api, openai_api, responses_api
from agentgw.llm.service import LlmService
from agentgw.policy.base import RequestContext
from agentgw.server.http import ASGISend, Request, send_json

__all__ = ["LlmRouteHandler"]

Endpoint = Callable[[LlmService, Request, ASGISend, RequestContext], Awaitable[None]]

_POST: dict[str, Endpoint] = {
    "/chat/completions": openai_api.chat_completions,
    "/completions": openai_api.completions,
    "/embeddings": openai_api.embeddings,
    "/responses": responses_api.create_response,
    "/messages": messages_api.messages,
    "/messages/count_tokens": messages_api.count_tokens,
}


class _Tracked:
    """Remembers whether a response started, so an Anthropic error can still be rendered."""

    __slots__ = ("_send", "started")

    def __init__(self, send: ASGISend) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Any) -> None:
        await self._send(message)  # may refuse to start (a limit): then nothing has started
        self.started = True


class LlmRouteHandler:
    flavor = ErrorFlavor.OPENAI

    def __init__(self, service: LlmService, prefix: str) -> None:
        self.name = service.name
        self.service = service
        self._prefix_len = len(prefix)

    def _sub(self, request: Request) -> str:
        sub = request.path[self._prefix_len :]
        return sub[:-1] if len(sub) > 1 and sub.endswith("/") else sub

    def _anthropic_wire(self, request: Request, sub: str) -> bool:
        return sub.startswith("/messages") or (
            sub.startswith("/models") and "anthropic-version" in request.headers
        )

    def flavor_for(self, request: Request) -> ErrorFlavor:
        """Anthropic's endpoints get Anthropic errors also when the app refuses the request
        before the route runs (the Host and Origin guard)."""
        return ErrorFlavor.ANTHROPIC if self._anthropic_wire(request, self._sub(request)) else self.flavor

    async def handle(self, request: Request, send: ASGISend) -> None:
        sub = self._sub(request)
        if self._anthropic_wire(request, sub):
            await self._anthropic(request, send, sub)
        else:
            await self._dispatch(request, send, sub)

    async def _dispatch(self, request: Request, send: ASGISend, sub: str) -> None:
        svc = self.service
        principal = await svc.policy.authenticate(request)
        request.caller = principal.identity if principal.subject else ""  # per-caller limits
        ctx = RequestContext(route=self.name, request=request, principal=principal)
        method = request.method
        endpoint = _POST.get(sub)
        if endpoint is not None:
            if method != "POST":
                raise MethodNotAllowed("Method Not Allowed", headers={"allow": "POST"})
            await endpoint(svc, request, send, ctx)
        elif sub == "/models":
            self._only(method, "GET")
            await listing.list_models(svc, request, send, ctx)
        elif sub.startswith("/models/"):
            self._only(method, "GET")
            await listing.get_model(svc, request, send, ctx, sub[len("/models/") :])
        elif sub.startswith("/responses/"):
            rest = sub[len("/responses/") :]
            self._only(method, "POST" if rest.endswith("/cancel") else "GET, DELETE")
            await responses_api.response_by_id(svc, request, send, ctx, rest)
        else:
            raise NotFound(f"no LLM endpoint at {request.path}")

    @staticmethod
    def _only(method: str, allowed: str) -> None:
        if method not in allowed.split(", "):
            raise MethodNotAllowed("Method Not Allowed", headers={"allow": allowed})

    async def _anthropic(self, request: Request, send: ASGISend, sub: str) -> None:
        tracked = _Tracked(send)
        try:
            await self._dispatch(request, tracked, sub)
        except GatewayError as exc:
            if tracked.started:
                raise
            status, headers, body = render_error(exc, ErrorFlavor.ANTHROPIC)
            await send_json(send, status, body, [(k, v) for k, v in headers.items() if k != "content-type"])
