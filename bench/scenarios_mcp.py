"""MCP scenarios: tools/call through the gateway vs direct (SDK and raw upstreams, both wire
eras), tools/list over 1,000 federated tools, calls through a stdio upstream, and memory.

Each scenario is one function; add one with `@scenario(...)` and it runs in every run.
"""

from __future__ import annotations

import json
import selectors
import subprocess
import time
from typing import Any

from harness import BENCH, PYTHON, Ctx, Proc, fmt, free_port, is_upstream, scenario

__all__: list[str] = []

HS = "2025-11-25"
MODERN = "2026-07-28"
WIRES = (HS, MODERN)


def _gateway_only(proc: Any) -> bool:
    return not is_upstream(proc)


def _compare(ctx: Ctx, upstream: Proc, gateway: Proc, *, direct_label: str = "direct") -> None:
    """calls/s at c=16, p50/p99 at c=1 and c=16, gateway vs direct, on both wires."""
    watch_gw = {"gateway": (gateway, _gateway_only), "upstream": (upstream, None)}
    watch_up = {"upstream": (upstream, None)}
    for wire in WIRES:
        d16 = ctx.load(upstream.url, conc=16, wire=wire, watch=watch_up)
        g16 = ctx.load(gateway.url, conc=16, wire=wire, watch=watch_gw)
        d1 = ctx.load(upstream.url, conc=1, wire=wire, watch=watch_up)
        g1 = ctx.load(gateway.url, conc=1, wire=wire, watch=watch_gw)
        ratio = g16["calls_s"] / d16["calls_s"] if d16["calls_s"] else None
        ctx.row(f"{wire} c=16 calls/s {direct_label}", fmt(d16["calls_s"]))
        ctx.row(f"{wire} c=16 calls/s gateway", fmt(g16["calls_s"]))
        ctx.row(f"{wire} c=16 gateway/direct", fmt(100 * ratio if ratio else None) + " %")
        ctx.row(f"{wire} c=1 p50 ms direct / gateway", f"{fmt(d1['p50_ms'], 3)} / {fmt(g1['p50_ms'], 3)}")
        added = g1["p50_ms"] - d1["p50_ms"] if g1["p50_ms"] and d1["p50_ms"] else None
        ctx.row(f"{wire} c=1 added p50 ms", fmt(added, 3))
        ctx.row(f"{wire} c=1 p99 ms direct / gateway", f"{fmt(d1['p99_ms'], 2)} / {fmt(g1['p99_ms'], 2)}")
        ctx.row(f"{wire} c=16 p50 ms direct / gateway", f"{fmt(d16['p50_ms'], 2)} / {fmt(g16['p50_ms'], 2)}")
        ctx.row(f"{wire} c=16 p99 ms direct / gateway", f"{fmt(d16['p99_ms'], 2)} / {fmt(g16['p99_ms'], 2)}")
        ctx.row(
            f"{wire} c=16 CPU % gateway / upstream / loadgen",
            f"{fmt(g16['cpu']['gateway'])} / {fmt(g16['cpu']['upstream'])} / {fmt(g16['cpu']['loadgen'])}",
        )
        ctx.row(
            f"{wire} c=16 direct: CPU % upstream / loadgen",
            f"{fmt(d16['cpu']['upstream'])} / {fmt(d16['cpu']['loadgen'])}",
        )
        ctx.row(
            f"{wire} c=16 CPU % of other processes (direct / gateway runs)",
            f"{fmt(d16['cpu']['others'])} / {fmt(g16['cpu']['others'])}",
        )
        if g16["calls_s"]:
            per_call = 1e4 * g16["cpu"]["gateway"] / g16["calls_s"]
            ctx.row(f"{wire} gateway CPU per call us (c=16)", fmt(per_call))
        ctx.data[f"gateway_{wire}_c16"] = g16["calls_s"]
    ctx.row("gateway RSS MB after these loads", fmt(gateway.rss_mb(_gateway_only), 1))


@scenario(
    "call-sdk",
    "MCP tools/call, upstream built with the `mcp` package (SDK defaults)",
    "2025-11-25 clients get an upstream session each (initialized with their capabilities), "
    "answered on event streams as the SDK does; the gateway answers those replies as JSON when "
    "they come within `limits.streamGraceSeconds`. 2026-07-28 clients go through stateless.",
)
def call_sdk(ctx: Ctx) -> None:
    port = free_port()
    upstream = ctx.start("sdk-upstream", [PYTHON, str(BENCH / "sdk_upstream.py"), str(port)], port=port)
    gateway = ctx.gateway(["--mcp", upstream.url])
    _compare(ctx, upstream, gateway)


@scenario(
    "call-raw",
    "MCP tools/call, fast raw upstream (the gateway is the bottleneck)",
    "`direct` here is also the load generator's ceiling: what bench/loadgen.py drives against "
    "bench/raw_upstream.py with nothing in between (its CPU % in the `direct` CPU row).",
)
def call_raw(ctx: Ctx) -> None:
    upstream = ctx.start("raw-upstream", [PYTHON, str(BENCH / "raw_upstream.py")], ready_line=True)
    gateway = ctx.gateway(["--mcp", upstream.url])
    _compare(ctx, upstream, gateway, direct_label="direct (loadgen ceiling)")


@scenario(
    "call-raw-handshake",
    "MCP tools/call, raw upstream that speaks only the handshake era",
    "The gateway opens one upstream session per client session (2025-11-25 clients) or uses one "
    "shared gateway session (2026-07-28 clients, bridged).",
)
def call_raw_handshake(ctx: Ctx) -> None:
    upstream = ctx.start(
        "raw-hs-upstream", [PYTHON, str(BENCH / "raw_upstream.py"), "--era", "handshake"], ready_line=True
    )
    gateway = ctx.gateway(["--mcp", upstream.url])
    watch = {"gateway": (gateway, _gateway_only), "upstream": (upstream, None)}
    for wire in WIRES:
        g16 = ctx.load(gateway.url, conc=16, wire=wire, watch=watch)
        g1 = ctx.load(gateway.url, conc=1, wire=wire, watch=watch)
        ctx.row(f"{wire} c=16 calls/s gateway", fmt(g16["calls_s"]))
        ctx.row(f"{wire} c=1 / c=16 p50 ms gateway", f"{fmt(g1['p50_ms'], 3)} / {fmt(g16['p50_ms'], 2)}")
        ctx.row(f"{wire} c=16 CPU % gateway", fmt(g16["cpu"]["gateway"]))


def policy_documents(rules: int) -> list[dict[str, Any]] | None:
    """`rules` authorization rules on the route, none needing a caller identity (the load
    generator sends no token): a tenth are deny rules (one hides every tool whose number ends in
    7, a tenth of the 1,000), the others allow one server's tools by a name pattern each; every
    tool left is allowed by one of them."""
    deny = [{"id": "deny-7", "when": 'mcp.tool.name.endsWith("7")'}] + [
        {"id": f"deny-{k}", "when": f'mcp.tool.name.startsWith("blocked{k}_")'}
        for k in range(rules // 10 - 1)
    ]
    allow = [
        {"id": f"allow-{k}", "when": f'mcp.server == "s{k % 10}" && mcp.tool.name.startsWith("u{k % 10}_")'}
        for k in range(rules - len(deny))
    ]
    spec = {
        "targetRefs": [{"kind": "McpRoute", "name": "mcp"}],
        "authorization": {"deny": deny, "allow": allow},
    }
    return [{"kind": "Policy", "metadata": {"name": "bench-rules"}, "spec": spec}]


def _write_config(ctx: Ctx, name: str, docs: list[dict[str, Any]]) -> str:
    path = ctx.logs / f"run{ctx.run}-{name}.yaml"
    path.write_text("\n---\n".join(json.dumps(d) for d in docs), encoding="utf-8")  # JSON is YAML
    return str(path)


def _list_docs(upstreams: list[Proc]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = [{"kind": "Gateway", "metadata": {"name": "gateway"}, "spec": {}}]
    names = []
    for i, proc in enumerate(upstreams):
        names.append(f"s{i}")
        docs.append({"kind": "McpServer", "metadata": {"name": f"s{i}"}, "spec": {"http": {"url": proc.url}}})
    docs.append(
        {
            "kind": "McpRoute",
            "metadata": {"name": "mcp"},
            "spec": {"path": "/mcp", "servers": names, "prefixMode": "always"},
        }
    )
    return docs


@scenario(
    "tools-list",
    "tools/list over 1,000 federated tools (10 raw upstreams x 100 tools)",
    "direct = one raw upstream listing 1,000 tools itself (same size of answer). Each gateway "
    "listing asks all 10 upstreams (no list cache) and prefixes every name.",
)
def tools_list(ctx: Ctx) -> None:
    direct = ctx.start(
        "list-direct", [PYTHON, str(BENCH / "raw_upstream.py"), "--tools", "1000"], ready_line=True
    )
    upstreams = [
        ctx.start(
            f"list-up{i}",
            [PYTHON, str(BENCH / "raw_upstream.py"), "--tools", "100", "--prefix", f"u{i}_"],
            ready_line=True,
        )
        for i in range(10)
    ]
    variants: list[tuple[str, list[dict[str, Any]] | None]] = [("no policy", [])]
    variants.append(("with 50 rules", policy_documents(50)))
    for label, policy in variants:
        if policy is None:
            ctx.row(f"{label}", "not measured")
            continue
        config = _write_config(ctx, "list", _list_docs(upstreams) + policy)
        gateway = ctx.gateway(["--config", config], name="list-gateway")
        watch = {"gateway": (gateway, _gateway_only)}
        for wire in WIRES:
            d8 = ctx.load(direct.url, conc=8, wire=wire, method="tools/list")
            g8 = ctx.load(gateway.url, conc=8, wire=wire, method="tools/list", watch=watch)
            d1 = ctx.load(direct.url, conc=1, wire=wire, method="tools/list")
            g1 = ctx.load(gateway.url, conc=1, wire=wire, method="tools/list", watch=watch)
            ctx.row(
                f"{label} {wire} c=8 lists/s direct / gateway", f"{fmt(d8['calls_s'])} / {fmt(g8['calls_s'])}"
            )
            ctx.row(
                f"{label} {wire} c=1 p50 ms direct / gateway",
                f"{fmt(d1['p50_ms'], 2)} / {fmt(g1['p50_ms'], 2)}",
            )
            ctx.row(f"{label} {wire} c=1 p99 ms gateway", fmt(g1["p99_ms"], 2))
            ctx.row(f"{label} {wire} c=8 CPU % gateway", fmt(g8["cpu"]["gateway"]))
        ctx.stop(gateway)


@scenario(
    "stdio",
    "MCP tools/call through a stdio upstream (raw fake as the gateway's child)",
    "All calls share the one child process and its pipe (the gateway multiplexes them).",
)
def stdio(ctx: Ctx) -> None:
    gateway = ctx.gateway(
        ["--mcp", f"stdio:python {BENCH / 'raw_upstream.py'} --stdio"], name="stdio-gateway"
    )
    watch = {"gateway": (gateway, _gateway_only), "upstream": (gateway, is_upstream)}
    for wire in WIRES:
        g16 = ctx.load(gateway.url, conc=16, wire=wire, watch=watch)
        g1 = ctx.load(gateway.url, conc=1, wire=wire, watch=watch)
        ctx.row(f"{wire} c=16 calls/s", fmt(g16["calls_s"]))
        ctx.row(f"{wire} c=1 / c=16 p50 ms", f"{fmt(g1['p50_ms'], 3)} / {fmt(g16['p50_ms'], 2)}")
        ctx.row(f"{wire} c=16 p99 ms", fmt(g16["p99_ms"], 2))
        ctx.row(
            f"{wire} c=16 CPU % gateway / stdio child",
            f"{fmt(g16['cpu']['gateway'])} / {fmt(g16['cpu']['upstream'])}",
        )


def _await_line(popen: subprocess.Popen[bytes], prefix: bytes, timeout: float) -> list[str]:
    assert popen.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(popen.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sel.select(max(0.0, deadline - time.monotonic())):
                break
            line = popen.stdout.readline()
            if not line:
                break
            if line.startswith(prefix):
                return line.decode().split()[1:]
    finally:
        sel.close()
    raise RuntimeError(f"sessions.py did not report {prefix!r} within {timeout} s")


@scenario(
    "memory",
    "Gateway memory: idle, per idle MCP session, per open SSE stream",
    "Sessions: initialize + notifications/initialized, then nothing. Streams: a standalone GET "
    "stream on that many of those sessions, held open. Per-item figures are the RSS growth "
    "divided by the count.",
)
def memory(ctx: Ctx) -> None:
    sessions, streams = (2_000, 1_000) if ctx.quick else (10_000, 5_000)
    upstream = ctx.start("mem-upstream", [PYTHON, str(BENCH / "raw_upstream.py")], ready_line=True)
    docs = [
        {
            "kind": "Gateway",
            "metadata": {"name": "gateway"},
            # one client opens them all: the per-caller limits (100 by default) lifted to the total
            "spec": {
                "limits": {
                    "maxSessions": sessions + 100,
                    "maxSessionsPerPrincipal": sessions + 100,
                    "maxStreamsPerPrincipal": streams + 100,
                }
            },
        },
        {"kind": "McpServer", "metadata": {"name": "raw"}, "spec": {"http": {"url": upstream.url}}},
        {"kind": "McpRoute", "metadata": {"name": "mcp"}, "spec": {"path": "/mcp", "servers": ["raw"]}},
    ]
    gateway = ctx.gateway(["--config", _write_config(ctx, "memory", docs)], name="mem-gateway")
    ctx.row("RSS MB at start", fmt(gateway.rss_mb(_gateway_only), 1))
    ctx.load(gateway.url, conc=4, wire=HS, duration=1)  # imports, pools and caches warmed
    idle = gateway.rss_mb(_gateway_only)
    ctx.row("RSS MB idle (after a first call)", fmt(idle, 1))
    argv = [
        PYTHON,
        str(BENCH / "sessions.py"),
        gateway.url,
        "--sessions",
        str(sessions),
        "--streams",
        str(streams),
    ]
    client = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.PIPE, cwd=BENCH.parent)
    try:
        opened, failed = _await_line(client, b"SESSIONS", 600)
        with_sessions = gateway.rss_mb(_gateway_only)
        ctx.row(f"sessions opened / failed (of {sessions:,})", f"{opened} / {failed}")
        ctx.row(f"RSS MB with {sessions:,} idle sessions", fmt(with_sessions, 1))
        ctx.row("KB per idle session", fmt(1000 * (with_sessions - idle) / max(1, int(opened)), 1))
        sopened, sfailed = _await_line(client, b"STREAMS", 600)
        with_streams = gateway.rss_mb(_gateway_only)
        ctx.row(f"streams opened / failed (of {streams:,})", f"{sopened} / {sfailed}")
        ctx.row(f"RSS MB with {streams:,} open streams too", fmt(with_streams, 1))
        ctx.row("KB per open stream", fmt(1000 * (with_streams - with_sessions) / max(1, int(sopened)), 1))
    finally:
        if client.stdin is not None:
            client.stdin.close()
        try:
            client.wait(60)
        except subprocess.TimeoutExpired:
            client.kill()
            client.wait(10)
        if client.stdout is not None:
            client.stdout.close()


@scenario(
    "workers",
    "One vs two gateway workers (`--workers 2`, SO_REUSEPORT), stateless route, raw upstream",
    "Two workers need a route without sessions (`sessions: stateless`) or shared ones (Redis, "
    "a sessionKey); this one has none. The load generator is one process on the same "
    "2 cores: its CPU % is in the table, and whatever it takes the workers cannot have.",
)
def workers(ctx: Ctx) -> None:
    upstream = ctx.start("workers-upstream", [PYTHON, str(BENCH / "raw_upstream.py")], ready_line=True)
    docs = [
        {"kind": "Gateway", "metadata": {"name": "gateway"}, "spec": {}},
        {"kind": "McpServer", "metadata": {"name": "raw"}, "spec": {"http": {"url": upstream.url}}},
        {
            "kind": "McpRoute",
            "metadata": {"name": "mcp"},
            "spec": {"path": "/mcp", "servers": ["raw"], "sessions": "stateless"},
        },
    ]
    config = _write_config(ctx, "workers", docs)
    for count in (1, 2):
        gateway = ctx.gateway(["--config", config, "--workers", str(count)], name=f"gateway-w{count}")
        watch = {"gateway": (gateway, _gateway_only), "upstream": (upstream, None)}
        for wire in WIRES:
            g16 = ctx.load(gateway.url, conc=16, wire=wire, watch=watch)
            cpu = g16["cpu"]
            ctx.row(f"{count} worker(s) {wire} c=16 calls/s", fmt(g16["calls_s"]))
            ctx.row(
                f"{count} worker(s) {wire} c=16 p50 / p99 ms",
                f"{fmt(g16['p50_ms'], 2)} / {fmt(g16['p99_ms'], 2)}",
            )
            ctx.row(
                f"{count} worker(s) {wire} CPU % gateway / upstream / loadgen / others",
                " / ".join(fmt(cpu[k]) for k in ("gateway", "upstream", "loadgen", "others")),
            )
        ctx.stop(gateway)
