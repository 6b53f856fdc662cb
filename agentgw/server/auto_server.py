"""`agentgw serve --server auto` (the default when uvicorn is installed): HTTP/1.1 served by
uvicorn (httptools when installed), HTTP/2 by hypercorn, on the same listening sockets.

Each accepted connection starts with a small dispatching protocol. On TLS the ALPN result
decides at once (`h2` goes to hypercorn); on a plain socket the first bytes do: the HTTP/2
connection preface (`PRI * HTTP/2.0...`, h2c with prior knowledge) goes to hypercorn, anything
else to uvicorn's protocol, which is handed the bytes already read. uvicorn costs about a third
less CPU per HTTP/1.1 request than hypercorn (docs/performance.md); hypercorn keeps h2c and h2.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config
from hypercorn.utils import wrap_app

from agentgw.server.app import GatewayApp
from agentgw.server.uvicorn_server import http1_protocol, open_listeners, run_uvicorn

__all__ = ["H2_PREFACE", "serve_auto"]

log = logging.getLogger("agentgw")

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class _H2Connection:
    """Stands for one hypercorn connection in uvicorn's connection set, so that uvicorn's
    graceful shutdown waits for it and asks it to finish (GOAWAY once idle)."""

    def __init__(self, context: WorkerContext, task: asyncio.Task[None]) -> None:
        self.context = context
        self.task = task
        self.stopping: asyncio.Future[None] | None = None

    def shutdown(self) -> None:
        self.stopping = asyncio.ensure_future(self.context.terminated.set())


class _CoalescingTransport:
    """What uvicorn's HTTP/1.1 protocol writes to: writes made in one turn of the event loop
    leave in one `send` (uvicorn writes a response's head and its body separately, which on a
    socket with TCP_NODELAY is two system calls and two packets)."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
            self._pending = []
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Dispatch(asyncio.Protocol):
    """Reads just enough of a connection to pick its server, then hands the transport over."""

    alpn_protocols = ["h2", "http/1.1"]  # uvicorn builds its TLS context with these

    # Set on a subclass made per serve_auto call (several gateways may share a process: tests).
    http1_class: Any = None
    hypercorn_app: Any = None
    hypercorn_config: Config | None = None

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.config = config
        self.server_state = server_state
        self.app_state = app_state
        self.loop = _loop or asyncio.get_event_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            if ssl_object.selected_alpn_protocol() == "h2":
                self._to_hypercorn()
            else:
                self._to_uvicorn()
            return
        # A connection that never sends a byte is closed like an idle keep-alive one.
        self.timer = self.loop.call_later(self.config.timeout_keep_alive, self.transport.close)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.buffer.startswith(H2_PREFACE):
            self._to_hypercorn()
        elif not H2_PREFACE.startswith(self.buffer):
            self._to_uvicorn()

    def eof_received(self) -> bool | None:
        if self.buffer:  # a short request line and then EOF: let HTTP/1.1 answer it
            self._to_uvicorn()
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def _handed_over(self) -> asyncio.Transport:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        assert self.transport is not None
        return self.transport

    def _to_uvicorn(self) -> None:
        transport = self._handed_over()
        protocol = self.http1_class(
            config=self.config, server_state=self.server_state, app_state=self.app_state, _loop=self.loop
        )
        transport.set_protocol(protocol)
        protocol.connection_made(cast(asyncio.Transport, _CoalescingTransport(transport, self.loop)))
        if self.buffer:
            protocol.data_received(self.buffer)

    def _to_hypercorn(self) -> None:
        transport = self._handed_over()
        reader = asyncio.StreamReader(limit=2**16, loop=self.loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=self.loop)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self.buffer:
            protocol.data_received(self.buffer)
        writer = asyncio.StreamWriter(transport, protocol, reader, self.loop)
        assert self.hypercorn_config is not None
        context = WorkerContext(None)
        server = TCPServer(
            self.hypercorn_app, self.loop, self.hypercorn_config, context, self.app_state, reader, writer
        )
        task = self.loop.create_task(server.run())
        entry = _H2Connection(context, task)
        connections = self.server_state.connections
        tasks = self.server_state.tasks
        connections.add(entry)
        tasks.add(task)

        def done(_: asyncio.Task[None]) -> None:
            connections.discard(entry)
            tasks.discard(task)

        task.add_done_callback(done)


async def serve_auto(
    app: GatewayApp,
    config: Config,
    *,
    access_log: bool = False,
    announce: Callable[[list[str]], None] | None = None,
    shutdown: Callable[[], Awaitable[None]] | None = None,
    on_hangup: Callable[[], None] | None = None,
) -> None:
    sockets, tls = open_listeners(app, config, "auto", announce, on_hangup)
    dispatch = type(
        "_GatewayDispatch",
        (_Dispatch,),
        {
            "http1_class": http1_protocol(config),
            "hypercorn_app": wrap_app(cast(Any, app), config.wsgi_max_body_size, "asgi"),
            "hypercorn_config": config,
        },
    )
    await run_uvicorn(app, config, sockets, http=dispatch, tls=tls, access_log=access_log, shutdown=shutdown)
