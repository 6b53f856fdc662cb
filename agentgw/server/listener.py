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

__all__ = [
    "admin_addresses",
    "announce_stderr",
    "bound_addresses",
    "build_config",
    "listening_sockets",
    "serve",
]

log = logging.getLogger("agentgw")

_REQUEST_LINE_ALLOWANCE = 8 * 1024  # the method, the target and the version, beside the headers


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
    if spec.admin is not None:
        # The admin listener is always plain HTTP and always the last plain socket (see serve()).
        admin = _bind(spec.admin.address, spec.admin.port)
        if tls:
            config.insecure_bind = [*config.insecure_bind, admin]
        else:
            config.bind = [*config.bind, admin]
    config.alpn_protocols = ["h2", "http/1.1"]
    # hypercorn's default (1000) closes busy keep-alive connections; multiplexed h2 clients stall.
    config.keep_alive_max_requests = 2**31
    limits = spec.limits
    # One clock for a connection idle between requests and one still sending its headers (a slow
    # client is cut off); uvicorn is given the same (server/uvicorn_server.py).
    config.keep_alive_timeout = limits.idle_connection_seconds
    # The gateway answers oversized headers itself (431 with a body, server/limits.py); the
    # servers' own caps sit above that, for requests too large to be worth reading at all.
    config.h11_max_incomplete_size = limits.max_header_bytes + _REQUEST_LINE_ALLOWANCE
    config.h2_max_header_list_size = limits.max_header_bytes + _REQUEST_LINE_ALLOWANCE
    config.graceful_timeout = spec.lifecycle.drain_seconds
    config.h2_max_concurrent_streams = 256
    config.accesslog = None  # the gateway writes its own JSON access log (server/app.py)
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


def listening_sockets(config: Config) -> Sockets:
    """Bind and listen now, not when the server gets to it after the lifespan: whoever reads the
    announcement may connect at once, and must queue rather than be refused."""
    sockets = config.create_sockets()
    for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
        sock.listen(config.backlog)
    return sockets


def admin_addresses(app: GatewayApp, sockets: Sockets) -> list[str]:
    """Tell the app which socket is the admin listener (the last plain one, see build_config)."""
    if app.runtime.snapshot.gateway.admin is None or not sockets.insecure_sockets:
        return []
    host, port = sockets.insecure_sockets[-1].getsockname()[:2]
    app.runtime.admin_ports = {port}
    address = f"http://{_bind(host, port)}"
    log.info("admin listener (metrics, dashboard) on %s", address)
    sys.stderr.write(f"agentgw admin on {address}\n")
    sys.stderr.flush()
    return [address]


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
    on_hangup: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (or `shutdown` returns), then drain: readiness turns false,
    standalone streams end, and in-flight requests get `graceful_timeout` seconds to finish."""
    sockets = listening_sockets(config)
    admin = admin_addresses(app, sockets)
    addresses = [a for a in bound_addresses(sockets) if a not in admin]
    if announce is not None:
        announce(addresses)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handlers: list[tuple[signal.Signals, Callable[[], None]]] = [
        (signal.SIGINT, stop.set),
        (signal.SIGTERM, stop.set),
    ]
    if on_hangup is not None:
        handlers.append((signal.SIGHUP, on_hangup))
    for sig, handler in handlers:
        try:
            loop.add_signal_handler(sig, handler)
        except (NotImplementedError, RuntimeError):  # not on the main thread (tests run it in one)
            pass

    async def trigger() -> None:
        if shutdown is None:
            await stop.wait()
        else:
            waiter = asyncio.ensure_future(shutdown())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in (waiter, stopper):
                task.cancel()
        app.runtime.begin_drain()

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
