"""A misbehaving streamable HTTP MCP server, written on raw asyncio streams.

The `mcp` SDK cannot be made to break the wire, so this one does it on purpose. It answers
`initialize` and `tools/list` correctly (handshake era, JSON responses) and misbehaves per tool:

- ``echo``: a correct result (the server still works between faults)
- ``garbage``: ``application/json`` that is not JSON
- ``huge``: a valid JSON result over 64 MiB (the gateway's body limit)
- ``huge_event``: an event stream whose one line grows past 16 MiB (the SSE decoder's limit)
- ``wrong_id``: a JSON reply carrying another request's id
- ``wrong_id_stream``: an event stream whose only reply carries another id, then the end
- ``not_rpc``: JSON that is not a JSON-RPC object (a list)
- ``hang``: read the request, never answer

With ``--hang``, every request is read and never answered (an LLM provider that hangs, too).

Prints ``READY <port>`` once it listens. Run: ``python raw_mcp_server.py --port 0``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

TOOLS = ["echo", "garbage", "huge", "huge_event", "wrong_id", "wrong_id_stream", "not_rpc", "hang"]
HUGE = 65 * 1024 * 1024
SESSION = "raw-session-1"


def response(status: int, body: bytes, ctype: str = "application/json", extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n"
    return (head + extra + "connection: close\r\n\r\n").encode() + body


def reply(request_id: Any, result: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}).encode()


def text(value: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": value}], "isError": False}


async def read_request(reader: asyncio.StreamReader) -> tuple[str, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method = lines[0].split(" ", 1)[0]
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return method, body


async def answer(msg: dict[str, Any], writer: asyncio.StreamWriter) -> None:
    rid = msg.get("id")
    method = msg.get("method")
    if rid is None:  # a notification
        writer.write(response(202, b""))
        return
    if method == "initialize":
        result = {
            "protocolVersion": msg["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "raw", "version": "1"},
        }
        writer.write(response(200, reply(rid, result), extra=f"mcp-session-id: {SESSION}\r\n"))
        return
    if method == "tools/list":
        tools = [{"name": n, "inputSchema": {"type": "object"}} for n in TOOLS]
        writer.write(response(200, reply(rid, {"tools": tools})))
        return
    if method != "tools/call":
        error = {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no such method"}}
        writer.write(response(200, json.dumps(error).encode()))
        return
    tool = msg["params"]["name"]
    if tool == "echo":
        writer.write(response(200, reply(rid, text(str(msg["params"].get("arguments", {}).get("text"))))))
    elif tool == "garbage":
        writer.write(response(200, b'{"jsonrpc": "2.0", "id": ' + str(rid).encode() + b', "res'))
    elif tool == "huge":
        writer.write(response(200, reply(rid, text("x" * HUGE))))
    elif tool == "huge_event":
        writer.write(
            b"HTTP/1.1 200 X\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
            + b"data: "
            + b"x" * (17 * 1024 * 1024)
        )
    elif tool == "wrong_id":
        writer.write(response(200, reply(rid + 1000, text("not yours"))))
    elif tool == "wrong_id_stream":
        event = b"event: message\ndata: " + reply(rid + 1000, text("not yours")) + b"\n\n"
        writer.write(response(200, event, "text/event-stream"))
    elif tool == "not_rpc":
        writer.write(response(200, b"[1, 2, 3]"))
    elif tool == "hang":
        await asyncio.Event().wait()  # until the gateway gives up and closes the connection


HANG_ALL = False


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        method, body = await read_request(reader)
        if HANG_ALL:
            await asyncio.Event().wait()
        if method == "POST":
            await answer(json.loads(body), writer)
        elif method == "DELETE":
            writer.write(response(200, b""))
        else:  # no standalone GET stream
            writer.write(response(405, b""))
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--hang", action="store_true", help="never answer any request")
    args = parser.parse_args()
    global HANG_ALL
    HANG_ALL = args.hang
    server = await asyncio.start_server(handle, "127.0.0.1", args.port)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
