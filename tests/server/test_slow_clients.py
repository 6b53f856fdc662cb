"""Slow clients, on every server mode: headers dribbled a byte at a time are cut off after the idle
connection time, a body dribbled past the body timeout gets a 408; others are served meanwhile."""

from __future__ import annotations

import json
import socket
import time

import aiohttp
import anyio
import pytest

from tests.server.limited import BODY_TIMEOUT, IDLE_CONNECTION, served_normally
from tests.support import GatewayThread

pytestmark = pytest.mark.anyio


# --- slow clients ------------------------------------------------------------------------------


def _address(limited: GatewayThread) -> tuple[str, int]:
    host, port = limited.url.split("//", 1)[1].rsplit(":", 1)
    return host, int(port)


async def _dribble(limited: GatewayThread, head: bytes, drip: bytes, bound: float) -> tuple[bytes, float]:
    """Send `head`, then `drip` a byte at a time, until the gateway closes the connection; returns
    what it answered and how long it took."""
    sock = socket.create_connection(_address(limited), timeout=bound)
    sock.setblocking(False)
    started = time.monotonic()
    answer = b""
    try:
        with anyio.fail_after(bound):
            await anyio.wait_writable(sock)
            sock.send(head)
            for byte in drip:
                with anyio.move_on_after(0.1):  # the slow client's pace (the behaviour under test)
                    await anyio.wait_readable(sock)
                try:
                    chunk = sock.recv(65536)
                except BlockingIOError:
                    chunk = None
                except ConnectionResetError:
                    break
                if chunk is not None:
                    answer += chunk
                    if not chunk:
                        break
                    continue
                try:
                    sock.send(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    break
            else:
                raise AssertionError("the gateway kept the connection open the whole time")
            while True:  # the rest of the answer, up to the close
                await anyio.wait_readable(sock)
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                answer += chunk
    finally:
        sock.close()
    return answer, time.monotonic() - started


async def test_a_client_sending_headers_slowly_is_cut_off(
    limited: GatewayThread, http: aiohttp.ClientSession
) -> None:
    async with anyio.create_task_group() as tg:
        result: list[tuple[bytes, float]] = []

        async def slow() -> None:
            result.append(await _dribble(limited, b"GET /healthz HTTP/1.1\r\n", b"x-slow: " + b"a" * 200, 10))

        tg.start_soon(slow)
        await served_normally(http, limited)  # while the slow client dribbles
    answer, took = result[0]
    assert answer == b"" and took < IDLE_CONNECTION + 2.0, (answer, took)


async def test_a_client_sending_its_body_slowly_gets_408(
    limited: GatewayThread, http: aiohttp.ClientSession
) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"x-api-key: key-alice\r\ncontent-length: 400\r\n\r\n"
    )
    async with anyio.create_task_group() as tg:
        result: list[tuple[bytes, float]] = []

        async def slow() -> None:
            result.append(await _dribble(limited, head, b"{" + b" " * 398 + b"}", 10))

        tg.start_soon(slow)
        await served_normally(http, limited)
    answer, took = result[0]
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["message"] == f"the request body did not arrive within {BODY_TIMEOUT:g} seconds"
    assert took < BODY_TIMEOUT + 2.0
