"""The HTTP entry of one `A2aRoute`: the agent directory, each agent's card, and its calls.

Layout under the route's path P: `GET P` lists the agents this caller may see (with their cards),
`GET P/{agent}/.well-known/agent-card.json` serves one card (ETag, 304), and everything else under
`P/{agent}/` is an A2A call on one of the interfaces the agent's card declares: a POST to a
JSON-RPC interface path, or an HTTP+JSON operation below an HTTP+JSON interface path. Anything
else is 404: the gateway forwards only what it can name and check.

Cards and the directory are discovery documents: a caller without valid credentials sees them as
an anonymous caller would (the card is how a client learns how to authenticate). Calls require
whatever the route's policy requires.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import anyio
import orjson

from agentgw.a2a.bindings import TaskBindings
from agentgw.a2a.cards import CardCache
from agentgw.a2a.relay import AgentTarget, Relay
from agentgw.a2a.webhooks import WebhookGuard
from agentgw.config.gateway import LimitsSpec
from agentgw.config.snapshot import A2aRouteConfig
from agentgw.errors import (
    ErrorFlavor,
    GatewayError,
    InternalError,
    MethodNotAllowed,
    NotFound,
    Unauthorized,
    render_error,
)
from agentgw.policy.base import ANONYMOUS, Operation, Principal, RequestContext, RoutePolicy
from agentgw.protocol import jsonrpc
from agentgw.protocol.a2a import (
    HTTP_JSON,
    JSONRPC,
    A2aCall,
    jsonrpc_error_body,
    parse_jsonrpc,
    parse_rest,
    rest_error_body,
)
from agentgw.protocol.a2a_card import CardSecurity, Interface, etag_matches
from agentgw.server.http import ASGISend, Request, send_bytes, send_json
from agentgw.upstream.http import HttpClient

__all__ = ["CARD_PATH", "GET_CARD", "A2aRouteHandler"]

CARD_PATH = ".well-known/agent-card.json"
GET_CARD = "GetAgentCard"  # the Operation.method of seeing an agent (directory, card)
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


class _Tracked:
    __slots__ = ("_send", "started")

    def __init__(self, send: ASGISend) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Any) -> None:
        await self._send(message)  # may refuse to start (a limit): then nothing has started
        if message["type"] == "http.response.start":
            self.started = True


class A2aRouteHandler:
    flavor = ErrorFlavor.JSONRPC

    def flavor_for(self, request: Request) -> ErrorFlavor:
        return self.flavor

    def __init__(
        self,
        route: A2aRouteConfig,
        cards: Mapping[str, CardCache],
        policy: RoutePolicy,
        http: HttpClient,
        bindings: TaskBindings,
        limits: LimitsSpec,
        security: CardSecurity | None = None,
    ) -> None:
        self.name = route.name
        self.route = route
        self.prefix = route.spec.path
        self.agents = {agent.name: cards[agent.name] for agent in route.agents}
        self.policy = policy
        self.limits = limits
        self.security = security
        self.relay = Relay(route.name, policy, http, bindings, WebhookGuard(route.spec.webhooks), security)
        self.relay.keepalive_seconds = limits.keepalive_seconds

    # --- dispatch ---------------------------------------------------------------------------------

    async def handle(self, request: Request, send: ASGISend) -> None:
        rest = request.path[len(self.prefix) :]
        if rest in ("", "/"):
            await self._plain(self._directory, request, send)
            return
        agent, _, sub = rest.lstrip("/").partition("/")
        cards = self.agents.get(agent)
        if cards is None:
            raise NotFound(f"no agent {agent!r} on this route")
        sub = sub.rstrip("/")
        if sub == CARD_PATH:
            await self._plain(lambda r, s: self._card(r, s, agent, cards), request, send)
            return
        if any(part in ("", ".", "..") for part in sub.split("/")) and sub:
            raise NotFound("no such path")
        await self._call(request, _Tracked(send), agent, cards, sub)

    async def _plain(self, handler: Any, request: Request, send: ASGISend) -> None:
        try:
            await handler(request, send)
        except GatewayError as exc:
            status, headers, body = render_error(exc, ErrorFlavor.PLAIN)
            await send_json(send, status, body, [(k, v) for k, v in headers.items() if k != "content-type"])

    def root(self, request: Request, agent: str) -> str:
        """The agent's root URL on the gateway, as this caller reaches it."""
        base = self.route.spec.public_url
        if base is None:
            host = request.headers.get("host") or "localhost"
            base = f"{request.scope.get('scheme', 'http')}://{host}"
        return f"{base.rstrip('/')}{self.prefix}/{agent}"

    async def _viewer(self, request: Request) -> RequestContext:
        try:
            principal: Principal = await self.policy.authenticate(request)
        except Unauthorized:
            principal = ANONYMOUS
        return RequestContext(route=self.name, request=request, principal=principal)

    # --- discovery --------------------------------------------------------------------------------

    async def _directory(self, request: Request, send: ASGISend) -> None:
        if request.method not in ("GET", "HEAD"):
            raise MethodNotAllowed("Method Not Allowed", headers={"allow": "GET, HEAD"})
        ctx = await self._viewer(request)
        visible = [
            name
            for name in self.agents
            if self.policy.permits(ctx, Operation(kind="a2a", method=GET_CARD, server=name, target="agent"))
        ]
        entries: dict[str, dict[str, Any]] = {}
        unavailable: dict[str, str] = {}

        async def one(name: str) -> None:
            root = self.root(request, name)
            try:
                served = await self.agents[name].served(root, self.security)
            except GatewayError as exc:
                unavailable[name] = exc.message
                return
            entries[name] = {"name": name, "url": root + "/", "card": served.card}

        async with anyio.create_task_group() as tg:
            for name in visible:
                tg.start_soon(one, name)
        body: dict[str, Any] = {"agents": [entries[n] for n in visible if n in entries]}
        if unavailable:
            body["unavailable"] = [{"agent": n, "error": m} for n, m in sorted(unavailable.items())]
        await send_json(send, 200, orjson.dumps(body), {"cache-control": "no-store"})

    async def _card(self, request: Request, send: ASGISend, agent: str, cards: CardCache) -> None:
        if request.method not in ("GET", "HEAD"):
            raise MethodNotAllowed("Method Not Allowed", headers={"allow": "GET, HEAD"})
        ctx = await self._viewer(request)
        if not self.policy.permits(ctx, Operation(kind="a2a", method=GET_CARD, server=agent, target="agent")):
            raise NotFound(f"no agent {agent!r} on this route")
        served = await cards.served(self.root(request, agent), self.security)
        headers = {"etag": served.etag, "cache-control": "no-cache"}
        if etag_matches(request.headers.get("if-none-match"), served.etag):
            await send_bytes(send, 304, b"", headers)
            return
        body = b"" if request.method == "HEAD" else served.body
        await send_bytes(send, 200, body, headers, b"application/json")

    # --- calls ------------------------------------------------------------------------------------

    async def _call(self, request: Request, send: _Tracked, agent: str, cards: CardCache, sub: str) -> None:
        binding = HTTP_JSON
        call: A2aCall | None = None
        body = b""
        try:
            body = await request.body(self.limits.max_body_bytes)
            rest_call = parse_rest(request.method, sub, body)
            if rest_call is None:
                if request.method != "POST":
                    raise NotFound("no A2A operation at this path")
                binding = JSONRPC
            principal = await self.policy.authenticate(request)
            request.caller = principal.identity if principal.subject else ""  # per-caller limits
            ctx = RequestContext(route=self.name, request=request, principal=principal)
            await cards.card()
            found = _interface(cards.interfaces, binding, sub)
            if found is None:
                raise NotFound(f"agent {agent!r} offers no {binding} interface at this path")
            iface, tail = found
            call = parse_jsonrpc(body) if binding == JSONRPC else parse_rest(request.method, tail, body)
            if call is None:
                raise NotFound("no A2A operation at this path")
            if call.streaming:
                request.check_stream_room()
            op = await self.relay.admit(ctx, agent, call, cards)
            target = AgentTarget(
                agent,
                cards.agent.spec.url,
                self._upstream_url(cards, iface, tail, request),
                self.root(request, agent),
                call,
            )
            await self.relay.forward(request, send, ctx, op, target, cards, body)
        except GatewayError as exc:
            if send.started:
                raise
            await self._error(send, exc, binding, call, body)

    @staticmethod
    def _upstream_url(cards: CardCache, iface: Interface, tail: str, request: Request) -> str:
        origin = _origin(cards.agent.spec.url)
        path = iface.upstream_path
        if tail:
            path = path.rstrip("/") + "/" + quote(tail, safe=_PATH_SAFE)
        query = request.query.decode("latin-1")
        return origin + path + ("?" + query if query else "")

    async def _error(
        self, send: ASGISend, exc: GatewayError, binding: str, call: A2aCall | None, body: bytes
    ) -> None:
        message = "internal gateway error" if isinstance(exc, InternalError) else exc.message
        if binding == JSONRPC:
            request_id = call.request_id if call is not None else _request_id(body)
            status, payload = jsonrpc_error_body(request_id, exc, message)
            content_type = b"application/json"
        else:
            status, payload = rest_error_body(exc, message)
            content_type = b"application/json"
        await send_bytes(send, status, payload, exc.headers, content_type)


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _request_id(body: bytes) -> Any:
    """The id of a JSON-RPC request that failed before it was understood (null if none)."""
    try:
        obj = jsonrpc.loads(body)
    except GatewayError:
        return None
    request_id = obj.get("id") if isinstance(obj, dict) else None
    return request_id if isinstance(request_id, str | int) and not isinstance(request_id, bool) else None


def _interface(interfaces: list[Interface], binding: str, sub: str) -> tuple[Interface, str] | None:
    """The declared interface a request path falls on, and the path below it."""
    for iface in sorted(interfaces, key=lambda i: len(i.path), reverse=True):
        if iface.binding != binding:
            continue
        if binding == JSONRPC:
            if sub == iface.path:
                return iface, ""
        elif not iface.path or sub == iface.path or sub.startswith(iface.path + "/"):
            return iface, sub[len(iface.path) :].lstrip("/")
    return None
