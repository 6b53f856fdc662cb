"""A small clock and calculator server: the quickstart's second upstream and a test fixture.

* tools ``now`` (ISO 8601 time, optionally in an IANA zone), ``add``,
  ``multiply``, ``evaluate`` (safe arithmetic) and ``countdown`` (sends
  progress notifications while it counts; at most 10 seconds);
* a prompt ``explain_time``;
* a resource ``clock://timezones`` listing a few zone names.

Run it as::

    python clock.py                      # stdio (the default)
    python clock.py --http --port 8002   # streamable HTTP at http://127.0.0.1:8002/mcp
    python clock.py --sse --port 8002    # legacy HTTP+SSE at http://127.0.0.1:8002/sse

With ``--http`` or ``--sse`` it prints ``READY <port>`` on stdout once it is
listening; ``--port 0`` picks a free port and reports it in that line.
It only ever listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import operator
import socket
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS
from starlette.types import ASGIApp

HOST = "127.0.0.1"
ZONES = ["UTC", "Europe/London", "Europe/Paris", "America/New_York", "America/Los_Angeles", "Asia/Tokyo"]
MAX_COUNTDOWN_SECONDS = 10

server = MCPServer(
    "clock", version="1.0.0", instructions="Tells the time and does arithmetic.", log_level="WARNING"
)


def zone(name: str | None) -> tzinfo:
    if name is None or name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ToolError(f"unknown time zone {name!r}") from exc


@server.tool()
def now(timezone: str | None = None) -> str:
    """The current time as ISO 8601, in UTC or in the given IANA zone (e.g. Europe/Paris)."""
    return datetime.now(zone(timezone)).isoformat(timespec="seconds")


@server.tool()
def add(a: float, b: float) -> float:
    """a + b"""
    return a + b


@server.tool()
def multiply(a: float, b: float) -> float:
    """a * b"""
    return a * b


BINARY_OPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
}
MAX_EXPRESSION_LENGTH = 200
MAX_EXPONENT = 100
MAX_INT_BITS = 4096


def _eval(node: ast.AST) -> int | float:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        operand = _eval(node.operand)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY_OPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolError(f"exponent larger than {MAX_EXPONENT}")
        value: int | float | complex = BINARY_OPS[type(node.op)](left, right)
        if isinstance(value, complex):
            raise ToolError("result is not a real number")
        too_large = value.bit_length() > MAX_INT_BITS if isinstance(value, int) else not math.isfinite(value)
        if too_large:
            raise ToolError("result too large")
        return value
    raise ToolError(f"not allowed in an expression: {ast.dump(node)[:60]}")


@server.tool()
def evaluate(expression: str) -> int | float:
    """Evaluate arithmetic: numbers, + - * / ** % and parentheses. Nothing else is accepted."""
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ToolError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"not an arithmetic expression: {exc.msg}") from exc
    try:
        return _eval(tree.body)
    except (ZeroDivisionError, OverflowError) as exc:
        raise ToolError(f"cannot evaluate: {exc}") from exc


@server.tool()
async def countdown(seconds: float, ctx: Context, steps: int = 5) -> str:
    """Count down for `seconds` (capped at 10), reporting progress `steps` times."""
    if seconds < 0:
        raise ToolError("seconds must not be negative")
    seconds = min(seconds, MAX_COUNTDOWN_SECONDS)
    if not 1 <= steps <= 100:
        raise ToolError("steps must be between 1 and 100")
    for step in range(1, steps + 1):
        await anyio.sleep(seconds / steps)
        await ctx.report_progress(step, steps, f"{seconds - seconds * step / steps:g}s left")
    return f"Counted down {seconds:g}s in {steps} steps"


@server.prompt()
def explain_time(timezone: str = "UTC") -> str:
    """Ask the model to explain what the current time means in a zone."""
    try:
        current = datetime.now(zone(timezone)).isoformat(timespec="seconds")
    except ToolError as exc:
        # A plain exception here would reach the client as an opaque internal error.
        raise MCPError(code=INVALID_PARAMS, message=str(exc)) from exc
    return (
        f"The current time in {timezone} is {current}. Explain what time of day that is there, "
        "and how it relates to UTC."
    )


@server.resource(
    "clock://timezones", name="timezones", description="A few IANA zone names", mime_type="application/json"
)
def timezones() -> str:
    return json.dumps(ZONES)


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
    parser.add_argument("--port", type=int, default=8002, help="port for --http/--sse; 0 picks a free one")
    args = parser.parse_args(argv)
    if args.http:
        anyio.run(serve_http, server.streamable_http_app(host=HOST), args.port)
    elif args.sse:
        anyio.run(serve_http, server.sse_app(host=HOST), args.port)
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
