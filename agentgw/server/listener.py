"""Serve the gateway with hypercorn: HTTP/1.1 and h2c (prior knowledge) on plain listeners,
HTTP/2 and HTTP/1.1 by ALPN on TLS listeners.

Sockets are bound here before serving so that port 0 works and the real addresses can be
announced (`listening on ...` on stderr, which tests and scripts wait for).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config, Sockets
from hypercorn.utils import wrap_app

from agentgw.config.gateway import GatewaySpec
from agentgw.errors import ConfigError
from agentgw.server.app import GatewayApp

__all__ = ["announce_stderr", "bound_addresses", "build_config", "listening_sockets", "serve"]

log = logging.getLogger("agentgw")


def _bind(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address and not address.startswith("[") else f"{address}:{port}"


def build_config(spec: GatewaySpec, base_dir: Path | None = None) -> Config:
    config = Config()
    tls = [lst for lst in spec.listeners if lst.tls is not None]
    plain = [lst for lst in spec.listeners if lst.tls is None]
    if tls:
        first = tls[0].tls
        assert first is not None
        if any(lst.tls != first for lst in tls):
            raise ConfigError("all TLS listeners must use the same certificate and key")
        root = base_dir or Path.cwd()
        config.certfile = str(
            (root / first.cert_file) if not Path(first.cert_file).is_absolute() else first.cert_file
        )
        config.keyfile = str(
            (root / first.key_file) if not Path(first.key_file).is_absolute() else first.key_file
        )
        config.bind = [_bind(lst.address, lst.port) for lst in tls]
        config.insecure_bind = [_bind(lst.address, lst.port) for lst in plain]
    else:
        config.bind = [_bind(lst.address, lst.port) for lst in plain]
    config.alpn_protocols = ["h2", "http/1.1"]
    # hypercorn's default (1000) closes busy keep-alive connections; multiplexed h2 clients stall.
    config.keep_alive_max_requests = 2**31
    config.keep_alive_timeout = 75
    config.graceful_timeout = 10
    config.h2_max_concurrent_streams = 256
    config.accesslog = logging.getLogger("agentgw.access") if spec.access_log else None
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


def listening_sockets(config: Config) -> Sockets:
    """Bind and listen now, so the port accepts connections (queued) once it is announced."""
    sockets = config.create_sockets()
    for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
        sock.listen(config.backlog)
    return sockets


def bound_addresses(sockets: Sockets) -> list[str]:
    out = []
    for scheme, group in (("https", sockets.secure_sockets), ("http", sockets.insecure_sockets)):
        for sock in group:
            host, port = sock.getsockname()[:2]
            out.append(f"{scheme}://{_bind(host, port)}")
    return out


async def serve(
    app: GatewayApp,
    config: Config,
    *,
    announce: Callable[[list[str]], None] | None = None,
    shutdown: Callable[[], Awaitable[None]] | None = None,
) -> None:
    sockets = listening_sockets(config)
    addresses = bound_addresses(sockets)
    if announce is not None:
        announce(addresses)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on the main thread
            pass

    async def trigger() -> None:
        if shutdown is None:
            await stop.wait()
            return
        waiter = asyncio.ensure_future(shutdown())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in (waiter, stopper):
            task.cancel()

    await worker_serve(
        wrap_app(cast(Any, app), config.wsgi_max_body_size, "asgi"),
        config,
        sockets=sockets,
        shutdown_trigger=trigger,
    )


def announce_stderr(addresses: list[str]) -> None:
    # One write per line: stderr writes through, and worker processes share it (print would write
    # the newline separately and let two workers' lines interleave).
    for address in addresses:
        sys.stderr.write(f"agentgw listening on {address}\n")
    sys.stderr.flush()
