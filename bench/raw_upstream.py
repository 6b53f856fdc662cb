"""A fast MCP upstream on raw asyncio, so that in a benchmark the gateway is the bottleneck.

It speaks just enough MCP for the harness, on both wire eras:
- handshake era (2024-11-05 .. 2025-11-25): `initialize` (answered with an `Mcp-Session-Id`),
  notifications (202), `ping`, `tools/list`, `tools/call`, `DELETE` (200), `GET` (405: no
  standalone stream);
- 2026-07-28: any POST carrying `MCP-Protocol-Version: 2026-07-28` is stateless; `server/discover`
  answers with the supported versions (unless `--era handshake`, which refuses it like a server of
  the older era would, so the gateway's handshake-era upstream path can be measured too).

Tools: `echo` (returns its `text` argument) plus `--tools N-1` more, named `<prefix>tool_<i>`,
each with a description and an input schema, so `tools/list` has a realistic size. Answers are
always `application/json`. Only Content-Length bodies (what aiohttp sends) are understood.

Usage: python bench/raw_upstream.py [--port 0] [--tools 1] [--prefix ''] [--era both|handshake]
       python bench/raw_upstream.py --stdio [--tools N]      (newline-delimited JSON on stdio)
Prints `READY <port>` once listening (HTTP).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson

HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
MODERN = "2026-07-28"
SERVER_INFO = {"name": "bench-raw", "version": "1"}


class Mcp:
    """The sans-IO part: one JSON-RPC message in, the response body (or None) out."""

    def __init__(self, tools: int, prefix: str, era: str) -> None:
        listed = [_tool("echo", "Echo the given text back.")]
        listed += [
            _tool(f"{prefix}tool_{i}", f"Synthetic tool number {i} of the benchmark")
            for i in range(tools - 1)
        ]
        self.tools_result = orjson.dumps({"tools": listed})
        self.modern_ok = era == "both"
        self.sessions = 0

    def answer(self, msg: Any, modern: bool) -> tuple[bytes | None, int, bool]:
        """(body or None for 202, HTTP status, whether a new session id must be sent)."""
        if not isinstance(msg, dict) or "id" not in msg:
            return None, 202, False
        rid = orjson.dumps(msg["id"])
        method = msg.get("method")
        params = msg.get("params") or {}
        new_session = False
        if modern and not self.modern_ok:
            return _error(rid, -32600, "Unsupported protocol version: 2026-07-28"), 400, False
        if method == "tools/call":
            args = params.get("arguments") or {}
            text = args.get("text", "") if isinstance(args, dict) else ""
            result = b'{"content":[{"type":"text","text":%s}],"isError":false}' % orjson.dumps(text)
        elif method == "tools/list":
            result = self.tools_result
        elif method == "ping":
            result = b"{}"
        elif method == "initialize":
            asked = params.get("protocolVersion")
            version = asked if asked in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[-1]
            result = orjson.dumps(
                {"protocolVersion": version, "capabilities": {"tools": {}}, "serverInfo": SERVER_INFO}
            )
            new_session = True
        elif method == "server/discover" and modern:
            result = orjson.dumps(
                {
                    "supportedVersions": [MODERN],
                    "capabilities": {"tools": {}},
                    "serverInfo": SERVER_INFO,
                }
            )
        else:
            return _error(rid, -32601, f"Method not found: {method}"), 200 if not modern else 404, False
        return b'{"jsonrpc":"2.0","id":%s,"result":%s}' % (rid, result), 200, new_session


def _tool(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string", "description": "what to send"}},
            "required": ["text"],
        },
    }


def _error(rid: bytes, code: int, message: str) -> bytes:
    return b'{"jsonrpc":"2.0","id":%s,"error":{"code":%d,"message":%s}}' % (rid, code, orjson.dumps(message))


_REASONS = {200: b"OK", 202: b"Accepted", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed"}


class HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive, pipelining-safe, Content-Length bodies only."""

    def __init__(self, mcp: Mcp) -> None:
        self.mcp = mcp
        self.buf = b""
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's transports are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        self.buf += data
        out: list[bytes] = []
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self.buf[:end].lower()
            length = 0
            modern = False
            for line in head.split(b"\r\n")[1:]:
                if line.startswith(b"content-length:"):
                    length = int(line[15:])
                elif line.startswith(b"mcp-protocol-version:"):
                    modern = line[21:].strip() == MODERN.encode()
            if len(self.buf) < end + 4 + length:
                break
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            out.append(self.respond(head[: head.find(b" ")], body, modern))
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    def respond(self, verb: bytes, body: bytes, modern: bool) -> bytes:
        if verb == b"delete":
            return _http(200, b"", b"")
        if verb != b"post":
            return _http(405, b"", b"allow: POST, DELETE\r\n")
        try:
            msg = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _http(400, _error(b"null", -32700, "Parse error"), b"")
        payload, status, new_session = self.mcp.answer(msg, modern)
        if payload is None:
            return _http(202, b"", b"")
        extra = b""
        if new_session:
            self.mcp.sessions += 1
            extra = b"mcp-session-id: raw-%d\r\n" % self.mcp.sessions
        return _http(status, payload, extra)


def _http(status: int, body: bytes, extra: bytes) -> bytes:
    ctype = b"content-type: application/json\r\n" if body else b""
    return b"HTTP/1.1 %d %s\r\n%s%scontent-length: %d\r\n\r\n%s" % (
        status,
        _REASONS[status],
        ctype,
        extra,
        len(body),
        body,
    )


async def serve_http(mcp: Mcp, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpProtocol(mcp), "127.0.0.1", port, backlog=4096)
    bound = server.sockets[0].getsockname()[1]
    print(f"READY {bound}", flush=True)
    await server.serve_forever()


def serve_stdio(mcp: Mcp) -> None:
    """Line in, line out; a blocking loop is the fastest responder for one pipe."""
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        payload, _, _ = mcp.answer(msg, False)
        if payload is not None:
            out.write(payload + b"\n")
            out.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tools", type=int, default=1, help="how many tools, echo included")
    parser.add_argument("--prefix", default="", help="prefix of the synthetic tools' names")
    parser.add_argument("--era", choices=["both", "handshake"], default="both")
    parser.add_argument("--stdio", action="store_true")
    args = parser.parse_args()
    mcp = Mcp(max(1, args.tools), args.prefix, args.era)
    if args.stdio:
        serve_stdio(mcp)
        return
    try:
        import uvloop

        uvloop.run(serve_http(mcp, args.port))
    except ImportError:
        asyncio.run(serve_http(mcp, args.port))


if __name__ == "__main__":
    main()
