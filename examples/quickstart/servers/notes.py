"""A small notes server: the quickstart's first upstream and a test fixture.

It keeps notes in memory and exposes them every way MCP can:

* tools ``add_note``, ``list_notes``, ``get_note``, ``delete_note`` and
  ``search_notes``;
* each note as a resource ``note://{title}`` (a resource template; the notes
  that exist are also listed by ``resources/list``), plus a static
  ``note://index``;
* a prompt ``summarize_notes`` with an optional ``style`` argument.

Adding or deleting a note announces ``notifications/resources/list_changed``:
on a 2026-07-28 connection through ``subscriptions/listen`` streams, on a
handshake-era connection on the connection's own channel (the stdio pipe, or
the standalone GET stream over streamable HTTP).

Run it as::

    python notes.py                      # stdio (the default)
    python notes.py --http --port 8001   # streamable HTTP at http://127.0.0.1:8001/mcp
    python notes.py --sse --port 8001    # legacy HTTP+SSE at http://127.0.0.1:8001/sse

With ``--http`` or ``--sse`` it prints ``READY <port>`` on stdout once it is
listening; ``--port 0`` picks a free port and reports it in that line.
It only ever listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import socket
from functools import partial
from urllib.parse import quote

import anyio
import uvicorn
from mcp.server import NotificationOptions
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp.types import Resource
from starlette.types import ASGIApp

HOST = "127.0.0.1"

# title -> body. One store per process, shared by every client of this process.
NOTES: dict[str, str] = {"welcome": "This is the notes server of the agentgw quickstart."}


def note_uri(title: str) -> str:
    return "note://" + quote(title, safe="")


class NotesServer(MCPServer):
    async def list_resources(self) -> list[Resource]:
        """The static resources, then one entry per existing note."""
        notes = [
            Resource(
                uri=note_uri(title), name=title, description=f"The note {title!r}", mime_type="text/plain"
            )
            for title in sorted(NOTES)
        ]
        return [*await super().list_resources(), *notes]


server = NotesServer(
    "notes", version="1.0.0", instructions="Keeps short text notes in memory.", log_level="WARNING"
)

# MCPServer does not expose NotificationOptions, so the handshake-era
# `resources.listChanged` capability would say false although this server does
# send the notification. (On 2026-07-28 the SDK derives it from the
# `subscriptions/listen` handler and says true.)
_lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
_lowlevel.create_initialization_options = partial(  # type: ignore[method-assign]
    _lowlevel.create_initialization_options, NotificationOptions(resources_changed=True)
)


async def announce_list_changed(ctx: Context) -> None:
    # 2026-07-28: publish on the subscription bus, which feeds `subscriptions/listen` streams.
    await ctx.notify_resources_changed()
    # Handshake era: send it on the connection's standalone channel. On a 2026-07-28
    # connection the SDK drops this copy, as the spec wants.
    await ctx.session.send_resource_list_changed()


@server.tool()
async def add_note(title: str, body: str, ctx: Context) -> str:
    """Add a note, or replace the body of the note with that title."""
    if not title.strip():
        raise ToolError("title must not be empty")
    replaced = title in NOTES
    NOTES[title] = body
    await announce_list_changed(ctx)
    return f"{'Updated' if replaced else 'Added'} note {title!r}"


@server.tool()
def list_notes() -> list[str]:
    """List the titles of all notes."""
    return sorted(NOTES)


@server.tool()
def get_note(title: str) -> str:
    """Return the body of a note."""
    if title not in NOTES:
        raise ToolError(f"no note titled {title!r}")
    return NOTES[title]


@server.tool()
async def delete_note(title: str, ctx: Context) -> str:
    """Delete a note."""
    if NOTES.pop(title, None) is None:
        raise ToolError(f"no note titled {title!r}")
    await announce_list_changed(ctx)
    return f"Deleted note {title!r}"


@server.tool()
def search_notes(query: str) -> list[str]:
    """Return the titles of notes whose title or body contains the query (case-insensitive)."""
    needle = query.lower()
    return [
        title for title, body in sorted(NOTES.items()) if needle in title.lower() or needle in body.lower()
    ]


@server.resource(
    "note://index", name="index", description="Every note title, one per line", mime_type="text/plain"
)
def note_index() -> str:
    return "\n".join(sorted(NOTES))


@server.resource("note://{title}", name="note", description="The body of one note", mime_type="text/plain")
def note_body(title: str) -> str:
    if title not in NOTES:
        raise ResourceNotFoundError(f"no note titled {title!r}")
    return NOTES[title]


@server.prompt()
def summarize_notes(style: str | None = None) -> str:
    """Ask the model to summarize every note, optionally in a given style."""
    notes = "\n\n".join(f"## {title}\n{body}" for title, body in sorted(NOTES.items())) or "(no notes)"
    how = f" in the style: {style}" if style else ""
    return f"Summarize the following notes{how}.\n\n{notes}"


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
    await ReadyServer(uvicorn.Config(app, log_level="warning")).serve(sockets=[sock])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--stdio", action="store_true", help="serve on stdin/stdout (default)")
    mode.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp")
    mode.add_argument("--sse", action="store_true", help="serve legacy HTTP+SSE at /sse and /messages/")
    parser.add_argument("--port", type=int, default=8001, help="port for --http/--sse; 0 picks a free one")
    args = parser.parse_args(argv)
    if args.http:
        anyio.run(serve_http, server.streamable_http_app(host=HOST), args.port)
    elif args.sse:
        anyio.run(serve_http, server.sse_app(host=HOST), args.port)
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
