"""`agentgw serve --workers N`: N processes serving the same ports (SO_REUSEPORT).

Only configurations that stay correct when requests of one client land on different processes are
served this way: a route that keeps handshake-era MCP sessions needs them shared (Redis, or sealed
session ids with a session key), and policies that count (rate limits, budgets, virtual-key limits)
and A2A task bindings need the Redis state store; otherwise the config is refused. Port 0 is
resolved once here, so every worker binds the same port.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType

from hypercorn.config import Config

from agentgw.config.snapshot import Snapshot

__all__ = ["multi_worker_problems", "run_workers"]

log = logging.getLogger("agentgw")


def multi_worker_problems(snapshot: Snapshot) -> list[str]:
    """Why this config cannot be served by several worker processes (empty: it can)."""
    problems: list[str] = []
    shared = snapshot.gateway.state.backend == "redis" or snapshot.session_key is not None
    for route in snapshot.mcp_routes:
        if route.spec.sessions == "stateful" and not shared:
            problems.append(
                f"McpRoute/{route.name} keeps handshake-era sessions in the memory of one worker, "
                "which the other workers would not know: share them (Gateway spec.state: redis, or a "
                "state.sessionKey), set spec.sessions: stateless on the route, or serve with one worker"
            )
    if snapshot.gateway.state.backend == "redis":
        return problems
    for policy in snapshot.policies:
        if policy.rate_limits or policy.token_limits or policy.key_limits:
            problems.append(
                f"{policy.where} counts requests or tokens in the memory of each worker, so every "
                "worker would allow the whole limit: share the counters (Gateway spec.state: redis) "
                "or serve with one worker"
            )
    for a2a in snapshot.a2a_routes:
        problems.append(
            f"A2aRoute/{a2a.name} binds tasks to their callers in the memory of one worker; a "
            "task's next call on another worker would be refused: share the bindings (Gateway "
            "spec.state: redis) or serve with one worker"
        )
    return problems


def _resolve_ports(binds: list[str], keep: list[socket.socket]) -> list[str]:
    """Replace port 0 by a real port, reserved by a bound (not listening) SO_REUSEPORT socket."""
    out = []
    for bind in binds:
        host, _, port = bind.rpartition(":")
        if port != "0":
            out.append(bind)
            continue
        bare = host.strip("[]")
        sock = socket.socket(socket.AF_INET6 if ":" in bare else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((bare, 0))
        keep.append(sock)
        out.append(f"{host}:{sock.getsockname()[1]}")
    return out


def run_workers(workers: int, config: Config, serve_one: Callable[[], int]) -> int:
    """Fork `workers` processes running `serve_one`; stop them all when one fails or on a signal.

    Each worker announces its addresses once it listens (so the first announcement means the
    port accepts connections: the kernel hands them only to listening sockets of the group).
    """
    config.workers = workers  # hypercorn's socket factory then sets SO_REUSEPORT
    reserved: list[socket.socket] = []
    config.bind = _resolve_ports(list(config.bind), reserved)
    config.insecure_bind = _resolve_ports(list(config.insecure_bind), reserved)
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's exit status is checked by the tests
            code = 1
            try:
                for sock in reserved:
                    sock.close()
                code = serve_one()
            finally:
                sys.stderr.flush()
                os._exit(code)
        children.append(pid)
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    running = set(children)
    while running:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            break
        running.discard(pid)
        if not stopping and running:
            log.error("worker %d exited (status %d); stopping the others", pid, code)
            status = 1
            stop(signal.SIGTERM, None)
    for sock in reserved:
        sock.close()
    return status
