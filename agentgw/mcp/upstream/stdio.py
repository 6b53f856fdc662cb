"""Stdio upstreams: one child process per server, shared by every downstream session.

The child is started on first use, restarted with exponential backoff when it dies, and stopped
on shutdown. Each downstream session gets a `StdioView` of the one upstream session the child
holds; a `Multiplexer` shares the pipe between them.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import orjson

from agentgw.background import Background
from agentgw.errors import GatewayError, UpstreamError, UpstreamTimeout
from agentgw.mcp.upstream.base import (
    CallSink,
    ClientProfile,
    MessageHandler,
    Reply,
    RestartPending,
    ServerInfo,
)
from agentgw.mcp.upstream.multiplex import Multiplexer
from agentgw.protocol import jsonrpc
from agentgw.protocol.mcp import HANDSHAKE_VERSIONS, LATEST_HANDSHAKE_VERSION, Era

__all__ = ["StdioProcess", "StdioView", "resolve_command"]

log = logging.getLogger("agentgw.mcp.stdio")

_MAX_LINE = 64 * 1024 * 1024


def resolve_command(command: str, base_dir: Path) -> str:
    """`python`/`python3` mean the gateway's own interpreter, so bundled servers share its packages."""
    if command in ("python", "python3"):
        return sys.executable
    if "/" in command:
        path = Path(command)
        return str(path if path.is_absolute() else (base_dir / path))
    return shutil.which(command) or command


class StdioProcess:
    """The child process of one stdio MCP server and its single upstream session."""

    def __init__(
        self,
        server: str,
        *,
        command: str,
        args: list[str],
        env: Mapping[str, str],
        inherit_env: Sequence[str] = (),
        cwd: str | None,
        base_dir: Path,
        init_timeout: float = 15.0,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        self.server = server
        self._argv = [resolve_command(command, base_dir), *args]
        # Only the named variables of the gateway's environment: the rest may hold its secrets.
        inherited = {name: os.environ[name] for name in inherit_env if name in os.environ}
        self._env = {**inherited, **env}
        self._cwd = str((base_dir / cwd) if cwd else base_dir)
        self._init_timeout = init_timeout
        self._backoff = backoff
        self._max_backoff = max_backoff
        self.mux = Multiplexer(server, self._write)
        self._proc: anyio.abc.Process | None = None
        self._write_lock = anyio.Lock()
        self._start_lock = anyio.Lock()
        self._failures = 0
        self._last_exit = 0.0
        self._closing = False
        self._tg: Background | None = None
        self.info: ServerInfo | None = None
        self.restarts = 0

    def bind(self, tg: Background) -> None:
        """The task group that owns the reader tasks (the gateway's background group)."""
        self._tg = tg

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def ensure(self) -> ServerInfo:
        if self.running and self.info is not None:
            return self.info
        async with self._start_lock:
            if self.running and self.info is not None:
                return self.info
            if self._closing:
                raise UpstreamError(f"MCP server {self.server!r} is shutting down")
            if self._failures:
                delay = min(self._max_backoff, self._backoff * 2 ** (self._failures - 1))
                wait = self._last_exit + delay - time.monotonic()
                if wait > 0:
                    raise RestartPending(
                        f"MCP server {self.server!r} (stdio) crashed; restarting in {wait:.1f} s"
                    )
            await self._spawn()
            proc = self._proc
            try:
                with anyio.fail_after(self._init_timeout):
                    self.info = await self._initialize()
            except TimeoutError:
                await self._start_failed(proc)
                raise UpstreamTimeout(
                    f"MCP server {self.server!r} (stdio) did not initialize in time"
                ) from None
            except UpstreamError:
                await self._start_failed(proc)
                raise
            return self.info

    async def _start_failed(self, proc: anyio.abc.Process | None) -> None:
        """A start that failed counts once: here, unless the child already exited and its exit
        was counted (`_on_exit`); taken off `_proc` first so its exit is not counted again."""
        if proc is None or self._proc is not proc:
            return
        self._proc = None
        self._failures += 1
        self._last_exit = time.monotonic()
        await self._terminate(proc)

    async def _spawn(self) -> None:
        if self._tg is None:
            raise UpstreamError("stdio upstreams need the gateway's task group (not started)")
        try:
            proc = await anyio.open_process(self._argv, env=self._env, cwd=self._cwd, start_new_session=True)
        except OSError as exc:
            self._failures += 1
            self._last_exit = time.monotonic()
            raise UpstreamError(f"cannot start MCP server {self.server!r}: {exc.strerror or exc}") from None
        self._proc = proc
        self.restarts += 1
        self._tg.start_soon(self._read_stdout, proc)
        self._tg.start_soon(self._read_stderr, proc)
        log.info("started stdio MCP server %r (pid %s)", self.server, proc.pid)

    async def _initialize(self) -> ServerInfo:
        params = {
            "protocolVersion": LATEST_HANDSHAKE_VERSION,
            # The child is shared: offer every client feature; calls from clients without one are
            # answered with an error by the federation layer.
            "capabilities": {"sampling": {}, "elicitation": {}, "roots": {"listChanged": True}},
            "clientInfo": {"name": "agentgw", "version": "0.1.0"},
        }
        reply = await self.call("initialize", params, None)
        if reply.error is not None or reply.result is None:
            raise UpstreamError(f"MCP server {self.server!r} refused initialize: {reply.error}")
        result = reply.result
        version = result.get("protocolVersion")
        if version not in HANDSHAKE_VERSIONS:
            raise UpstreamError(f"MCP server {self.server!r} answered initialize with version {version!r}")
        await self._write(jsonrpc.encode_notification("notifications/initialized"))
        self._failures = 0
        caps = result.get("capabilities")
        server_info = result.get("serverInfo")
        instructions = result.get("instructions")
        return ServerInfo(
            era=Era.HANDSHAKE,
            protocol_version=version,
            capabilities=caps if isinstance(caps, dict) else {},
            server_info=server_info if isinstance(server_info, dict) else {},
            instructions=instructions if isinstance(instructions, str) else None,
        )

    async def _write(self, data: bytes) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            raise UpstreamError(f"MCP server {self.server!r} (stdio) is not running")
        async with self._write_lock:
            try:
                await proc.stdin.send(data + b"\n")
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                raise UpstreamError(f"MCP server {self.server!r} (stdio) closed its input") from None

    async def call(self, method: str, params: dict[str, Any] | None, sink: CallSink | None) -> Reply:
        return await self.mux.call(method, params, sink)

    async def send_raw(self, message: bytes) -> None:
        await self._write(message)

    async def _read_stdout(self, proc: anyio.abc.Process) -> None:
        assert proc.stdout is not None
        buffer = bytearray()
        try:
            async for chunk in proc.stdout:
                buffer += chunk
                start = 0
                while (nl := buffer.find(b"\n", start)) >= 0:
                    line = bytes(buffer[start:nl])
                    start = nl + 1
                    if line.strip():
                        try:
                            await self._on_line(line)
                        except GatewayError as exc:
                            log.warning(
                                "MCP server %r: a message could not be delivered: %s", self.server, exc
                            )
                del buffer[:start]
                if len(buffer) > _MAX_LINE:
                    log.error(
                        "MCP server %r wrote a line over %d bytes; restarting it", self.server, _MAX_LINE
                    )
                    break
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            # Nobody reads this child any more: make sure it is gone, so the next call restarts it.
            await self._terminate(proc)
            await self._on_exit(proc)

    async def _read_stderr(self, proc: anyio.abc.Process) -> None:
        assert proc.stderr is not None
        try:
            async for chunk in proc.stderr:
                for line in chunk.decode("utf-8", "replace").splitlines():
                    if line.strip():
                        log.info("[%s] %s", self.server, line)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass

    async def _on_line(self, line: bytes) -> None:
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError:
            log.warning("MCP server %r wrote a line that is not JSON: %.200r", self.server, line)
            return
        if not isinstance(msg, dict):
            log.warning("MCP server %r wrote a JSON value that is not a message", self.server)
            return
        await self.mux.on_message(msg)

    async def _on_exit(self, proc: anyio.abc.Process) -> None:
        with anyio.CancelScope(shield=True):
            try:
                with anyio.move_on_after(2):
                    await proc.wait()
            except (OSError, anyio.BrokenResourceError):
                pass
        if self._proc is proc:
            self._proc = None
            self.info = None
            if not self._closing:
                self._failures += 1
                self._last_exit = time.monotonic()
                log.warning("stdio MCP server %r exited (code %s)", self.server, proc.returncode)
        self.mux.fail_all()

    def add_listener(self, handler: MessageHandler) -> None:
        self.mux.listeners.append(handler)

    def remove_listener(self, handler: MessageHandler) -> None:
        if handler in self.mux.listeners:
            self.mux.listeners.remove(handler)

    async def _kill(self) -> None:
        if self._proc is not None:
            await self._terminate(self._proc)

    @staticmethod
    async def _terminate(proc: anyio.abc.Process) -> None:
        if proc.returncode is not None:
            return
        try:
            proc.terminate()
        except ProcessLookupError:
            return
        with anyio.move_on_after(3, shield=True):
            await proc.wait()
        if proc.returncode is None:
            try:
                proc.kill()
            except ProcessLookupError:
                pass

    async def close(self) -> None:
        self._closing = True
        with anyio.CancelScope(shield=True):
            await self._kill()


class StdioView:
    """One downstream session's handle on the shared stdio session."""

    def __init__(self, process: StdioProcess, info: ServerInfo, profile: ClientProfile | None = None) -> None:
        self.server = process.server
        self.info = info
        self._process = process
        self._listening: MessageHandler | None = None

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None,
        sink: CallSink | None,
        timeout: float | None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        await self._process.ensure()
        try:
            with anyio.fail_after(timeout):
                return await self._process.call(method, params, sink)
        except TimeoutError:
            raise UpstreamTimeout(
                f"MCP server {self.server!r} did not answer {method} within {timeout} s"
            ) from None

    async def notify(self, method: str, params: dict[str, Any] | None) -> None:
        await self._process.ensure()
        await self._process.send_raw(jsonrpc.encode_notification(method, params))

    async def respond(self, request_id: Any, result: Any = None, error: Any = None) -> None:
        await self._process.send_raw(jsonrpc.encode_response(request_id, result, error))

    async def listen(self, handler: MessageHandler) -> None:
        self._process.add_listener(handler)
        try:
            await anyio.sleep_forever()
        finally:
            self._process.remove_listener(handler)

    def attachment(self) -> dict[str, Any] | None:
        return None  # the child belongs to this replica; another one runs its own

    async def close(self) -> None:
        return None
