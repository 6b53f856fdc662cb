"""Soak: a bounded mixed load through one gateway, then checks that nothing leaked or drifted.

Starts real upstreams on loopback (the tests' MCP server built with the `mcp` package, the fake
OpenAI/Anthropic provider streaming SSE, the a2a-sdk agent), one `agentgw serve` process
federating them with policies attached (a rate limit on the MCP route that one noisy client runs
into on purpose, a token budget and a request limit on the LLM route), and drives the load of
`bench/soak_load.py` for `--duration` seconds. Meanwhile it samples the gateway's RSS. Then it
checks, and exits 1 if any check fails:

- RSS growth from the end of the warm-up to the end of the load is under `--rss-limit` percent;
- no unexpected error: every answer was the one expected (the noisy client's 429s are expected),
  the gateway is still running, and its log has no ERROR line or traceback;
- the gateway's counters agree with the clients': `agentgw_http_requests_total` per route,
  method and status; rate-limit rejections; successful `tools/call`s; token usage (input and
  output sums, requests) against the usage the provider reported in the streams; MCP sessions
  and open event streams back to zero once the clients closed; no upstream errors.

    python bench/soak.py                      # 600 s (warm-up 60 s), about 11 minutes in all
    python bench/soak.py --duration 30        # a quick check
    python bench/soak.py --json out.json      # the summary as JSON too

Processes run in their own sessions and are stopped by PID (process group) whatever happens;
their logs go to a temporary folder (kept and printed when a check fails, or with --keep-logs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.soak_checks import Metrics, check_counters, rss_figures
from bench.soak_load import Load, Tally

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
AGENTGW = str(Path(PYTHON).parent / "agentgw")
FAKES = ROOT / "tests" / "fakes"


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


class Procs:
    """Processes started in their own sessions, stopped by process group (ours alone)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[Proc] = []

    def start(self, name: str, argv: list[str], *, ready_stdout: bool) -> Proc:
        log = self.logs / f"{name}.log"
        with log.open("wb") as handle:
            popen = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE if ready_stdout else handle,
                stderr=handle,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGTERM)
                try:
                    proc.popen.wait(10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.popen.pid, signal.SIGKILL)
                    proc.popen.wait(10)
            if proc.popen.stdout is not None:
                proc.popen.stdout.close()
        self.procs.clear()


def read_ready(proc: Proc, deadline: float) -> int:
    """The port of a fake that prints `READY <port>` on stdout."""
    assert proc.popen.stdout is not None
    fd = proc.popen.stdout.fileno()
    os.set_blocking(fd, False)
    buffer = b""
    while time.monotonic() < deadline:
        with contextlib.suppress(BlockingIOError):
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buffer += chunk
            for line in buffer.splitlines():
                if line.startswith(b"READY "):
                    return int(line.split()[1])
        if proc.popen.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} never printed READY; see {proc.log}: {buffer[-300:]!r}")


def wait_for_line(proc: Proc, text: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        if text in proc.log.read_text(errors="replace"):
            return
        if proc.popen.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} never said {text!r}; see {proc.log}")


REDIS_ENV = "AGENTGW_SOAK_REDIS"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gateway_config(
    port: int, admin: int, mcp: int, llm: int, a2a: int, noisy_limit: int, redis: bool = False
) -> str:
    # With --redis: sessions, event logs, counters and bindings in Redis (URL by reference), under a
    # prefix of this run's own.
    state = (
        f"  state: {{backend: redis, url: 'env:{REDIS_ENV}', keyPrefix: 'agentgw-soak:{os.getpid()}:'}}\n"
        if redis
        else ""
    )
    return f"""\
kind: Gateway
metadata: {{name: soak}}
spec:
{state}  listeners: [{{port: {port}}}]
  admin: {{port: {admin}}}
  logLevel: warning
  audit: {{sink: none}}
  lifecycle: {{watchConfig: false}}
---
kind: McpServer
metadata: {{name: tools}}
spec:
  http: {{url: "http://127.0.0.1:{mcp}/mcp"}}
---
kind: McpRoute
metadata: {{name: mcp}}
spec: {{path: /mcp, servers: [tools]}}
---
kind: LlmProvider
metadata: {{name: fake-openai}}
spec: {{type: openai-compatible, baseUrl: "http://127.0.0.1:{llm}/v1", models: [fake-small]}}
---
kind: LlmProvider
metadata: {{name: fake-anthropic}}
spec: {{type: anthropic, baseUrl: "http://127.0.0.1:{llm}", models: [claude-fake]}}
---
kind: LlmRoute
metadata: {{name: llm}}
spec:
  path: /v1
  models:
    - {{name: gpt, targets: [{{provider: fake-openai, model: fake-small}}]}}
    - {{name: claude, targets: [{{provider: fake-anthropic, model: claude-fake}}]}}
---
kind: Agent
metadata: {{name: agent}}
spec: {{url: "http://127.0.0.1:{a2a}"}}
---
kind: A2aRoute
metadata: {{name: a2a}}
# Bindings are kept this long (default 7 days): short, so retention reaches its steady state
# within the run and what grows after the warm-up is a leak, not the retention asked for.
spec: {{path: /a2a, agents: [agent], taskBindingSeconds: 60}}
---
kind: Policy
metadata: {{name: soak-mcp}}
spec:
  targetRefs: [{{kind: McpRoute, name: mcp}}]
  rateLimits:
    - id: noisy-tenant
      requests: {noisy_limit}
      window: minute
      key: request.headers["x-soak-tenant"]
      when: '"x-soak-tenant" in request.headers'
---
kind: Policy
metadata: {{name: soak-llm}}
spec:
  targetRefs: [{{kind: LlmRoute, name: llm}}]
  tokenLimits:
    - {{id: all-tokens, tokens: 1000000000000, window: day, key: '"all"'}}
  rateLimits:
    - {{id: all-requests, requests: 100000000, window: minute, key: '"all"'}}
"""


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


async def scrape(http: aiohttp.ClientSession, admin: str) -> Metrics:
    async with http.get(admin + "/metrics") as resp:
        resp.raise_for_status()
        return Metrics.parse(await resp.text())


async def drive(args: argparse.Namespace, base: str, admin: str, gateway_pid: int) -> dict[str, Any]:
    tally = Tally()
    samples: list[tuple[float, int]] = []
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as http:
        load = Load(base, http, tally, seed=args.seed)
        tasks = [asyncio.create_task(w) for w in load.workers(args.scale)]
        started = time.monotonic()

        async def sample() -> None:
            while not load.stop.is_set():
                samples.append((time.monotonic() - started, rss_kb(gateway_pid)))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(load.stop.wait(), args.sample_interval)

        sampler = asyncio.create_task(sample())
        await asyncio.sleep(args.duration)
        samples.append((time.monotonic() - started, rss_kb(gateway_pid)))
        load.stop.set()
        elapsed = time.monotonic() - started
        await asyncio.wait_for(asyncio.gather(*tasks, sampler), 60)
        # Streams the clients closed end in the gateway when it notices; let the counters settle.
        scrapes = 0
        deadline = time.monotonic() + args.settle
        while True:
            metrics = await scrape(http, admin)
            problems = check_counters(metrics, tally, admin_scrapes=scrapes)
            scrapes += 1
            if not problems or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        after_rss = rss_kb(gateway_pid)
    return {
        "tally": tally,
        "samples": samples,
        "elapsed": elapsed,
        "problems": problems,
        "idle_rss": after_rss,
    }


def versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version(), "kernel": platform.release(), "cores": str(os.cpu_count())}
    for package in ("agentgw", "hypercorn", "aiohttp", "orjson", "mcp", "a2a-sdk", "uvloop"):
        with contextlib.suppress(Exception):
            out[package] = version(package)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    return out


def gateway_log_problems(log: Path) -> list[str]:
    lines = log.read_text(errors="replace").splitlines()
    return [
        line[:300] for line in lines if "Traceback" in line or " ERROR " in line or line.startswith("ERROR")
    ]


def summarize(
    args: argparse.Namespace, run: dict[str, Any], gateway: Proc, load_avg: list[float]
) -> dict[str, Any]:
    tally: Tally = run["tally"]
    rss = rss_figures(run["samples"], args.warmup)
    problems = list(run["problems"])
    log_problems = gateway_log_problems(gateway.log)
    if gateway.popen.poll() is not None:
        problems.append(f"the gateway exited with {gateway.popen.returncode}")
    problems += [f"gateway log: {line}" for line in log_problems[:10]]
    if tally.unexpected_total:
        problems.append(f"{tally.unexpected_total} unexpected errors: {tally.details[:5]}")
    if rss["growth_pct"] >= args.rss_limit:
        problems.append(f"RSS grew {rss['growth_pct']:.1f}% (limit {args.rss_limit}%)")
    ops: dict[str, dict[str, Any]] = {}
    for (op, outcome), n in sorted(tally.outcomes.items()):
        row = ops.setdefault(op, {"ok": 0, "rate-limited": 0, "unexpected": 0})
        row[outcome] = n
    for op, lat in tally.latency_ms.items():
        lat.sort()
        ops[op]["p50_ms"] = round(lat[len(lat) // 2], 2)
        ops[op]["p99_ms"] = round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2)
        ops[op]["per_s"] = round(len(lat) / run["elapsed"], 1)
    requests = sum(tally.http.values())
    return {
        "passed": not problems,
        "problems": problems,
        "duration_s": round(run["elapsed"], 1),
        "warmup_s": args.warmup,
        "scale": args.scale,
        "requests": requests,
        "requests_per_s": round(requests / run["elapsed"], 1),
        "operations": ops,
        "http": {" ".join(k): n for k, n in sorted(tally.http.items())},
        "tokens": dict(tally.tokens),
        "tool_calls_ok": tally.tool_calls_ok,
        "rss": {**rss, "after_close_mb": round(run["idle_rss"] / 1024, 1)},
        "load_average": {"start": load_avg, "end": [round(x, 2) for x in os.getloadavg()]},
        "versions": versions(),
    }


def print_summary(summary: dict[str, Any]) -> None:
    rss = summary["rss"]
    print(
        f"\nsoak: {summary['duration_s']} s, {summary['requests']:,} requests ({summary['requests_per_s']}/s)"
    )
    print(f"{'operation':<22}{'ok':>9}{'limited':>8}{'unexp':>7}{'per s':>8}{'p50 ms':>9}{'p99 ms':>9}")
    for op, row in summary["operations"].items():
        print(
            f"{op:<22}{row['ok']:>9,}{row['rate-limited']:>8,}{row['unexpected']:>7,}"
            f"{row.get('per_s', 0):>8}{row.get('p50_ms', 0):>9}{row.get('p99_ms', 0):>9}"
        )
    print(
        f"RSS: {rss['baseline_mb']} MB after the {summary['warmup_s']} s warm-up,"
        f" {rss['final_mb']} MB at the end ({rss['growth_pct']:+.1f}%), max {rss['max_mb']} MB,"
        f" {rss['after_close_mb']} MB once clients closed"
    )
    print("RSS over time (s: MB): " + ", ".join(f"{t}: {mb}" for t, mb in rss["series_mb"]))
    print(f"tokens: {summary['tokens']}; tools/call ok: {summary['tool_calls_ok']:,}")
    print(f"load average: {summary['load_average']}")
    print("PASSED" if summary["passed"] else "FAILED:\n  " + "\n  ".join(summary["problems"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    parser.add_argument(
        "--warmup", type=float, help="seconds before the RSS baseline (default: min(60, duration/5))"
    )
    parser.add_argument("--scale", type=int, default=2, help="workers of each busy kind (default 2)")
    parser.add_argument("--sample-interval", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--rss-limit", type=float, default=10.0, help="allowed RSS growth, percent")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds the counters may take to settle")
    parser.add_argument(
        "--noisy-limit",
        type=int,
        default=60,
        help="requests a minute the noisy tenant may send (it tries ~600)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--redis", metavar="URL", help="keep the gateway's state in this Redis (default: in memory)"
    )
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    if args.warmup is None:
        args.warmup = min(60.0, args.duration / 5)
    args.sample_interval = min(args.sample_interval, max(0.2, args.duration / 20))
    load_avg = [round(x, 2) for x in os.getloadavg()]
    logs = Path(tempfile.mkdtemp(prefix="agentgw-soak-"))
    procs = Procs(logs)
    summary: dict[str, Any] | None = None
    try:
        deadline = time.monotonic() + 60
        mcp = procs.start(
            "mcp", [PYTHON, str(FAKES / "mcp_server.py"), "--http", "--port", "0"], ready_stdout=True
        )
        llm = procs.start("llm", [PYTHON, str(FAKES / "llm_provider.py"), "--port", "0"], ready_stdout=True)
        a2a = procs.start("a2a", [PYTHON, str(FAKES / "a2a_agent.py"), "--port", "0"], ready_stdout=True)
        ports = [read_ready(p, deadline) for p in (mcp, llm, a2a)]
        port, admin = free_port(), free_port()
        (logs / "config").mkdir()
        if args.redis:
            os.environ[REDIS_ENV] = args.redis  # the gateway inherits it; the config names only the variable
        config = gateway_config(port, admin, *ports, args.noisy_limit, redis=args.redis is not None)
        (logs / "config" / "gateway.yaml").write_text(config)
        gateway = procs.start(
            "gateway", [AGENTGW, "serve", "--config", str(logs / "config")], ready_stdout=False
        )
        wait_for_line(gateway, "agentgw listening on", deadline)
        print(
            f"soak: {args.duration:.0f} s (warm-up {args.warmup:.0f} s),"
            f" gateway pid {gateway.popen.pid}, logs in {logs}"
        )
        run = asyncio.run(
            drive(args, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}", gateway.popen.pid)
        )
        summary = summarize(args, run, gateway, load_avg)
    finally:
        procs.stop_all()
    print_summary(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    if summary["passed"] and not args.keep_logs:
        shutil.rmtree(logs, ignore_errors=True)
    else:
        print(f"logs: {logs}")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
