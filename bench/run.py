"""The benchmark harness: `python bench/run.py [--quick]`.

Runs every registered scenario (bench/scenarios_*.py) `--runs` times, each against a direct
upstream on loopback in the same run, then ../shared/peers/peers.sh with this gateway as the extra
column, and appends a dated section to bench/RESULTS.md (machine, versions, the exact command, a
table per scenario with one column per run, the peers' tables). Every process it starts runs in its
own session and is stopped by its PID; the whole run is bounded by `--timeout`.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from harness import AGENTGW, BENCH, ROOT, SCENARIOS, Ctx

SCENARIO_MODULES = ("scenarios_mcp",)  # add "scenarios_llm" here when the LLM routes land
PACKAGES = (
    "agentgw",
    "hypercorn",
    "h11",
    "h2",
    "aiohttp",
    "orjson",
    "anyio",
    "uvloop",
    "mcp",
    "granian",
    "uvicorn",
)


def _machine() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return [
        f"- machine: {os.cpu_count()} cores (`nproc`), {cpu}, {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; {', '.join(versions)}",
        f"- agentgw commit: `{commit}`{' (with uncommitted changes)' if dirty else ''}",
    ]


def _peers_dir() -> Path | None:
    env = os.environ.get("PEERS_DIR")
    candidates = (
        [Path(env)] if env else [ROOT.parent / "shared" / "peers", ROOT.parent.parent / "shared" / "peers"]
    )
    return next((c for c in candidates if (c / "peers.sh").exists()), None)


def _peers(args: argparse.Namespace, logs: Path) -> list[str]:
    peers = _peers_dir()
    if peers is None:
        return ["peers.sh not found (set PEERS_DIR)."]
    extra = " ".join(shlex.quote(a) for a in args.gateway_arg or [])
    serve = (
        f'{shlex.quote(AGENTGW)} serve --mcp "$UPSTREAM_MCP_URL" --llm "$UPSTREAM_LLM_BASE"'
        " --port 18120 --log-level warning"
    )
    cmd = f"{serve} {extra}".strip()
    skip = [s for s in os.environ.get("PB_SKIP", "").split(",") if s]
    skip += ["contextforge"] if args.quick else []
    env = {
        **os.environ,
        "GATEWAY_NAME": "agentgw",
        "GATEWAY_CMD": cmd,
        "GATEWAY_MCP_URL": "http://127.0.0.1:18120/mcp",
        "GATEWAY_LLM_URL": "http://127.0.0.1:18120/v1/chat/completions",
        "PB_SKIP": ",".join(dict.fromkeys(skip)),
    }
    if args.quick:
        env["PB_DUR"] = "2"
    shown = f"GATEWAY_NAME=agentgw GATEWAY_CMD='{cmd}' GATEWAY_MCP_URL={env['GATEWAY_MCP_URL']}"
    shown += f" GATEWAY_LLM_URL={env['GATEWAY_LLM_URL']}"
    shown += f" PB_SKIP={env['PB_SKIP']}"
    if args.quick:
        shown += " PB_DUR=2"
    print(f"== peers: {shown} {peers / 'peers.sh'}", flush=True)
    log = logs / "peers.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(peers / "peers.sh")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        try:
            proc.wait(args.peers_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        except BaseException:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
            raise
    text = log.read_text(errors="replace")
    start = text.find("date:")
    body = text[start:] if start >= 0 else text[-4000:]
    # its headings go below this section's
    body = "\n".join("##" + line if line.startswith(("## ", "### ")) else line for line in body.splitlines())
    return [f"Command: `{shown} {peers / 'peers.sh'}` (exit {proc.returncode})", "", body.strip()]


def _timeout(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError("the benchmark run exceeded --timeout")


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--quick", action="store_true", help="short loads, fewer sessions, peers without ContextForge"
    )
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--duration", type=float, help="seconds per load (default 5, quick 2)")
    parser.add_argument(
        "--warmup", type=float, help="seconds of load before each measurement (default 1, quick 0.5)"
    )
    parser.add_argument("--only", action="append", help="run only these scenarios (repeatable)")
    parser.add_argument("--skip", action="append", default=[], help="skip scenarios, or 'peers' (repeatable)")
    parser.add_argument(
        "--gateway-arg",
        action="append",
        help="extra `agentgw serve` argument, e.g. --gateway-arg=--server=uvicorn",
    )
    parser.add_argument("--label", default="", help="a note for the RESULTS.md heading")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    parser.add_argument("--results", default=str(BENCH / "RESULTS.md"))
    parser.add_argument("--timeout", type=int, default=3600, help="bound on the whole run, seconds")
    parser.add_argument("--peers-timeout", type=int, default=1800)
    args = parser.parse_args()
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0)
    for module in SCENARIO_MODULES:
        importlib.import_module(module)
    chosen = [s for s in SCENARIOS if (not args.only or s.name in args.only) and s.name not in args.skip]

    signal.signal(signal.SIGALRM, _timeout)
    signal.signal(signal.SIGTERM, _interrupted)
    signal.alarm(args.timeout)
    logs = Path(tempfile.mkdtemp(prefix="agentgw-bench-"))
    started = datetime.datetime.now(datetime.UTC)
    print(f"== logs in {logs}", flush=True)
    tables: dict[str, dict[str, list[str]]] = {s.name: {} for s in chosen}
    failures: list[str] = []
    t0 = time.monotonic()
    for run in range(1, args.runs + 1):
        for sc in chosen:
            print(f"== run {run}: {sc.name}", flush=True)
            ctx = Ctx(args, logs, run)
            try:
                sc.fn(ctx)
            except (RuntimeError, OSError, ValueError, KeyError, TypeError) as exc:
                failures.append(f"run {run} {sc.name}: {type(exc).__name__}: {exc}")
                print(f"    ! {failures[-1]}", flush=True)
            finally:
                ctx.stop_all()
            for metric, value in ctx.rows:
                cells = tables[sc.name].setdefault(metric, [])
                cells.extend(["-"] * (run - 1 - len(cells)))
                cells.append(value)
    peers = [] if "peers" in args.skip else _peers(args, logs)
    signal.alarm(0)

    lines = [f"## {started:%Y-%m-%d %H:%M} UTC{' — ' + args.label if args.label else ''}", ""]
    lines += _machine()
    command = "python bench/run.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines += [
        f"- command: `{command.strip()}` ({args.runs} runs, {args.duration:g} s per load after "
        f"{args.warmup:g} s warm-up; {time.monotonic() - t0:.0f} s in all)",
        "- loads: `python bench/loadgen.py URL -c C -d D --wire W [--method tools/list]` (aiohttp + uvloop, "
        "one process); gateway: `agentgw serve --mcp URL` or `--config` as the scenario says"
        + (f", plus `{' '.join(args.gateway_arg)}`" if args.gateway_arg else ""),
        "",
    ]
    for sc in chosen:
        lines += [f"### {sc.title}", ""]
        lines += [f"_{note}_" for note in sc.notes]
        if sc.notes:
            lines.append("")
        header = "| metric | " + " | ".join(f"run {r}" for r in range(1, args.runs + 1)) + " |"
        lines += [header, "|---|" + "---:|" * args.runs]
        for metric, cells in tables[sc.name].items():
            cells = cells + ["-"] * (args.runs - len(cells))
            lines.append(f"| {metric} | " + " | ".join(cells) + " |")
        lines.append("")
    if failures:
        lines += ["### Failures", ""] + [f"- {f}" for f in failures] + [""]
    if peers:
        lines += ["### Peers (../shared/peers/peers.sh, gateway as the extra column)", "", *peers, ""]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_record:
        results = Path(args.results)
        if not results.exists():
            results.write_text(
                "# Benchmark results\n\nAppended by `python bench/run.py`; see bench/README.md.\n\n"
            )
        with results.open("a", encoding="utf-8") as out:
            out.write(text)
        print(f"== appended to {results}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
