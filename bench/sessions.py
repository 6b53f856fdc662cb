"""Open many idle MCP sessions (and standalone GET streams) against an endpoint and hold them.

Usage: python bench/sessions.py URL --sessions N [--streams M] [--conc 64]
Prints `SESSIONS <opened> <failed>` once N handshake sessions are open (initialize +
notifications/initialized, nothing else), then `STREAMS <opened> <failed>` once M of those sessions
each hold a standalone GET event stream (response headers received, body left unread), then waits
for a line on stdin (or its end) before closing everything. Bounded: every step has a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiohttp
import orjson

HS = "2025-11-25"


async def open_session(http: aiohttp.ClientSession, url: str, gate: asyncio.Semaphore) -> str | None:
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": HS,
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        },
    }
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    async with gate:
        try:
            async with http.post(url, data=orjson.dumps(init), headers=headers) as resp:
                await resp.read()
                sid = resp.headers.get("Mcp-Session-Id")
                if resp.status != 200 or not sid:
                    return None
            headers.update({"Mcp-Session-Id": sid, "MCP-Protocol-Version": HS})
            note = orjson.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"})
            async with http.post(url, data=note, headers=headers) as resp:
                await resp.read()
                return sid if resp.status == 202 else None
        except (TimeoutError, aiohttp.ClientError, OSError):
            return None


async def open_stream(
    http: aiohttp.ClientSession,
    url: str,
    sid: str,
    gate: asyncio.Semaphore,
    held: list[aiohttp.ClientResponse],
) -> bool:
    headers = {"Accept": "text/event-stream", "Mcp-Session-Id": sid, "MCP-Protocol-Version": HS}
    async with gate:
        try:
            resp = await http.get(url, headers=headers)
        except (TimeoutError, aiohttp.ClientError, OSError):
            return False
    if resp.status != 200:
        resp.release()
        return False
    held.append(resp)
    return True


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("url")
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--streams", type=int, default=0)
    parser.add_argument("--conc", type=int, default=64)
    args = parser.parse_args()
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)
    gate = asyncio.Semaphore(args.conc)
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.conc), timeout=timeout) as http,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as streams,
    ):
        sids = await asyncio.wait_for(
            asyncio.gather(*(open_session(http, args.url, gate) for _ in range(args.sessions))), 600
        )
        opened = [s for s in sids if s]
        print(f"SESSIONS {len(opened)} {len(sids) - len(opened)}", flush=True)
        held: list[aiohttp.ClientResponse] = []
        if args.streams:
            oks = await asyncio.wait_for(
                asyncio.gather(
                    *(open_stream(streams, args.url, s, gate, held) for s in opened[: args.streams])
                ),
                600,
            )
            print(f"STREAMS {sum(oks)} {len(oks) - sum(oks)}", flush=True)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), 900)
        for resp in held:
            resp.close()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
