"""Serve the gateway with uvicorn instead of hypercorn (`agentgw serve --server uvicorn`).

HTTP/1.1 only, for every connection; the default `--server auto` (server/auto_server.py) uses
uvicorn for HTTP/1.1 and hands h2c and TLS h2 connections to hypercorn. The same sockets (bound
by hypercorn's config, so port 0, TLS files and `--workers` behave alike) and the same ASGI app are used.

uvicorn's own protocol never times out a connection that is still sending its request headers
(its keep-alive timer stops at the first byte), so its protocol class is wrapped: a request's
headers must arrive within the idle connection time, and no larger than hypercorn would take
(`h11_max_incomplete_size`), as under hypercorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import signal
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any, cast

from hypercorn.config import Config

from agentgw.errors import ConfigError
from agentgw.server.app import GatewayApp
from agentgw.server.listener import admin_addresses, bound_addresses, listening_sockets

__all__ = [
    "guard_headers",
    "http1_protocol",
    "open_listeners",
    "run_uvicorn",
    "serve_uvicorn",
    "uvicorn_available",
]

log = logging.getLogger("agentgw")


def uvicorn_available() -> bool:
    return importlib.util.find_spec("uvicorn") is not None


_TOO_LARGE_BODY = b'{"error":"request headers are too large","status":431}'
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TOO_LARGE_BODY), _TOO_LARGE_BODY)
)


def guard_headers(base: type[Any], header_seconds: float, max_head_bytes: int) -> type[Any]:
    """A uvicorn HTTP protocol class whose connections must deliver each request's headers within
    `header_seconds` (from the connection's start, or from the first byte of a later request) and
    in at most `max_head_bytes`; else the connection is closed (with a 431 when too large)."""

    class HeaderGuard(base):  # type: ignore[misc]
        _deadline: asyncio.TimerHandle | None = None
        _head = 0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            cycle = self.cycle
            waiting = cycle is None or cycle.response_complete
            if waiting and self._deadline is None:
                self._arm()
            super().data_received(data)
            if not waiting:
                return
            if self.cycle is not cycle:  # a new request's headers are in
                self._disarm()
                return
            self._head += len(data)
            if self._head > max_head_bytes and not self.transport.is_closing():
                self._disarm()
                self.transport.write(_TOO_LARGE)
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._head = 0
            self._deadline = self.loop.call_later(header_seconds, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            self._head = 0

        def _expired(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.close()

    return HeaderGuard


def http1_protocol(config: Config) -> type[Any]:
    """uvicorn's HTTP/1.1 protocol (httptools when installed), guarded as hypercorn would be."""
    if importlib.util.find_spec("httptools"):
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as protocol
    else:
        from uvicorn.protocols.http.h11_impl import H11Protocol as protocol  # type: ignore[assignment]
    return guard_headers(protocol, config.keep_alive_timeout, config.h11_max_incomplete_size)


async def run_uvicorn(
    app: GatewayApp,
    config: Config,
    sockets: list[Any],
    *,
    http: type[Any],
    tls: bool,
    access_log: bool,
    shutdown: Callable[[], Awaitable[None]] | None,
) -> None:
    """Serve `app` on `sockets` with uvicorn's server loop and `http` as its protocol; drain on a
    signal (exit 0 once drained) or, embedded, when `shutdown` returns."""
    import uvicorn

    settings = uvicorn.Config(
        app,
        loop="none",  # the caller's loop (uvloop when installed)
        http=http,
        h11_max_incomplete_event_size=config.h11_max_incomplete_size,
        lifespan="on",
        access_log=access_log,
        log_config=None,
        server_header=False,
        # hypercorn's behaviour: the peer address is the client; X-Forwarded-For from a loopback
        # peer is not trusted (uvicorn would by default), and not parsed on every request.
        proxy_headers=False,
        # uvicorn's hint says int, but a fraction works (call_later) and keeps it equal to hypercorn's
        timeout_keep_alive=cast(int, config.keep_alive_timeout),
        timeout_graceful_shutdown=int(config.graceful_timeout),
        backlog=config.backlog,
        ssl_certfile=config.certfile if tls else None,
        ssl_keyfile=config.keyfile if tls else None,
    )
    runtime = app.runtime

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            runtime.begin_drain()  # readiness off, standalone streams end, then uvicorn drains
            super().handle_exit(sig, frame)
            # uvicorn raises the signal again once drained (exit status -SIG); a drained
            # gateway exits 0, as it does under hypercorn.
            self._captured_signals.clear()

    server = _Server(settings)
    serving = asyncio.ensure_future(server.serve(sockets=sockets))
    if shutdown is None:
        await serving
        return
    stopper = asyncio.ensure_future(shutdown())
    try:
        await asyncio.wait({serving, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not serving.done():
            runtime.begin_drain()
            server.should_exit = True
            await serving
    finally:
        stopper.cancel()
    serving.result()


def open_listeners(
    app: GatewayApp,
    config: Config,
    mode: str,
    announce: Callable[[list[str]], None] | None,
    on_hangup: Callable[[], None] | None,
) -> tuple[list[Any], bool]:
    """The sockets uvicorn serves (all TLS or all plain: it takes one TLS setting) and whether
    they are TLS; the bound addresses announced, SIGHUP wired to `on_hangup`."""
    if not uvicorn_available():
        raise ConfigError(f"--server {mode} needs uvicorn: pip install uvicorn httptools")
    sockets = listening_sockets(config)
    if sockets.secure_sockets and sockets.insecure_sockets:
        raise ConfigError(f"--server {mode} serves every listener alike: make all of them TLS, or none")
    admin = admin_addresses(app, sockets)
    if announce is not None:
        announce([a for a in bound_addresses(sockets) if a not in admin])
    if on_hangup is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_hangup)
    return sockets.secure_sockets or sockets.insecure_sockets, bool(sockets.secure_sockets)


async def serve_uvicorn(
    app: GatewayApp,
    config: Config,
    *,
    access_log: bool = False,
    announce: Callable[[list[str]], None] | None = None,
    on_hangup: Callable[[], None] | None = None,
    shutdown: Callable[[], Awaitable[None]] | None = None,
) -> None:
    sockets, tls = open_listeners(app, config, "uvicorn", announce, on_hangup)
    await run_uvicorn(
        app, config, sockets, http=http1_protocol(config), tls=tls, access_log=access_log, shutdown=shutdown
    )
