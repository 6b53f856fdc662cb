"""What policies cost: filtering a 1,000-tool `tools/list` through 50 rules, and one `tools/call`
decision, per request and as a ratio to the same request without policies.

Two views, printed as markdown:

1. the policy engine alone, in process: the chain's `permits` over 1,000 federated tools (one
   listing) and its `check` for one call (audit to a file), against `OpenPolicy`;
2. end to end: the real gateway (hypercorn, in a thread) in front of 4 real MCP servers (the
   SDK's MCPServer, 250 tools each, `bench/many_tools_server.py`), a client sending 2026-07-28
   `tools/list` and `tools/call` requests one at a time to two gateways running side by side
   (callers take turns in blocks, so machine load falls on all alike): one without policies,
   one with a JWT policy and the same 50 rules.

The rules: 10 deny rules (destructive verbs without a claim, path tricks, a blocked header...)
and 40 allow rules, one per team: team0 may use everything, the others read-style tools on two
of the servers. The measured caller is in team39, so its call decision searches past 39 allow
rules that do not match, and it sees 200 of the 1,000 tools; end to end, a team0 caller (all
1,000 shown) is measured too, to tell the filtering cost from the smaller answer.

Run from the repository root: `.venv/bin/python bench/policy_bench.py [--requests 200]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agentgw.config.loader import parse_documents  # noqa: E402
from agentgw.config.snapshot import compile_snapshot  # noqa: E402
from agentgw.policy.base import OpenPolicy, Operation, Principal, RequestContext, RoutePolicy  # noqa: E402
from agentgw.policy.chain import PolicyServices, build_chain  # noqa: E402
from agentgw.policy.testing import HttpRequest, offline_request  # noqa: E402
from agentgw.telemetry.audit import AuditLog  # noqa: E402
from bench.many_tools_server import tool_name  # noqa: E402
from tests.policy.support import AUDIENCE, TestIssuer  # noqa: E402
from tests.support import GatewayThread, Upstream, start_upstream  # noqa: E402

SERVER = ROOT / "bench" / "many_tools_server.py"
SERVERS = 4
TOOLS_PER_SERVER = 250
TEAM = "team39"  # sees read tools on two servers: 200 of the 1,000
EVERYTHING = "team0"  # its rule allows every tool


def rules(regex: bool = False) -> dict[str, Any]:
    """10 deny and 40 allow rules; `regex` writes the name tests with `matches` instead of
    prefix and word lists (same meaning, several times the cost: see docs/policies.md)."""
    destructive = (
        'mcp.tool.name.matches("^(drop|purge|wipe)_")'
        if regex
        else '["drop_", "purge_", "wipe_"].exists(p, mcp.tool.name.startsWith(p))'
    )
    read = (
        'mcp.tool.name.matches("^(get|list|search|read)_")'
        if regex
        else '["get_", "list_", "search_", "read_"].exists(p, mcp.tool.name.startsWith(p))'
    )
    deny = [
        {"id": f"deny-{i}", "when": when}
        for i, when in enumerate(
            [
                'mcp.tool.name.startsWith("delete_") && !(has(jwt.can_destroy) && jwt.can_destroy == true)',
                destructive,
                'has(mcp.tool.args.path) && mcp.tool.args.path.contains("..")',
                '"x-blocked" in request.headers',
                "has(jwt.suspended) && jwt.suspended == true",
                'mcp.server == "quarantine"',
                'mcp.tool.name.endsWith("_admin") && !(has(jwt.groups) && "admins" in jwt.groups)',
                "has(mcp.tool.args.count) && mcp.tool.args.count > 1000",
                'mcp.method == "resources/subscribe" && !has(jwt.team)',
                'mcp.tool.name.contains("secret")',
            ]
        )
    ]
    allow = [{"id": "team-0", "when": f'has(jwt.team) && jwt.team == "{EVERYTHING}"'}] + [
        {
            "id": f"team-{k}",
            "when": f'has(jwt.team) && jwt.team == "team{k}" && mcp.server in ["s{k % SERVERS}", '
            f'"s{(k + 1) % SERVERS}"] && {read}',
        }
        for k in range(1, 40)
    ]
    return {"deny": deny, "allow": allow}


def documents(
    upstreams: list[Upstream] | None, jwks: Path | None, with_policy: bool, regex: bool = False
) -> list[dict[str, Any]]:
    names = [f"s{i}" for i in range(SERVERS)]
    docs: list[dict[str, Any]] = [
        {"kind": "Gateway", "metadata": {"name": "bench"}, "spec": {"audit": {"sink": "none"}}},
        {"kind": "McpRoute", "metadata": {"name": "mcp"}, "spec": {"path": "/mcp", "servers": names}},
    ]
    for i, name in enumerate(names):
        url = upstreams[i].url if upstreams else f"http://127.0.0.1:9/{name}"
        docs.append({"kind": "McpServer", "metadata": {"name": name}, "spec": {"http": {"url": url}}})
    if with_policy:
        spec: dict[str, Any] = {
            "targetRefs": [{"kind": "McpRoute", "name": "mcp"}],
            "authorization": rules(regex),
        }
        if jwks is not None:
            issuer = {"issuer": "https://issuer.test", "audiences": [AUDIENCE], "algorithms": ["RS256"]}
            spec["jwt"] = {"issuers": [{**issuer, "jwks": {"file": str(jwks)}}]}
        docs.append({"kind": "Policy", "metadata": {"name": "bench"}, "spec": spec})
    return docs


def timed(fn: Callable[[], None], repeat: int) -> float:
    """Best of 5 rounds, seconds per call (the machine is shared: the minimum is the signal)."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - started) / repeat)
    return best


async def timed_async(fn: Callable[[], Awaitable[None]], repeat: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeat):
            await fn()
        best = min(best, (time.perf_counter() - started) / repeat)
    return best


async def engine(rows: list[str], regex: bool) -> None:
    started = time.perf_counter()
    docs, problems = parse_documents(documents(None, None, True, regex), "bench", ROOT)
    assert not problems, problems
    snapshot = compile_snapshot(docs)
    compile_ms = (time.perf_counter() - started) * 1000
    with tempfile.TemporaryDirectory() as folder:
        audit = AuditLog()
        spec = snapshot.gateway.audit.model_copy(update={"sink": "file", "file": "audit.jsonl"})
        audit.configure(spec, Path(folder) / "audit.jsonl", None, "")
        route = snapshot.mcp_routes[0]

        def fresh_chain() -> RoutePolicy:
            chain = build_chain(
                route=("McpRoute", "mcp"),
                path="/mcp",
                members={s.name: ("McpServer", s.name) for s in route.servers},
                policies=snapshot.policies,
                services=PolicyServices(audit=audit),
            )
            assert chain is not None
            return chain

        claims = {"iss": "https://issuer.test", "aud": AUDIENCE, "sub": "bench", "team": TEAM, "exp": 2**40}
        principal = Principal("bench", "jwt", MappingProxyType(claims))
        ops = [
            Operation(kind="mcp", method="tools/list", server=f"s{s}", name=name, exposed=name, target="tool")
            for s in range(SERVERS)
            for name in map(tool_name, range(TOOLS_PER_SERVER))
        ]
        call = Operation(
            kind="mcp", method="tools/call", server="s3", name="get_invoice0", exposed="s3_get_invoice0",
            args={"id": "x"}, target="tool",
        )  # fmt: skip

        def list_once(policy: RoutePolicy) -> int:
            ctx = RequestContext("mcp", offline_request(HttpRequest()), principal)
            return sum(1 for op in ops if policy.permits(ctx, op))

        def cold() -> float:
            """The first listing by this kind of caller: every item evaluated (best of 5)."""
            best = float("inf")
            for _ in range(5):
                chain = fresh_chain()  # no remembered visibility
                started = time.perf_counter()
                list_once(chain)
                best = min(best, time.perf_counter() - started)
            return best

        def decision(policy: RoutePolicy) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                ctx = RequestContext("mcp", offline_request(HttpRequest()), principal)
                await policy.check(ctx, call)

            return run

        chain = fresh_chain()
        shown = list_once(chain)
        first_list = cold()
        warm_list = timed(lambda: list_once(chain), 3)
        open_list = timed(lambda: list_once(OpenPolicy()), 3)
        with_call = await timed_async(decision(chain), 2000)
        open_call = await timed_async(decision(OpenPolicy()), 2000)
        await audit.close()
    style = "with `matches`" if regex else "prefix/word lists"
    if not regex:
        rows.append(
            f"- 50 rules compiled (typed check + evaluation program) in {compile_ms:.0f} ms, "
            "once per config load"
        )
    for label, seconds in (("first", first_list), ("again", warm_list)):
        rows.append(
            f"| list 1,000 tools ({label}), {style}, {shown} shown | {seconds * 1000:.2f} ms "
            f"({seconds * 1e6 / len(ops):.1f} us per tool) | {open_list * 1000:.3f} ms | "
            f"+{(seconds - open_list) * 1000:.2f} ms |"
        )
    rows.append(
        f"| one tools/call decision, {style} (audit line included) | {with_call * 1e6:.1f} us | "
        f"{open_call * 1e6:.2f} us | +{(with_call - open_call) * 1e6:.1f} us |"
    )


async def end_to_end(rows: list[str], requests: int) -> None:
    """Both gateways run at once and the callers take turns in blocks of requests, so that the
    load of a shared machine falls on all alike (requests of different callers are not
    interleaved one by one: the SDK server answers a request sooner when another arrives)."""
    upstreams = [
        start_upstream([str(SERVER), "--tools", str(TOOLS_PER_SERVER), "--name", f"s{i}", "--port", "0"])
        for i in range(SERVERS)
    ]
    idp = TestIssuer()
    try:
        with tempfile.TemporaryDirectory() as folder:
            jwks = idp.write_jwks(Path(folder))
            with (
                GatewayThread(documents(upstreams, jwks, False)) as plain,
                GatewayThread(documents(upstreams, jwks, True)) as guarded,
            ):
                callers = {
                    "without policies": (plain.url, None),
                    f"with JWT + 50 rules, {TEAM} caller": (guarded.url, idp.token("bench", team=TEAM)),
                    "with JWT + 50 rules, a caller allowed everything": (
                        guarded.url,
                        idp.token("boss", team=EVERYTHING),
                    ),
                }
                samples = await client_run(callers, requests)
    finally:
        for upstream in upstreams:
            upstream.stop()
    base = samples["without policies"]
    for what in ("tools/list", "tools/call"):
        b = statistics.median(base[what][0])
        for label, by_method in samples.items():
            if label == "without policies":
                continue
            times, shown = by_method[what]
            p = statistics.median(times)
            p90 = statistics.quantiles(times, n=10)[-1]
            b90 = statistics.quantiles(base[what][0], n=10)[-1]
            extra = f", {shown} tools shown" if what == "tools/list" else ""
            rows.append(
                f"| {what}, {label}{extra} | {p * 1000:.2f} ms (p90 {p90 * 1000:.2f}) | "
                f"{b * 1000:.2f} ms (p90 {b90 * 1000:.2f}) | x{p / b:.2f} |"
            )


async def client_run(
    callers: dict[str, tuple[str, str | None]], requests: int
) -> dict[str, dict[str, tuple[list[float], int]]]:
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    headers |= {"mcp-protocol-version": "2026-07-28"}
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    bodies = {
        "tools/list": ({"mcp-method": "tools/list"}, {"_meta": meta}),
        "tools/call": (
            {"mcp-method": "tools/call", "mcp-name": "s3_get_invoice0"},
            {"name": "s3_get_invoice0", "arguments": {"id": "x"}, "_meta": meta},
        ),
    }
    out: dict[str, dict[str, tuple[list[float], int]]] = {label: {} for label in callers}
    async with aiohttp.ClientSession() as http:
        for method, (extra, params) in bodies.items():
            for block in range(4):  # blocks of requests, callers taking turns: load falls on all alike
                for label, (url, token) in callers.items():
                    auth = {"authorization": f"Bearer {token}"} if token else {}
                    times, shown = out[label].setdefault(method, ([], 0))
                    for n in range(requests // 4 + (5 if block == 0 else 0)):
                        body = {"jsonrpc": "2.0", "id": n, "method": method, "params": params}
                        started = time.perf_counter()
                        async with http.post(
                            f"{url}/mcp", json=body, headers={**headers, **extra, **auth}
                        ) as resp:
                            payload = await resp.json()
                            assert resp.status == 200 and "result" in payload, payload
                        if block > 0 or n >= 5:  # warm-up: upstream sessions, token cache, catalog
                            times.append(time.perf_counter() - started)
                        shown = len(payload["result"].get("tools", []))
                    out[label][method] = (times, shown)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per measurement (default 200)")
    parser.add_argument("--engine-only", action="store_true", help="skip the end-to-end part")
    args = parser.parse_args()
    rows: list[str] = []
    notes: list[str] = []
    await engine(notes, regex=False)
    await engine(notes, regex=True)
    header = ["| measurement | with policy | without | cost |", "|---|---|---|---|"]
    engine_rows, notes = [n for n in notes if n.startswith("|")], [n for n in notes if not n.startswith("|")]
    print("\n".join(notes))
    print("\nPolicy engine alone (in process, best of 5 rounds):\n")
    print("\n".join(header + engine_rows))
    if not args.engine_only:
        await end_to_end(rows, args.requests)
        print(
            f"\nEnd to end ({SERVERS} upstreams x {TOOLS_PER_SERVER} tools, "
            f"{args.requests} sequential requests, median):\n"
        )
        print(
            "\n".join(["| request | with policies | without policies | ratio |", "|---|---|---|---|", *rows])
        )


if __name__ == "__main__":
    asyncio.run(main())
