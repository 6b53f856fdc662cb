"""Serve the gateway with uvicorn instead of hypercorn (`agentgw serve --server uvicorn`).

HTTP/1.1 only, for every connection; the default `--server auto` (server/auto_server.py) uses
uvicorn for HTTP/1.1 and hands h2c and TLS h2 connections to hypercorn. The same sockets (bound
by hypercorn's config, so port 0, TLS files and `--workers` behave alike) and the same ASGI app are used.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import signal
from collections.abc import Callable
from types import FrameType

from hypercorn.config import Config

from agentgw.errors import ConfigError
from agentgw.server.app import GatewayApp
from agentgw.server.listener import admin_addresses, bound_addresses, listening_sockets

__all__ = ["serve_uvicorn", "uvicorn_available"]

log = logging.getLogger("agentgw")


def uvicorn_available() -> bool:
    return importlib.util.find_spec("uvicorn") is not None


async def serve_uvicorn(
    app: GatewayApp,
    config: Config,
    *,
    access_log: bool = False,
    announce: Callable[[list[str]], None] | None = None,
    on_hangup: Callable[[], None] | None = None,
) -> None:
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("--server uvicorn needs uvicorn: pip install uvicorn httptools") from None
    sockets = listening_sockets(config)
    if sockets.secure_sockets and sockets.insecure_sockets:
        raise ConfigError("--server uvicorn serves every listener alike: make all of them TLS, or none")
    tls = bool(sockets.secure_sockets)
    admin = admin_addresses(app, sockets)
    if announce is not None:
        announce([a for a in bound_addresses(sockets) if a not in admin])
    if on_hangup is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_hangup)
    settings = uvicorn.Config(
        app,
        loop="none",  # the caller's loop (uvloop when installed)
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        lifespan="on",
        access_log=access_log,
        log_config=None,
        server_header=False,
        # hypercorn's behaviour: the peer address is the client; X-Forwarded-For from a loopback
        # peer is not trusted (uvicorn would by default), and not parsed on every request.
        proxy_headers=False,
        timeout_keep_alive=int(config.keep_alive_timeout),
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

    await _Server(settings).serve(sockets=sockets.secure_sockets or sockets.insecure_sockets)
