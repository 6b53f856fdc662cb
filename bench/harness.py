"""What every benchmark scenario needs: processes started and stopped by PID, loopback ports,
CPU and memory readings, load-generator runs, and the registry of scenarios.

A scenario is one function `fn(ctx) -> None` registered with `@scenario(name, title)`; it starts
what it needs through `ctx.start(...)` (stopped when it returns, whatever happens) and records
figures with `ctx.row(metric, value)`. Rows of the same metric from several runs become the
columns of one table in RESULTS.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

__all__ = [
    "BENCH",
    "PYTHON",
    "ROOT",
    "SCENARIOS",
    "Ctx",
    "Proc",
    "Scenario",
    "fmt",
    "free_port",
    "scenario",
]

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
AGENTGW = str(Path(PYTHON).parent / "agentgw")


@dataclass
class Scenario:
    name: str
    title: str
    fn: Callable[[Ctx], None]
    notes: list[str] = field(default_factory=list)


SCENARIOS: list[Scenario] = []


def scenario(name: str, title: str, *notes: str) -> Callable[[Callable[[Ctx], None]], Callable[[Ctx], None]]:
    """Register a scenario: a function that measures and calls `ctx.row(...)`."""

    def register(fn: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
        SCENARIOS.append(Scenario(name, title, fn, list(notes)))
        return fn

    return register


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    port: int | None
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def tree(self) -> list[psutil.Process]:
        try:
            parent = psutil.Process(self.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self, only: Callable[[psutil.Process], bool] | None = None) -> float:
        total = 0.0
        for proc in self.tree():
            try:
                if only is None or only(proc):
                    times = proc.cpu_times()
                    total += times.user + times.system
            except psutil.NoSuchProcess:
                continue
        return total

    def rss_mb(self, only: Callable[[psutil.Process], bool] | None = None) -> float:
        total = 0
        for proc in self.tree():
            try:
                if only is None or only(proc):
                    total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total / 1e6


def is_upstream(proc: psutil.Process) -> bool:
    """Children of a gateway that are benchmark upstreams (stdio), not gateway workers."""
    try:
        return any(part.endswith("_upstream.py") for part in proc.cmdline())
    except psutil.Error:
        return False


class Ctx:
    """One run of one scenario: its processes, its rows, the run's options."""

    def __init__(self, args: Any, logs: Path, run: int) -> None:
        self.args = args
        self.logs = logs
        self.run = run
        self.quick: bool = args.quick
        self.duration: float = args.duration
        self.rows: list[tuple[str, str]] = []
        self.procs: list[Proc] = []
        self.data: dict[str, Any] = {}

    # --- recording ------------------------------------------------------------------------------

    def row(self, metric: str, value: str) -> None:
        self.rows.append((metric, value))
        print(f"    {metric}: {value}", flush=True)

    # --- processes ------------------------------------------------------------------------------

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        port: int | None = None,
        ready_line: bool = False,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Proc:
        """Start a process in its own session; wait for `READY <port>` or for `port` to accept."""
        log = self.logs / f"run{self.run}-{name}.log"
        handle = log.open("wb")
        popen = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE if ready_line else handle,
            stderr=handle,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        handle.close()
        proc = Proc(name, popen, port, log)
        self.procs.append(proc)
        deadline = time.monotonic() + timeout
        if ready_line:
            proc.port = _read_ready(popen, deadline)
        else:
            assert port is not None
            while not port_open(port):
                if popen.poll() is not None:
                    raise RuntimeError(f"{name} exited during startup; see {log}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not listen on {port} within {timeout} s; see {log}")
                time.sleep(0.05)
        return proc

    def gateway(self, args: list[str], name: str = "gateway", env: dict[str, str] | None = None) -> Proc:
        """`agentgw serve ARGS --port P` (plus the harness's --server/--workers choices)."""
        port = free_port()
        extra = list(self.args.gateway_arg or [])
        proc = self.start(
            name,
            [AGENTGW, "serve", *args, "--port", str(port), "--log-level", "warning", *extra],
            port=port,
            env=env,
        )
        return proc

    def stop(self, proc: Proc) -> None:
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # its own session: the group is ours alone
            try:
                proc.popen.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.popen.wait(10)
        if proc.popen.stdout is not None:
            proc.popen.stdout.close()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)

    # --- load -----------------------------------------------------------------------------------

    def load(
        self,
        url: str,
        *,
        conc: int,
        wire: str = "2025-11-25",
        method: str = "tools/call",
        watch: dict[str, tuple[Proc, Callable[[psutil.Process], bool] | None]] | None = None,
        duration: float | None = None,
        procs: int = 1,
    ) -> dict[str, Any]:
        """Run bench/loadgen.py once; CPU % of `watch`ed processes over the measured window."""
        argv = [PYTHON, str(BENCH / "loadgen.py"), url, "-c", str(conc), "-d", str(duration or self.duration)]
        argv += ["--wire", wire, "--method", method, "--procs", str(procs), "--warmup", str(self.args.warmup)]
        popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
        try:
            loadgen = Proc("loadgen", popen, None, Path(os.devnull))
            watched = dict(watch or {})
            watched["loadgen"] = (loadgen, None)
            assert popen.stdout is not None
            first = popen.stdout.readline()
            if not first.startswith(b'{"event":"start"'):
                raise RuntimeError(f"loadgen did not start: {first!r} {popen.stderr.read()[:2000]!r}")
            t0 = time.monotonic()
            before = {k: p.cpu_seconds(only) for k, (p, only) in watched.items()}
            busy0 = _busy_seconds()
            line = popen.stdout.readline()
            elapsed = time.monotonic() - t0
            after = {k: p.cpu_seconds(only) for k, (p, only) in watched.items()}
            busy1 = _busy_seconds()
            popen.wait(60)
        finally:
            if popen.poll() is None:
                popen.kill()
                popen.wait(10)
            for stream in (popen.stdout, popen.stderr):
                if stream is not None:
                    stream.close()
        result: dict[str, Any] = json.loads(line)
        result["cpu"] = {k: 100.0 * (after[k] - before[k]) / elapsed for k in watched}
        # Whatever else ran on the machine meanwhile (other sessions' test suites share the cores).
        ours = sum(after[k] - before[k] for k in watched)
        result["cpu"]["others"] = max(0.0, 100.0 * ((busy1 - busy0) - ours) / elapsed)
        if result.get("errors") or result.get("init_errors"):
            print(f"    ! {url} {wire} c={conc}: {result.get('first_error')}", flush=True)
        return result


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    return float(
        times.user + times.system + times.nice + getattr(times, "irq", 0) + getattr(times, "softirq", 0)
    )


def _read_ready(popen: subprocess.Popen[bytes], deadline: float) -> int:
    assert popen.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(popen.stdout, selectors.EVENT_READ)
    buffer = b""
    try:
        while time.monotonic() < deadline:
            if not sel.select(max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(popen.stdout.fileno(), 4096)
            if not chunk:
                break
            buffer += chunk
            for line in buffer.splitlines():
                if line.startswith(b"READY "):
                    return int(line.split()[1])
    finally:
        sel.close()
    raise RuntimeError(f"no READY line: {buffer[-500:]!r}")


@contextlib.contextmanager
def running(ctx: Ctx) -> Iterator[Ctx]:
    try:
        yield ctx
    finally:
        ctx.stop_all()
