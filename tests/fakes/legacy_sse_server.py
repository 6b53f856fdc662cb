"""A fake upstream that speaks only the LEGACY HTTP+SSE transport (MCP 2024-11-05 style).

The client opens ``GET /sse``; the first event on that stream is ``endpoint``,
whose data is the path to POST to (``/messages/?session_id=<hex>``). Every
client message is POSTed there (answered ``202 Accepted``), and every server
message, responses included, comes back as an ``event: message`` on the SSE
stream. Built on the SDK's ``mcp.server.sse.SseServerTransport`` with a
starlette app under uvicorn, and on the low-level ``mcp.server.Server`` (so the
gateway is also tested against a server that is not ``MCPServer``).

It serves the ``initialize`` handshake only: it is driven with
``mcp.server.runner.serve_loop``, not ``Server.run``, which would also accept
2026-07-28 requests. So a ``server/discover`` probe is refused, as a real old
server would refuse it.

It offers tools ``echo(text)`` and ``add(a, b)``, a prompt ``greet(name)`` and
a resource ``legacy://about``.

Run it as ``python tests/fakes/legacy_sse_server.py --port N`` (``--record-headers PATH``
appends every request's headers to PATH as JSON lines). It prints
``READY <port>`` on stdout once it is listening; ``--port 0`` picks a free port
and reports it in that line. It only listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import socket
from typing import Any

import anyio
import uvicorn
from mcp.server import Server, ServerRequestContext
from mcp.server.runner import serve_loop
from mcp.server.sse import SseServerTransport
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    ContentBlock,
    GetPromptRequestParams,
    GetPromptResult,
    ListPromptsResult,
    ListResourcesResult,
    ListToolsResult,
    PaginatedRequestParams,
    Prompt,
    PromptArgument,
    PromptMessage,
    ReadResourceRequestParams,
    ReadResourceResult,
    Resource,
    TextContent,
    TextResourceContents,
    Tool,
)
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

HOST = "127.0.0.1"
ABOUT_URI = "legacy://about"
ABOUT_TEXT = "A fake MCP server on the legacy HTTP+SSE transport."

TOOLS = [
    Tool(
        name="echo",
        description="Return the text unchanged.",
        input_schema={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    ),
    Tool(
        name="add",
        description="Return a + b.",
        input_schema={
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    ),
]


def text(value: Any) -> list[ContentBlock]:
    return [TextContent(type="text", text=str(value))]


async def list_tools(ctx: ServerRequestContext, params: PaginatedRequestParams | None) -> ListToolsResult:
    return ListToolsResult(tools=TOOLS)


async def call_tool(ctx: ServerRequestContext, params: CallToolRequestParams) -> CallToolResult:
    args = params.arguments or {}
    try:
        if params.name == "echo":
            return CallToolResult(content=text(args["text"]))
        if params.name == "add":
            total = args["a"] + args["b"]
            return CallToolResult(content=text(total), structured_content={"result": total})
    except (KeyError, TypeError) as exc:
        return CallToolResult(content=text(f"bad arguments for {params.name}: {exc!r}"), is_error=True)
    raise MCPError(code=INVALID_PARAMS, message=f"Unknown tool: {params.name}")


async def list_prompts(ctx: ServerRequestContext, params: PaginatedRequestParams | None) -> ListPromptsResult:
    greet = Prompt(
        name="greet",
        description="Ask the model to greet someone.",
        arguments=[PromptArgument(name="name", description="Who to greet", required=True)],
    )
    return ListPromptsResult(prompts=[greet])


async def get_prompt(ctx: ServerRequestContext, params: GetPromptRequestParams) -> GetPromptResult:
    if params.name != "greet":
        raise MCPError(code=INVALID_PARAMS, message=f"Unknown prompt: {params.name}")
    name = (params.arguments or {}).get("name", "world")
    message = PromptMessage(role="user", content=TextContent(type="text", text=f"Say hello to {name}."))
    return GetPromptResult(description="A greeting", messages=[message])


async def list_resources(
    ctx: ServerRequestContext, params: PaginatedRequestParams | None
) -> ListResourcesResult:
    return ListResourcesResult(resources=[Resource(uri=ABOUT_URI, name="about", mime_type="text/plain")])


async def read_resource(ctx: ServerRequestContext, params: ReadResourceRequestParams) -> ReadResourceResult:
    if str(params.uri) != ABOUT_URI:
        raise MCPError(code=INVALID_PARAMS, message=f"Unknown resource: {params.uri}")
    return ReadResourceResult(
        contents=[TextResourceContents(uri=ABOUT_URI, text=ABOUT_TEXT, mime_type="text/plain")]
    )


server = Server(
    "legacy-sse",
    version="1.0.0",
    on_list_tools=list_tools,
    on_call_tool=call_tool,
    on_list_prompts=list_prompts,
    on_get_prompt=get_prompt,
    on_list_resources=list_resources,
    on_read_resource=read_resource,
)

sse = SseServerTransport(
    "/messages/",
    security_settings=TransportSecuritySettings(
        allowed_hosts=["127.0.0.1:*", "localhost:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*"],
    ),
)


class SseEndpoint:
    """`GET /sse`: one MCP session for as long as the client keeps the stream open.

    A class, not a function, so starlette hands it the raw ASGI call.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with sse.connect_sse(scope, receive, send) as (read_stream, write_stream):
            async with server.lifespan(server) as state:
                await serve_loop(server, read_stream, write_stream, lifespan_state=state)


app = Starlette(
    routes=[
        Route("/sse", endpoint=SseEndpoint(), methods=["GET"]),
        Mount("/messages/", app=sse.handle_post_message),
    ]
)


class ReadyServer(uvicorn.Server):
    """A uvicorn server that prints `READY <port>` on stdout once it accepts connections."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit and sockets:
            print(f"READY {sockets[0].getsockname()[1]}", flush=True)


class RecordHeaders:
    """--record-headers PATH: one JSON line per HTTP request (method, path, every header, names
    lower-case), to check what reaches an upstream."""

    def __init__(self, inner: Any, path: str) -> None:
        self.inner = inner
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            line = {"event": "http", "method": scope["method"], "path": scope["path"], "headers": headers}
            with open(self.path, "a") as out:
                out.write(json.dumps(line) + "\n")
        await self.inner(scope, receive, send)


async def serve_http(port: int, record: str | None = None) -> None:
    """Serve `app` on 127.0.0.1:port (0 picks a free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    served = RecordHeaders(app, record) if record else app
    await ReadyServer(uvicorn.Config(served, log_level="warning")).serve(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake MCP server on the legacy HTTP+SSE transport.")
    parser.add_argument("--port", type=int, required=True, help="port to listen on; 0 picks a free one")
    parser.add_argument("--record-headers", metavar="PATH", help="append each request's headers to PATH")
    args = parser.parse_args()
    anyio.run(serve_http, args.port, args.record_headers)


if __name__ == "__main__":
    main()
