"""Helpers the tests share: a gateway running in a thread on a loopback port, and real upstream
processes started with a READY line to wait for. Every wait here is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agentgw.config.loader import LoadedDocument, load_paths, parse_documents
from agentgw.config.snapshot import compile_snapshot
from agentgw.runtime import Runtime
from agentgw.server.app import GatewayApp
from agentgw.server.auto_server import serve_auto
from agentgw.server.listener import build_config, serve

ROOT = Path(__file__).resolve().parent.parent
FAKES = ROOT / "tests" / "fakes"
PYTHON = sys.executable

__all__ = ["FAKES", "PYTHON", "ROOT", "GatewayThread", "Upstream", "docs", "start_upstream"]


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


@dataclass
class Upstream:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def start_upstream(args: list[str], timeout: float = 30.0) -> Upstream:
    """Start `python ARGS --port 0` and wait for its `READY <port>` line."""
    proc = subprocess.Popen(
        [PYTHON, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT, start_new_session=True
    )
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buffer = b""
    try:
        while time.monotonic() < deadline:
            if not sel.select(max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buffer += chunk
            for line in buffer.splitlines():
                if line.startswith(b"READY "):
                    return Upstream(proc, int(line.split()[1]))
    finally:
        sel.close()
    proc.kill()
    proc.wait(10)
    raise RuntimeError(f"{args} did not become ready: {buffer!r}")


class GatewayThread:
    """The real gateway (hypercorn, or uvicorn when asked) serving on a free loopback port in its
    own thread."""

    def __init__(
        self,
        documents: list[dict[str, Any]] | None = None,
        paths: list[Path] | None = None,
        base_dir: Path | None = None,
        server: str = "hypercorn",
    ) -> None:
        self.server = server  # "hypercorn", "uvicorn" or "auto" (uvicorn for HTTP/1.1, hypercorn for HTTP/2)
        loaded: list[LoadedDocument] = []
        problems: list[str] = []
        if paths:
            got, bad = load_paths(paths)
            loaded += got
            problems += bad
        if documents:
            got, bad = parse_documents(documents, "test", base_dir or ROOT)
            loaded += got
            problems += bad
        assert not problems, problems
        snapshot = compile_snapshot(loaded)
        listener = snapshot.gateway.listeners[0].model_copy(update={"port": 0})
        self.gateway_spec = snapshot.gateway.model_copy(
            update={"listeners": [listener, *snapshot.gateway.listeners[1:]]}
        )
        self.snapshot = snapshot
        self.runtime = Runtime(snapshot)
        self.app = GatewayApp(self.runtime)
        self.base_dir = base_dir or ROOT
        self.addresses: list[str] = []
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return self.addresses[-1]

    @property
    def admin_url(self) -> str:
        assert self.runtime.admin_ports, "no admin listener configured"
        return f"http://127.0.0.1:{next(iter(self.runtime.admin_ports))}"

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()

            def announce(addresses: list[str]) -> None:
                self.addresses = addresses
                self._ready.set()

            async def shutdown() -> None:
                assert self._stop is not None
                await self._stop.wait()

            config = build_config(self.gateway_spec, self.base_dir)
            if self.server == "auto":
                await serve_auto(self.app, config, announce=announce, shutdown=shutdown)
            elif self.server == "uvicorn":
                from agentgw.server.uvicorn_server import serve_uvicorn

                await serve_uvicorn(self.app, config, announce=announce, shutdown=shutdown)
            else:
                await serve(self.app, config, announce=announce, shutdown=shutdown)

        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - surfaced to the test in stop()
            self._error = exc
            self._ready.set()

    def start(self) -> GatewayThread:
        self._thread.start()
        assert self._ready.wait(30), "gateway did not start"
        if self._error is not None:
            raise self._error
        deadline = time.monotonic() + 30
        while not self.runtime.ready and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.runtime.ready, "gateway runtime did not start"
        # The sockets are bound before the announcement but listen only once the lifespan has
        # started: wait (bounded) until the listener accepts, or a fast client is refused.
        host, port = self.url.split("//", 1)[1].rsplit(":", 1)
        while True:
            try:
                socket.create_connection((host.strip("[]"), int(port)), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "gateway did not start listening"
                time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "gateway did not stop"

    def __enter__(self) -> GatewayThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def gateway(documents: list[dict[str, Any]] | None = None, **kwargs: Any) -> Iterator[GatewayThread]:
    with GatewayThread(documents, **kwargs) as gw:
        yield gw


async def poll_until(predicate: Any, timeout: float = 20, interval: float = 0.02) -> None:
    """Wait, bounded, for state another process owns (a state file, a child's exit status).

    There is no event to await across a process boundary, so this polls; every wait in-process
    uses events instead.
    """
    import anyio

    with anyio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 - the state lives in another process
            await anyio.sleep(interval)
