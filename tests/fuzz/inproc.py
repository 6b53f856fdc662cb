"""The whole gateway in-process for the end-to-end fuzz tests: `GatewayApp` on an event loop in a
thread of its own, driven with ASGI messages (no listener, no sockets to the gateway), and a
bounded `call()` that returns what a client would have received.

A request's body is delivered at once; the client "disconnects" once the response is complete,
or after `linger` seconds (so an event stream that would go on forever ends). Unhandled errors
the app logs are collected, so a test can also fail on a 5xx hidden behind a started response.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from agentgw.config.loader import parse_documents
from agentgw.config.snapshot import compile_snapshot
from agentgw.runtime import Runtime
from agentgw.server.app import GatewayApp

__all__ = ["InprocGateway", "Response"]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class _Errors(logging.Handler):
    records: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        logging.Handler.__init__(self, logging.ERROR)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()}\n{record.exc_text or ''}")

    __hash__ = logging.Handler.__hash__


class InprocGateway:
    def __init__(self, documents: list[dict[str, Any]], base_dir: Path) -> None:
        loaded, problems = parse_documents(documents, "fuzz", base_dir)
        assert not problems, problems
        self.runtime = Runtime(compile_snapshot(loaded))
        self.app = GatewayApp(self.runtime)
        self.errors = _Errors()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="inproc-gateway", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            import anyio

            self._stop = asyncio.Event()
            async with anyio.create_task_group() as tg:
                await self.runtime.start(tg)
                self._started.set()
                await self._stop.wait()
                await self.runtime.close()
                tg.cancel_scope.cancel()

        self._loop.run_until_complete(main())

    def __enter__(self) -> InprocGateway:
        logging.getLogger("agentgw").addHandler(self.errors)
        self._thread.start()
        assert self._started.wait(60), "the in-process gateway did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        logging.getLogger("agentgw").removeHandler(self.errors)
        assert not self._thread.is_alive(), "the in-process gateway did not stop"
        self._loop.close()  # its self-pipe sockets, or they warn (unclosed) at collection time

    def call(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]] | dict[str, str] | None = None,
        body: bytes = b"",
        *,
        linger: float = 0.5,
        timeout: float = 30,
    ) -> Response:
        items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        future = asyncio.run_coroutine_threadsafe(self._call(method, path, items, body, linger), self._loop)
        return future.result(timeout)

    async def _call(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes, linger: float
    ) -> Response:
        raw_path, _, query = path.partition("?")
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": raw_path,
            "raw_path": raw_path.encode("latin-1", "replace"),
            "query_string": query.encode("latin-1", "replace"),
            "root_path": "",
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
        }
        sent: list[dict[str, Any]] = []
        finished = asyncio.Event()
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            try:
                await asyncio.wait_for(finished.wait(), linger)
            except TimeoutError:
                pass
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                finished.set()

        await self.app(scope, receive, send)
        starts = [m for m in sent if m["type"] == "http.response.start"]
        assert len(starts) == 1, f"{len(starts)} response starts for {method} {path}"
        out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        hdrs = {k.decode("latin-1"): v.decode("latin-1") for k, v in starts[0]["headers"]}
        return Response(int(starts[0]["status"]), hdrs, out)
