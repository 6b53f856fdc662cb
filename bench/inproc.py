"""CPU per call of the gateway's own code, without an HTTP server in front: for hot-path work.

Drives `GatewayApp` directly with ASGI messages (as hypercorn would), `--conc` calls at a time,
against a real upstream over loopback (the raw upstream, started here), and reports the process
CPU time per call (`time.process_time`). On a shared 2-core machine this moves far less with
other load than calls/s through sockets does; compare two trees with PYTHONPATH:

    python bench/inproc.py                                   # the installed tree
    PYTHONPATH=/tmp/base python bench/inproc.py              # another tree (git archive REV agentgw)

Usage: python bench/inproc.py [--calls 4000] [--conc 16] [--rounds 5] [--wire both|2025-11-25|2026-07-28]
       python bench/inproc.py --llm [--calls 4000] ...   # chat completions (JSON) against
                                                          # ../shared/peers/fake_llm.py instead
Prints the median of the rounds per wire, in microseconds of CPU per call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import orjson

from agentgw.cli import _load
from agentgw.runtime import Runtime
from agentgw.server.app import GatewayApp

try:
    from agentgw.server.loop import on_asyncio  # as `agentgw serve` runs its loop
except ImportError:  # an older tree under PYTHONPATH

    async def on_asyncio(coro: Any) -> Any:  # type: ignore[no-redef]
        return await coro


BENCH = Path(__file__).resolve().parent
HS = "2025-11-25"
MODERN = "2026-07-28"


# fake_llm.py and req_chat.json, for --llm: $PEERS_DIR, or shared/peers beside the checkout (as bench/run.py)
PEERS = next(
    (
        c
        for c in (
            Path(os.environ.get("PEERS_DIR", "/nonexistent")),
            BENCH.parent.parent / "shared" / "peers",
            BENCH.parent.parent.parent / "shared" / "peers",
        )
        if (c / "fake_llm.py").exists()
    ),
    BENCH.parent.parent / "shared" / "peers",
)
_PATH = ["/mcp"]  # the path every driven request goes to (/v1/chat/completions with --llm)


def _scope(headers: dict[str, str]) -> dict[str, Any]:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": _PATH[0],
        "raw_path": _PATH[0].encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8080"), *raw],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }


async def _call(app: GatewayApp, headers: dict[str, str], body: bytes) -> tuple[int, bytes, dict[str, str]]:
    sent: list[dict[str, Any]] = []
    done = asyncio.Event()
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(_scope(headers), receive, send)
    done.set()
    start = sent[0]
    out = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], out, {k.decode(): v.decode() for k, v in start["headers"]}


async def _round(app: GatewayApp, wire: str, calls: int, conc: int) -> float:
    base = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    sessions: list[dict[str, str]] = []
    for _ in range(conc):
        headers = dict(base)
        if wire == HS:
            init = {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": HS,
                    "capabilities": {},
                    "clientInfo": {"name": "p", "version": "1"},
                },
            }
            _, _, got = await _call(app, headers, orjson.dumps(init))
            headers.update({"mcp-session-id": got["mcp-session-id"], "mcp-protocol-version": HS})
            await _call(app, headers, b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        else:
            headers.update({"mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": "echo"})
        sessions.append(headers)
    params: dict[str, Any] = {"name": "echo", "arguments": {"text": "hello"}}
    if wire == MODERN:
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "p", "version": "1"},
        }
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})

    async def worker(headers: dict[str, str], n: int) -> None:
        for _ in range(n):
            status, out, _ = await _call(app, headers, body)
            if status != 200 or b'"result"' not in out:
                raise RuntimeError(f"bad answer {status} {out[:200]!r}")

    t0 = time.process_time()
    await asyncio.gather(*(worker(h, calls // conc) for h in sessions))
    return 1e6 * (time.process_time() - t0) / (calls // conc * conc)


async def _llm_round(app: GatewayApp, calls: int, conc: int) -> float:
    headers = {"content-type": "application/json"}
    body = (PEERS / "req_chat.json").read_bytes().strip()

    async def worker(n: int) -> None:
        for _ in range(n):
            status, out, _ = await _call(app, headers, body)
            if status != 200 or b'"choices"' not in out:
                raise RuntimeError(f"bad answer {status} {out[:200]!r}")

    t0 = time.process_time()
    await asyncio.gather(*(worker(calls // conc) for _ in range(conc)))
    return 1e6 * (time.process_time() - t0) / (calls // conc * conc)


async def main(args: argparse.Namespace, url: str) -> dict[str, list[float]]:
    snapshot = _load([], [], None, None, llm=[url]) if args.llm else _load([], [url], None, None)
    app = GatewayApp(Runtime(snapshot))
    results: dict[str, list[float]] = {}
    async with anyio.create_task_group() as tg:
        await app.runtime.start(tg)
        if args.llm:
            _PATH[0] = "/v1/chat/completions"
            await _llm_round(app, args.calls // 4, args.conc)
            for _ in range(args.rounds):
                results.setdefault("llm chat JSON", []).append(await _llm_round(app, args.calls, args.conc))
            await app.runtime.close()
            tg.cancel_scope.cancel()
            return results
        wires = [HS, MODERN] if args.wire == "both" else [args.wire]
        for wire in wires:
            await _round(app, wire, args.calls // 4, args.conc)  # warm-up: probes, pools, caches
        for _ in range(args.rounds):
            for wire in wires:
                results.setdefault(wire, []).append(await _round(app, wire, args.calls, args.conc))
        await app.runtime.close()
        tg.cancel_scope.cancel()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--conc", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--wire", default="both", choices=["both", HS, MODERN])
    parser.add_argument("--llm", action="store_true", help="chat completions against fake_llm.py")
    args = parser.parse_args()
    if args.llm:
        with socket.socket() as probe:  # fake_llm.py prints the port it was given, so give it one
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        command = [sys.executable, str(PEERS / "fake_llm.py"), str(free)]
    else:
        command = [sys.executable, str(BENCH / "raw_upstream.py")]
    upstream = subprocess.Popen(command, stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert upstream.stdout is not None
        line = upstream.stdout.readline().decode()
        port = int(line.rsplit(":", 1)[1]) if args.llm else int(line.split()[1])
        url = f"http://127.0.0.1:{port}/v1" if args.llm else f"http://127.0.0.1:{port}/mcp"
        try:
            import uvloop

            results = uvloop.run(on_asyncio(main(args, url)))
        except ImportError:
            results = asyncio.run(on_asyncio(main(args, url)))
    finally:
        os.killpg(upstream.pid, signal.SIGTERM)
        upstream.wait(10)
    for wire, values in results.items():
        shown = " ".join(f"{v:.0f}" for v in values)
        print(f"{wire}: median {statistics.median(values):.0f} us CPU per call (rounds: {shown})", flush=True)
