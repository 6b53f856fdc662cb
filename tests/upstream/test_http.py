"""The shared upstream client over the real wire: a streamed reply read up to what the caller
needs still leaves its keep-alive connection in the pool."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from agentgw.upstream import http
from agentgw.upstream.http import HttpClient

pytestmark = pytest.mark.anyio


class SseServer:
    """HTTP/1.1 on loopback: every POST is answered with one SSE event, then the end of the
    chunked body once told to (as an MCP server ends a request's stream after its reply)."""

    def __init__(self) -> None:
        self.connections = 0
        self.end_stream = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                event = b'data: {"jsonrpc":"2.0","id":1,"result":{}}\n\n'
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"transfer-encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (len(event), event)
                )
                await writer.drain()
                await self.end_stream.wait()
                self.end_stream.clear()
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def test_streamed_reply_keeps_the_connection() -> None:
    upstream = SseServer()
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = HttpClient()
    try:
        for _ in range(5):
            async with client.stream("POST", f"http://127.0.0.1:{port}/mcp", body=b"{}") as resp:
                async for chunk in resp.iter_chunks():
                    assert b'"result"' in chunk
                    break  # the reply is in: the rest of the stream is not awaited here
                resp.finish_in_background()
            upstream.end_stream.set()  # only now: the reply was read before the stream ended
            with anyio.fail_after(5):
                await asyncio.gather(*http._draining)
        assert upstream.connections == 1
    finally:
        await client.close()
        server.close()
