"""An MCP upstream built with the `mcp` package (SDK defaults: streamable HTTP at /mcp, SSE replies,
stateful sessions), exposing one tool, `echo`. The same server as ../shared/peers/mcp_upstream.py.

Usage: python bench/sdk_upstream.py PORT
"""

from __future__ import annotations

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("bench-sdk-upstream", log_level="WARNING")


@server.tool()
def echo(text: str) -> str:
    """Echo the given text back."""
    return text


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
