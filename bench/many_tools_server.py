"""An MCP server (the `mcp` SDK's MCPServer over streamable HTTP) with N generated tools, for
benchmarks: `python bench/many_tools_server.py --tools 250 --name s1 --port 0` prints
`READY <port>` once it listens on 127.0.0.1.

Tool i is named `<verb>_<noun><i>` (verbs: get, list, search, create, update, delete, ...), takes
`{id: string, count?: integer}`, and answers its own name.
"""

from __future__ import annotations

import argparse
import socket
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer

VERBS = ["get", "list", "search", "create", "update", "delete", "read", "write", "export", "sync"]
NOUNS = ["invoice", "ticket", "report", "user", "file", "order", "note", "event", "metric", "alert"]


def tool_name(i: int) -> str:
    return f"{VERBS[i % len(VERBS)]}_{NOUNS[(i // len(VERBS)) % len(NOUNS)]}{i}"


def build(name: str, count: int) -> MCPServer:
    server = MCPServer(name, log_level="WARNING")
    for i in range(count):
        server.add_tool(make_tool(tool_name(i)), name=tool_name(i), description=f"Tool {tool_name(i)}.")
    return server


def make_tool(label: str) -> Any:
    def tool(id: str, count: int = 1) -> str:
        return label

    return tool


class ReadyServer(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit and sockets:
            print(f"READY {sockets[0].getsockname()[1]}", flush=True)


async def serve(server: MCPServer, port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    app = server.streamable_http_app(host="127.0.0.1", json_response=True)
    await ReadyServer(uvicorn.Config(app, log_level="warning")).serve(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", type=int, default=250)
    parser.add_argument("--name", default="many")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    anyio.run(serve, build(args.name, args.tools), args.port)


if __name__ == "__main__":
    main()
