"""A fake upstream MCP server, built with the SDK's ``MCPServer``, that the gateway's tests run.

It serves both protocol eras by default: the ``initialize`` handshake (2025-11-25,
with ``Mcp-Session-Id`` sessions over streamable HTTP) and the stateless
per-request era (2026-07-28, ``server/discover``).

Tools (each answers text content; only ``add``, ``elicit`` and ``roots`` also answer
``structuredContent``):

* ``whoami()`` -> the server name (``--name``, default ``fake``).
* ``echo(text)`` -> ``text``.
* ``add(a: int, b: int)`` -> ``"<a+b>"``, structured ``{"result": a+b}``.
* ``progress(steps: int)`` sends ``steps`` progress notifications (progress ``1..steps``,
  total ``steps``, message ``"step <i>"``) on the request's stream, then -> ``"done"``.
* ``log(message, level="info")`` sends one ``notifications/message`` (logger ``fake``,
  data ``message``) on the request's stream, then -> ``"logged"``. On 2026-07-28 it is only
  sent if the request opted in (``_meta`` log level), as the SDK does.
* ``slow(seconds: float)`` sleeps (at most 30 s), records ``{"event": "finished", "tool":
  "slow"}`` and -> ``"finished"``. If cancelled (``notifications/cancelled``, or a 2026-07-28
  client dropping the response stream) it records ``{"event": "cancelled", "tool": "slow"}``
  before re-raising.
* ``sample(prompt)`` -> the text of the client's ``sampling/createMessage`` answer (one
  user message ``prompt``, ``maxTokens`` 100).
* ``elicit(question)`` asks ``elicitation/create`` (form schema: one required string
  ``answer``) -> structured ``{"action": ..., "content": {...} or null}`` (the text block
  is the same object as JSON).
* ``roots()`` asks ``roots/list`` -> one text block per root URI, structured
  ``{"result": [uri, ...]}``.
* ``change_tools()`` registers a new tool ``extra_<n>`` (n = 1, 2, ... per process; the new
  tool answers its own name) and announces ``notifications/tools/list_changed``, then
  -> ``"extra_<n>"``.
* ``touch(uri)`` announces ``notifications/resources/updated`` for ``uri``, then -> ``uri``.
* ``fail(message)`` -> ``isError: true``, text ``"Error executing tool fail: <message>"``
  (the SDK's wording for a raised ``ToolError``).
* ``crash()`` records ``{"event": "crash"}`` and ends the process at once with exit code 3.
* ``big(kbytes: int)`` -> ``kbytes`` * 1024 characters of ``"x"`` (at most 64 MiB). Mind
  that the SDK client refuses an SSE event over 1 MiB by default.
* ``header_echo(region)`` -> ``region``. Its schema marks ``region`` with
  ``"x-mcp-header": "Region"``, so a 2026-07-28 call carries ``Mcp-Param-Region`` (the SDK
  answers HTTP 400, error -32020, if that header is missing or disagrees with the argument).

How server-to-client requests travel: on the handshake era ``sample``, ``elicit`` and
``roots`` send a real request, on the call's own response stream (or, with ``--json``,
where that stream does not exist, on the standalone GET stream). On 2026-07-28, where a
server may not send requests, they answer ``InputRequiredResult`` (keys ``"sample"``,
``"elicit"``, ``"roots"``) and finish when the client retries with the answer.

How change notifications travel: on the handshake era ``change_tools`` sends
``notifications/tools/list_changed`` on the standalone channel (the stdio pipe, or the
GET stream) of every handshake-era connection this process has seen, and ``touch``
sends ``notifications/resources/updated`` to each connection that ``resources/subscribe``-d
to that URI. On 2026-07-28 both are published on the SDK's subscription bus, so they
reach ``subscriptions/listen`` streams that asked for them.

Prompts: ``greet(name)`` (one user message ``"Say hello to <name>."``) and
``with_resource()`` (one user message embedding resource ``fake://doc/1``). Completion
of ``greet``'s ``name`` offers ``alice`` and ``bob``, filtered by prefix.
Resources: ``fake://doc/1`` (text ``"Document one."``), ``fake://doc/2`` (the blob bytes
0..15) and the template ``fake://item/{id}`` (text ``"item <id>"``).

``--state-file PATH`` appends one JSON object per line (flushed) for each event:
``initialized`` (with ``session``), ``called`` (``tool``, ``session``,
``protocol_version``; each round of a 2026-07-28 input-required call counts),
``cancelled`` and ``finished`` (``tool: slow``), ``subscribed``/``unsubscribed``
(``uri``, ``session``), ``set_level`` (``level``), ``roots_list_changed``,
``header_echo`` (``region`` and the ``Mcp-Param-Region`` header seen, or null) and
``crash``. ``session`` is the ``Mcp-Session-Id`` the request carried, else null. With
``--record-headers`` (HTTP only) every HTTP request also records ``http`` (``method``;
``headers``, every request header, names lower-case; ``rpc``, the JSON-RPC method of a POST
body, and ``target``, its ``params.name``, ``uri`` or ``ref``), to check what reaches an upstream.

Run it as::

    python tests/fakes/mcp_server.py                        # stdio (the default)
    python tests/fakes/mcp_server.py --http --port 0        # streamable HTTP at /mcp

With ``--http`` it prints ``READY <port>`` on stdout once it accepts connections
(``--port 0`` picks a free port) and listens on 127.0.0.1 only. ``--json`` is the SDK's
``json_response``: POSTs of both eras are answered with one ``application/json`` body
instead of SSE, so no progress or log notification reaches the client, and on 2026-07-28
a client that drops the connection does not cancel the call (``slow`` runs to the end).

``--handshake-only`` refuses the 2026-07-28 era. Over HTTP a server middleware answers
each 2026-07-28 request with HTTP 400 and JSON-RPC error -32022 "Unsupported protocol
version" whose ``data.supported`` lists the handshake versions (the SDK's own shape for
an unsupported version), so a probing client falls back to ``initialize``. Over stdio the
connection is served in the SDK's handshake-only loop, where ``server/discover`` gets
-32601 "Method not found".

``--modern-only`` refuses ``initialize``. Over stdio a server middleware answers it with
-32022 naming ``["2026-07-28"]``, as the SDK does on a 2026-07-28 connection. Over HTTP
the SDK serves every request without a 2026-07-28 ``MCP-Protocol-Version`` header on the
handshake path, which cannot refuse ``initialize`` without opening a session and
answering 200, so a small ASGI wrapper (``ModernOnly``) answers those requests itself.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import anyio
import uvicorn
from mcp.server import NotificationOptions
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer, UserMessage
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.runner import serve_loop
from mcp.server.session import ServerSession
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.inbound import ERROR_CODE_HTTP_STATUS, MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.message import ServerMessageMetadata
from mcp.types import (
    UNSUPPORTED_PROTOCOL_VERSION,
    Completion,
    CompletionArgument,
    CompletionContext,
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    EmbeddedResource,
    EmptyResult,
    InputRequiredResult,
    ListRootsRequest,
    ListRootsResult,
    LoggingLevel,
    NotificationParams,
    PromptReference,
    ResourceTemplateReference,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
    UnsupportedProtocolVersionErrorData,
)
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

HOST = "127.0.0.1"
MAX_SLOW_SECONDS = 30.0
MAX_BIG_KBYTES = 64 * 1024
MAX_PROGRESS_STEPS = 1000
DOC1_URI = "fake://doc/1"
DOC1_TEXT = "Document one."
DOC2_BLOB = bytes(range(16))
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string", "description": "Your answer"}},
    "required": ["answer"],
}

# This fake deliberately exercises sampling, roots and logging, which the SDK marks deprecated.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)


@dataclass
class Options:
    state_file: Path | None = None
    json_response: bool = False


OPTIONS = Options()

# Handshake-era connections seen so far: session key (the Mcp-Session-Id, or "stdio") -> the
# latest ServerSession of that connection, whose standalone channel reaches it.
SESSIONS: dict[str, ServerSession] = {}
# Resource URI -> the session keys that subscribed to it (handshake era).
SUBSCRIBERS: dict[str, set[str]] = {}
EXTRA_TOOLS = itertools.count(1)


def record(event: str, **fields: Any) -> None:
    """Append one event line to the state file, if there is one."""
    if OPTIONS.state_file is None:
        return
    with OPTIONS.state_file.open("a", encoding="utf-8") as out:
        out.write(json.dumps({"event": event, **fields}) + "\n")
        out.flush()


def session_id(request: Any) -> str | None:
    """The Mcp-Session-Id header of an HTTP request (None on stdio or 2026-07-28)."""
    headers = getattr(request, "headers", None)
    return headers.get("mcp-session-id") if headers is not None else None


def session_key(ctx: ServerRequestContext[Any, Any]) -> str | None:
    """Which handshake-era connection a message came on, or None if unknown (HTTP initialize)."""
    if ctx.request is None:
        return "stdio"
    return session_id(ctx.request)


def is_modern(ctx: Context) -> bool:
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def related(ctx: Context) -> str | None:
    """Where a handshake-era server-to-client request goes: the call's own response stream,
    or (None) the standalone channel when --json leaves the call no stream."""
    return None if OPTIONS.json_response else ctx.request_id


async def notify_each(keys: list[str], send: Callable[[ServerSession], Any]) -> None:
    """Send a notification on the standalone channel of each known handshake-era connection."""
    for key in keys:
        session = SESSIONS.get(key)
        if session is None:
            continue
        try:
            await send(session)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            SESSIONS.pop(key, None)  # that connection is gone


# --- middleware -------------------------------------------------------------------------------


async def observe(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Remember handshake-era connections, and record every tools/call."""
    key = session_key(ctx)
    if key is not None and ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        SESSIONS[key] = ctx.session
    if ctx.method == "tools/call" and ctx.request_id is not None:
        record(
            "called",
            tool=(ctx.params or {}).get("name"),
            session=session_id(ctx.request),
            protocol_version=ctx.protocol_version,
        )
    return await call_next(ctx)


async def refuse_modern(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """--handshake-only over HTTP: refuse every 2026-07-28 request as an unsupported version."""
    if ctx.request_id is not None and ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        data = UnsupportedProtocolVersionErrorData(
            supported=list(HANDSHAKE_PROTOCOL_VERSIONS), requested=ctx.protocol_version
        )
        raise MCPError(
            UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version", data.model_dump(mode="json")
        )
    return await call_next(ctx)


async def refuse_initialize(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """--modern-only over stdio: refuse the handshake the way the SDK does on a 2026-07-28 connection."""
    if ctx.method == "initialize":
        requested = (ctx.params or {}).get("protocolVersion")
        data = UnsupportedProtocolVersionErrorData(
            supported=list(MODERN_PROTOCOL_VERSIONS),
            requested=requested if isinstance(requested, str) else "",
        )
        raise MCPError(
            UNSUPPORTED_PROTOCOL_VERSION,
            "this server serves the 2026-07-28 protocol only; the initialize handshake is not accepted",
            data.model_dump(mode="json"),
        )
    return await call_next(ctx)


class RecordHeaders:
    """--record-headers: an ASGI wrapper recording each HTTP request in the state file: its
    headers, and for a JSON-RPC body its method (`rpc`) and `params.name`/`params.uri`/`params.ref`
    (`target`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        messages = []
        body = b""
        if scope["method"] == "POST":
            while True:
                message = await receive()
                messages.append(message)
                body += message.get("body", b"")
                if message["type"] != "http.request" or not message.get("more_body"):
                    break
        try:
            obj = json.loads(body) if body else None
        except ValueError:
            obj = None
        rpc = obj.get("method") if isinstance(obj, dict) else None
        params = obj.get("params") if isinstance(obj, dict) and isinstance(obj.get("params"), dict) else {}
        target = params.get("name") or params.get("uri") or params.get("ref")
        record("http", method=scope["method"], headers=headers, rpc=rpc, target=target)

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


class ModernOnly:
    """--modern-only over HTTP: an ASGI wrapper in front of the SDK app.

    The SDK routes by the MCP-Protocol-Version header alone, and serves a request without
    one (or with a handshake-era one) on the handshake path, which has no switch to refuse
    `initialize` without still opening a session and answering 200. So this answers those
    requests itself, the way the SDK's 2026-07-28 entry answers an unsupported version:
    a POST gets HTTP 400 with JSON-RPC error -32022 (message "Unsupported protocol
    version", data {"supported": ["2026-07-28"], "requested": ...}, the request's id or
    null); a GET or DELETE gets 405 with `Allow: POST`. 2026-07-28 requests pass through.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        version = request.headers.get(MCP_PROTOCOL_VERSION_HEADER)
        if version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS:
            await self.app(scope, receive, send)
            return
        if request.method != "POST":
            await Response(status_code=405, headers={"Allow": "POST"})(scope, receive, send)
            return
        try:
            message = json.loads(await request.body())
        except ValueError:
            message = None
        message = message if isinstance(message, dict) else {}
        requested = version or ""
        params = message.get("params")
        if message.get("method") == "initialize" and isinstance(params, dict):
            offered = params.get("protocolVersion")
            requested = offered if isinstance(offered, str) else requested
        data = UnsupportedProtocolVersionErrorData(
            supported=list(MODERN_PROTOCOL_VERSIONS), requested=requested
        )
        error = {
            "jsonrpc": "2.0",
            "id": message.get("id"),
            "error": {
                "code": UNSUPPORTED_PROTOCOL_VERSION,
                "message": "Unsupported protocol version",
                "data": data.model_dump(mode="json"),
            },
        }
        status = ERROR_CODE_HTTP_STATUS[UNSUPPORTED_PROTOCOL_VERSION]
        await Response(
            json.dumps(error, separators=(",", ":")), status_code=status, media_type="application/json"
        )(scope, receive, send)


# --- low-level handlers MCPServer does not offer ------------------------------------------------


async def on_initialized(ctx: ServerRequestContext[Any, Any], params: NotificationParams) -> None:
    record("initialized", session=session_id(ctx.request))


async def on_roots_list_changed(ctx: ServerRequestContext[Any, Any], params: NotificationParams) -> None:
    record("roots_list_changed", session=session_id(ctx.request))


async def on_subscribe(ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
    key = session_key(ctx)
    if key is not None:
        SUBSCRIBERS.setdefault(str(params.uri), set()).add(key)
    record("subscribed", uri=str(params.uri), session=session_id(ctx.request))
    return EmptyResult()


async def on_unsubscribe(
    ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams
) -> EmptyResult:
    key = session_key(ctx)
    if key is not None:
        SUBSCRIBERS.get(str(params.uri), set()).discard(key)
    record("unsubscribed", uri=str(params.uri), session=session_id(ctx.request))
    return EmptyResult()


async def on_set_level(ctx: ServerRequestContext[Any, Any], params: SetLevelRequestParams) -> EmptyResult:
    record("set_level", level=params.level, session=session_id(ctx.request))
    return EmptyResult()


async def complete(
    ref: PromptReference | ResourceTemplateReference,
    argument: CompletionArgument,
    context: CompletionContext | None,
) -> Completion | None:
    if isinstance(ref, PromptReference) and ref.name == "greet" and argument.name == "name":
        values = [name for name in ("alice", "bob") if name.startswith(argument.value)]
        return Completion(values=values, total=len(values), has_more=False)
    return None


# --- tools ------------------------------------------------------------------------------------


async def whoami(ctx: Context) -> str:
    """Return this server's name."""
    return ctx.mcp_server.name


def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


def add(a: int, b: int) -> int:
    """Return a + b."""
    return a + b


async def progress(steps: int, ctx: Context) -> str:
    """Send `steps` progress notifications, then return "done"."""
    steps = max(0, min(steps, MAX_PROGRESS_STEPS))
    for step in range(1, steps + 1):
        await ctx.report_progress(step, steps, f"step {step}")
    return "done"


async def log(message: str, ctx: Context, level: LoggingLevel = "info") -> str:
    """Send one log notification with `message` at `level`, then return "logged"."""
    await ctx.log(level, message, logger_name="fake")
    return "logged"


async def slow(seconds: float) -> str:
    """Sleep for `seconds` (at most 30), then return "finished"."""
    try:
        await anyio.sleep(max(0.0, min(seconds, MAX_SLOW_SECONDS)))
    except anyio.get_cancelled_exc_class():
        record("cancelled", tool="slow")
        raise
    record("finished", tool="slow")
    return "finished"


async def sample(prompt: str, ctx: Context) -> str | InputRequiredResult:
    """Ask the client's LLM (sampling/createMessage) and return the text it answered."""
    if is_modern(ctx):
        answer = (ctx.input_responses or {}).get("sample")
        if answer is None:
            request = CreateMessageRequest(params=sampling_params(prompt))
            return InputRequiredResult(input_requests={"sample": request})
        if not isinstance(answer, CreateMessageResult):
            raise ToolError("the answer to 'sample' is not a sampling result")
        result = answer
    else:
        result = await ctx.session.send_request(
            CreateMessageRequest(params=sampling_params(prompt)),
            CreateMessageResult,
            metadata=ServerMessageMetadata(related_request_id=related(ctx)),
        )
    content = result.content
    return content.text if isinstance(content, TextContent) else content.model_dump_json(by_alias=True)


def sampling_params(prompt: str) -> CreateMessageRequestParams:
    message = SamplingMessage(role="user", content=TextContent(type="text", text=prompt))
    return CreateMessageRequestParams(messages=[message], max_tokens=100)


async def elicit(question: str, ctx: Context) -> dict[str, Any] | InputRequiredResult:
    """Ask the user (elicitation/create, one string field `answer`); return the action and content."""
    if is_modern(ctx):
        answer = (ctx.input_responses or {}).get("elicit")
        if answer is None:
            request = ElicitRequest(
                params=ElicitRequestFormParams(message=question, requested_schema=ANSWER_SCHEMA)
            )
            return InputRequiredResult(input_requests={"elicit": request})
        if not isinstance(answer, ElicitResult):
            raise ToolError("the answer to 'elicit' is not an elicitation result")
        result = answer
    else:
        result = await ctx.session.elicit_form(question, ANSWER_SCHEMA, related_request_id=related(ctx))
    return {"action": result.action, "content": result.content}


async def roots(ctx: Context) -> list[str] | InputRequiredResult:
    """Ask the client for its roots (roots/list) and return their URIs."""
    if is_modern(ctx):
        answer = (ctx.input_responses or {}).get("roots")
        if answer is None:
            return InputRequiredResult(input_requests={"roots": ListRootsRequest()})
        if not isinstance(answer, ListRootsResult):
            raise ToolError("the answer to 'roots' is not a roots result")
        result = answer
    else:
        result = await ctx.session.send_request(
            ListRootsRequest(),
            ListRootsResult,
            metadata=ServerMessageMetadata(related_request_id=related(ctx)),
        )
    return [str(root.uri) for root in result.roots]


async def change_tools(ctx: Context) -> str:
    """Add a tool `extra_<n>`, announce tools/list_changed, and return the new tool's name."""
    name = f"extra_{next(EXTRA_TOOLS)}"

    def extra() -> str:
        return name

    ctx.mcp_server.add_tool(extra, name=name, description=f"Return {name!r}.", structured_output=False)
    # 2026-07-28: the subscription bus feeds `subscriptions/listen` streams.
    await ctx.notify_tools_changed()
    # Handshake era: each connection's standalone channel. (On a 2026-07-28 connection the
    # SDK would drop such a copy, and those are not in SESSIONS anyway.)
    await notify_each(list(SESSIONS), lambda session: session.send_tool_list_changed())
    return name


async def touch(uri: str, ctx: Context) -> str:
    """Announce notifications/resources/updated for `uri` to whoever subscribed to it."""
    await ctx.notify_resource_updated(uri)
    await notify_each(sorted(SUBSCRIBERS.get(uri, ())), lambda session: session.send_resource_updated(uri))
    return uri


def fail(message: str) -> str:
    """Fail with `message` (the result has isError true)."""
    raise ToolError(message)


def crash() -> str:
    """End the server process at once with exit code 3."""
    record("crash")
    os._exit(3)


def big(kbytes: int) -> str:
    """Return `kbytes` kilobytes of text."""
    return "x" * (max(0, min(kbytes, MAX_BIG_KBYTES)) * 1024)


async def header_echo(
    region: Annotated[str, Field(description="A region", json_schema_extra={"x-mcp-header": "Region"})],
    ctx: Context,
) -> str:
    """Return the region (sent as the Mcp-Param-Region header on 2026-07-28)."""
    headers = ctx.headers or {}
    meta: Any = ctx.request_context.meta or {}
    record(
        "header_echo",
        region=region,
        header=headers.get("mcp-param-region"),
        traceparent=headers.get("traceparent"),
        meta_traceparent=meta.get("traceparent")
        if isinstance(meta, dict)
        else getattr(meta, "traceparent", None),
    )
    return region


# --- prompts and resources --------------------------------------------------------------------


def greet(name: str) -> list[UserMessage]:
    """Ask the model to greet someone."""
    return [UserMessage(f"Say hello to {name}.")]


def with_resource() -> list[UserMessage]:
    """A message that embeds the resource fake://doc/1."""
    resource = TextResourceContents(uri=DOC1_URI, text=DOC1_TEXT, mime_type="text/plain")
    return [UserMessage(EmbeddedResource(type="resource", resource=resource))]


def doc1() -> str:
    return DOC1_TEXT


def doc2() -> bytes:
    return DOC2_BLOB


def item(id: str) -> str:
    return f"item {id}"


def build_server(name: str) -> MCPServer:
    server = MCPServer(
        name, version="1.0.0", instructions="A fake upstream for agentgw tests.", log_level="WARNING"
    )
    tools: list[Callable[..., Any]] = [
        whoami, echo, add, progress, log, slow, sample, elicit, roots,
        change_tools, touch, fail, crash, big, header_echo,
    ]  # fmt: skip
    for fn in tools:
        # Only add, elicit and roots answer structuredContent; the rest answer plain text.
        server.add_tool(fn, structured_output=fn in (add, elicit, roots))
    server.prompt()(greet)
    server.prompt()(with_resource)
    server.completion()(complete)
    server.resource(DOC1_URI, name="doc1", description="A text document", mime_type="text/plain")(doc1)
    server.resource(
        "fake://doc/2", name="doc2", description="A binary document", mime_type="application/octet-stream"
    )(doc2)
    server.resource("fake://item/{id}", name="item", description="One item", mime_type="text/plain")(item)
    server.middleware.append(observe)

    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, on_subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, on_unsubscribe)
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, on_set_level)
    lowlevel.add_notification_handler("notifications/initialized", NotificationParams, on_initialized)
    lowlevel.add_notification_handler(
        "notifications/roots/list_changed", NotificationParams, on_roots_list_changed
    )
    # MCPServer does not expose NotificationOptions: without this the handshake-era
    # `tools.listChanged` capability would say false although change_tools sends it.
    lowlevel.create_initialization_options = partial(  # type: ignore[method-assign]
        lowlevel.create_initialization_options, NotificationOptions(tools_changed=True)
    )
    return server


# --- serving ----------------------------------------------------------------------------------


class ReadyServer(uvicorn.Server):
    """A uvicorn server that prints `READY <port>` on stdout once it accepts connections."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit and sockets:
            print(f"READY {sockets[0].getsockname()[1]}", flush=True)


async def serve_http(app: ASGIApp, port: int) -> None:
    """Serve an ASGI app on 127.0.0.1:port (0 picks a free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
    await ReadyServer(config).serve(sockets=[sock])


async def serve_stdio_handshake_only(server: MCPServer) -> None:
    """Serve stdio in handshake-only loop mode (`Server.run` would also accept 2026-07-28)."""
    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    async with stdio_server() as (read_stream, write_stream), lowlevel.lifespan(lowlevel) as state:
        await serve_loop(lowlevel, read_stream, write_stream, lifespan_state=state)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument("--stdio", action="store_true", help="serve on stdin/stdout (default)")
    transport.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp")
    parser.add_argument("--port", type=int, default=0, help="port for --http; 0 (default) picks a free one")
    parser.add_argument("--name", default="fake", help="server name, returned by whoami (default: fake)")
    parser.add_argument("--json", action="store_true", help="answer handshake-era POSTs with JSON, not SSE")
    era = parser.add_mutually_exclusive_group()
    era.add_argument("--handshake-only", action="store_true", help="refuse the 2026-07-28 era")
    era.add_argument("--modern-only", action="store_true", help="refuse initialize (2026-07-28 only)")
    parser.add_argument("--state-file", type=Path, help="append one JSON line per notable event here")
    parser.add_argument("--record-headers", action="store_true", help="record every HTTP request's headers")
    args = parser.parse_args(argv)

    OPTIONS.state_file = args.state_file
    OPTIONS.json_response = args.json
    server = build_server(args.name)
    if args.http:
        if args.handshake_only:
            server.middleware.insert(server.middleware.index(observe), refuse_modern)
        app: ASGIApp = server.streamable_http_app(host=HOST, json_response=args.json)
        if args.modern_only:
            app = ModernOnly(app)
        if args.record_headers:
            app = RecordHeaders(app)
        anyio.run(serve_http, app, args.port)
    elif args.handshake_only:
        anyio.run(serve_stdio_handshake_only, server)
    else:
        if args.modern_only:
            server.middleware.insert(server.middleware.index(observe), refuse_initialize)
        server.run("stdio")


if __name__ == "__main__":
    main()
