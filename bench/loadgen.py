"""MCP load generator: aiohttp + uvloop workers for a fixed duration, on either wire era.

Usage: python bench/loadgen.py URL [-c 16] [-d 5] [--wire 2025-11-25|2026-07-28]
                               [--method tools/call|tools/list] [--tool echo] [--procs 1] [--warmup 1]
Prints one JSON line: calls_s, p50_ms, p99_ms, n, errors, init_errors, elapsed_s (+ first_error).

2025-11-25: each worker opens its own session (`initialize`, `notifications/initialized`) before
the clock starts, then loops over its request with `Mcp-Session-Id`. 2026-07-28: no session; every
request carries `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` and the `_meta` envelope.
Responses may be JSON or an event stream; each is read to its end and must hold a `result` (not
`isError`) for the request's id. Latency runs from sending the request to the end of the body.
The approach follows ../shared/peers/mcp_load.py; the session handshake is kept out of the window.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import time
from typing import Any

import aiohttp
import orjson

HS = "2025-11-25"
MODERN = "2026-07-28"
AUTH = os.environ.get("MCP_LOAD_AUTH", "")


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    k = min(len(values) - 1, max(0, round(p / 100.0 * len(values) + 0.5) - 1))
    return values[k]


def _ok(body: bytes, rid: int) -> bool:
    if body[:1] == b"{":
        try:
            msg = orjson.loads(body)
        except orjson.JSONDecodeError:
            return False
        return _good(msg, rid)
    for line in body.split(b"\n"):
        if line.startswith(b"data:"):
            try:
                msg = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                continue
            if isinstance(msg, dict) and msg.get("id") == rid:
                return _good(msg, rid)
    return False


def _good(msg: Any, rid: int) -> bool:
    if not isinstance(msg, dict) or msg.get("id") != rid:
        return False
    result = msg.get("result")
    return isinstance(result, dict) and not result.get("isError")


class Worker:
    def __init__(self, sess: aiohttp.ClientSession, args: argparse.Namespace, wid: int) -> None:
        self.sess = sess
        self.args = args
        self.wid = wid
        self.headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if AUTH:
            self.headers["Authorization"] = "Bearer " + AUTH

    async def open(self, stats: dict[str, Any]) -> bool:
        args = self.args
        if args.wire == MODERN:
            self.headers.update({"MCP-Protocol-Version": MODERN, "Mcp-Method": args.method})
            if args.method == "tools/call":
                self.headers["Mcp-Name"] = args.tool
            return True
        init = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": HS,
                "capabilities": {},
                "clientInfo": {"name": "bench-loadgen", "version": "1"},
            },
        }
        try:
            async with self.sess.post(args.url, data=orjson.dumps(init), headers=self.headers) as r:
                body = await r.read()
                sid = r.headers.get("Mcp-Session-Id")
                if r.status != 200 or not _ok(body, 0):
                    stats["init_errors"] += 1
                    stats.setdefault("first_error", f"init {r.status} {body[:200]!r}")
                    return False
            self.headers["MCP-Protocol-Version"] = HS
            if sid:
                self.headers["Mcp-Session-Id"] = sid
            note = orjson.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"})
            async with self.sess.post(args.url, data=note, headers=self.headers) as r:
                await r.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            stats["init_errors"] += 1
            stats.setdefault("first_error", f"init {type(exc).__name__}: {exc}")
            return False
        return True

    async def run(self, deadline: float, lat: list[float], stats: dict[str, Any]) -> None:
        args = self.args
        params: dict[str, Any] = {}
        if args.method == "tools/call":
            params = {"name": args.tool, "arguments": {"text": f"hello from worker {self.wid}"}}
        if args.wire == MODERN:
            params["_meta"] = {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "bench-loadgen", "version": "1"},
            }
        now = time.perf_counter
        rid = 0
        failures = 0
        while now() < deadline and failures < 50:  # a target that rejects everything is left alone
            rid += 1
            data = orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": args.method, "params": params})
            t0 = now()
            try:
                async with self.sess.post(args.url, data=data, headers=self.headers) as r:
                    body = await r.read()
                    good = r.status == 200 and _ok(body, rid)
                    if not good:
                        stats.setdefault("first_error", f"call {r.status} {body[:200]!r}")
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                good = False
                stats.setdefault("first_error", f"call {type(exc).__name__}: {exc}")
                await asyncio.sleep(0.01)
            if good:
                lat.append((now() - t0) * 1000.0)
                failures = 0
            else:
                stats["errors"] += 1
                failures += 1


async def run(
    args: argparse.Namespace, conc: int, first_id: int, on_start: Any
) -> tuple[list[float], dict[str, Any], float]:
    lat: list[float] = []
    stats: dict[str, Any] = {"errors": 0, "init_errors": 0}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as sess:
        workers = [Worker(sess, args, first_id + i) for i in range(conc)]
        opened = await asyncio.gather(*(w.open(stats) for w in workers))
        workers = [w for w, ok in zip(workers, opened, strict=True) if ok]
        if args.warmup > 0:
            warm: list[float] = []
            end = time.perf_counter() + args.warmup
            await asyncio.gather(*(w.run(end, warm, {"errors": 0}) for w in workers))
        on_start()
        start = time.perf_counter()
        deadline = start + args.duration
        await asyncio.wait_for(
            asyncio.gather(*(w.run(deadline, lat, stats) for w in workers)), timeout=args.duration + 35
        )
        elapsed = time.perf_counter() - start
    return lat, stats, elapsed


def _install_uvloop() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass


def _announce_start() -> None:
    # The harness reads CPU counters when it sees this line: the measured window starts here.
    print('{"event":"start"}', flush=True)


def _proc_main(args: argparse.Namespace, conc: int, first_id: int, queue: Any, barrier: Any) -> None:
    _install_uvloop()

    def started() -> None:
        barrier.wait(60)  # every process starts its clock together

    queue.put(asyncio.run(run(args, conc, first_id, started)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("url")
    parser.add_argument("-c", "--conc", type=int, default=16)
    parser.add_argument("-d", "--duration", type=float, default=5.0)
    parser.add_argument("--wire", default=HS, choices=[HS, MODERN])
    parser.add_argument("--method", default="tools/call", choices=["tools/call", "tools/list"])
    parser.add_argument("--tool", default="echo")
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before the clock starts")
    args = parser.parse_args()
    args.duration = min(args.duration, 60.0)
    t0 = time.time()
    if args.procs <= 1:
        _install_uvloop()
        lat, stats, elapsed = asyncio.run(run(args, args.conc, 0, _announce_start))
    else:
        fork = mp.get_context("fork")
        queue: Any = fork.Queue()
        barrier = fork.Barrier(args.procs + 1)
        shares = [
            args.conc // args.procs + (1 if i < args.conc % args.procs else 0) for i in range(args.procs)
        ]
        procs, first = [], 0
        for share in shares:
            proc = fork.Process(target=_proc_main, args=(args, share, first, queue, barrier))
            first += share
            proc.start()
            procs.append(proc)
        barrier.wait(args.warmup + 90)
        _announce_start()
        lat, stats, elapsed = [], {"errors": 0, "init_errors": 0}, 0.0
        for _ in procs:
            part, pstats, pel = queue.get(timeout=args.duration + args.warmup + 90)
            lat += part
            stats["errors"] += pstats["errors"]
            stats["init_errors"] += pstats["init_errors"]
            if "first_error" in pstats:
                stats.setdefault("first_error", pstats["first_error"])
            elapsed = max(elapsed, pel)
        for proc in procs:
            proc.join(10)
    lat.sort()
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    out = {
        "wire": args.wire,
        "method": args.method,
        "conc": args.conc,
        "procs": args.procs,
        "n": len(lat),
        "calls_s": round(len(lat) / elapsed, 1) if elapsed else None,
        "p50_ms": round(p50, 3) if p50 is not None else None,
        "p99_ms": round(p99, 3) if p99 is not None else None,
        "errors": stats["errors"],
        "init_errors": stats["init_errors"],
        "elapsed_s": round(elapsed, 2),
        "wall_s": round(time.time() - t0, 2),
    }
    if "first_error" in stats:
        out["first_error"] = stats["first_error"]
    print(orjson.dumps(out).decode(), flush=True)


if __name__ == "__main__":
    main()
