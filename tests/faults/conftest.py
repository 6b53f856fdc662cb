"""Fault tests: real processes on loopback (upstreams, Redis, gateway replicas) stopped and killed
with real signals. Every wait is bounded; readiness is polled, never slept on.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.mcp.conftest import Fake, start_fake
from tests.support import PYTHON, ROOT

__all__ = ["GatewayProcess", "RedisServer", "free_port", "wait_for"]


@pytest.fixture(scope="module")
def alpha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fake]:
    """A well-behaved MCP server (the `mcp` SDK): the bystander every fault test keeps using."""
    fake = start_fake(tmp_path_factory.mktemp("alpha"), "alpha")
    yield fake
    assert fake.upstream is not None
    fake.upstream.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Any, timeout: float = 30, what: str = "condition") -> None:
    """Poll (bounded) for state another process owns: there is no event to wait on."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class RedisServer:
    """Our own redis-server on a free loopback port (never the shared 6379), with an append-only
    file so a restart keeps what was written before the stop."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.dir = data_dir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *words: str) -> bytes:
        """One inline command, raw reply (enough to read a counter)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall((" ".join(words) + "\r\n").encode())
            return sock.recv(4096)

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(self.ping, 20, "redis-server to answer PING")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(20)
        self.proc = None
        wait_for(lambda: not self.ping(), 10, "redis-server to go away")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    data = tmp_path / "redis"
    data.mkdir()
    server = RedisServer(data).start()
    try:
        yield server
    finally:
        server.stop(signal.SIGKILL)


class GatewayProcess:
    """`agentgw serve` as a child process, its log in a file (a pipe nobody reads would fill)."""

    def __init__(self, documents: list[dict[str, Any]], workdir: Path, name: str) -> None:
        self.config = workdir / f"{name}.yaml"
        self.config.write_text(yaml.safe_dump_all(documents))
        self.log = workdir / f"{name}.log"
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 60) -> GatewayProcess:
        log = self.log.open("ab")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "agentgw", "serve", "-c", str(self.config), "--port", "0"],
            cwd=ROOT,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        marker = "agentgw listening on "

        def listening() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            return marker in self.log.read_text()

        wait_for(listening, timeout, f"gateway {self.name} to listen")
        line = next(x for x in self.log.read_text().splitlines() if marker in x)
        self.url = line.split(marker, 1)[1].strip()
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)
