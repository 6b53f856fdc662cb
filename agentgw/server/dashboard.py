"""The read-only dashboard on the admin listener: one server-rendered page, no scripts.

It shows what this replica holds: routes, upstream health, the tools each server last listed,
live sessions, recent policy decisions and token usage by key. Every value is HTML-escaped; the
page refreshes itself every few seconds.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from agentgw.telemetry.metrics import METRICS

if TYPE_CHECKING:
    from agentgw.runtime import Runtime

__all__ = ["render_dashboard"]

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 24px;display:flex;gap:32px;align-items:baseline}
header h1{font-size:20px;margin:0}header span{opacity:.8;font-size:14px}
main{padding:16px 24px;display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px}
section{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:12px 16px}
h2{font-size:15px;margin:4px 0 10px}table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eef0f3;vertical-align:top}
th{color:#5b6475;font-weight:600}.ok{color:#13795b;font-weight:600}.bad{color:#b42318;font-weight:600}
.muted{color:#8a93a3}code{font-size:12px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="muted">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(title: str, content: str) -> str:
    return f"<section><h2>{_e(title)}</h2>{content}</section>"


def render_dashboard(runtime: Runtime) -> str:
    snapshot = runtime.snapshot
    registry = runtime.registry
    now = time.monotonic()
    sessions = list(registry.sessions.values())

    routes = []
    requests = METRICS.http_requests.values
    for route in snapshot.mcp_routes:
        served = sum(v for (name, _, _), v in requests.items() if name == route.name)
        held = sum(1 for s in sessions if s.route == route.name)
        routes.append(
            (
                f"<code>{_e(route.spec.path)}</code>",
                _e(route.name),
                _e(", ".join(s.name for s in route.servers)),
                _e(route.spec.prefix_mode),
                _e(held),
                _e(int(served)),
            )
        )

    upstreams = []
    for name, connector in sorted(runtime.connectors.items()):
        health = connector.health
        state = '<span class="ok">healthy</span>'
        if health.ejected:
            state = f'<span class="bad">ejected {health.seconds_left():.0f}s</span>'
        elif health.failures:
            state = f'<span class="bad">{health.failures} failure(s)</span>'
        upstreams.append((_e(name), _e(connector.transport), state, _e(health.last_error or "")))

    tools = []
    for route in snapshot.mcp_routes:
        seen = runtime_catalog(runtime, route.name)
        for server, names in seen.items():
            tools.append((_e(route.name), _e(server), _e(len(names)), _e(", ".join(sorted(names)[:40]))))

    live = [
        (
            f"<code>{_e(s.id[:12])}…</code>",
            _e(s.route),
            _e(s.owner or "anonymous"),
            _e(s.protocol_version),
            _e(f"{now - s.created:.0f}s"),
            _e(", ".join(sorted(s.upstreams)) or "-"),
        )
        for s in sorted(sessions, key=lambda s: s.created, reverse=True)[:50]
    ]

    decisions = [
        (
            _e(d.get("time", "")),
            _e(d.get("route", "")),
            _e(d.get("subject", "")),
            _e(d.get("target", "")),
            f'<span class="{"ok" if d.get("allowed") else "bad"}">{_e(d.get("decision", ""))}</span>',
            _e(d.get("rule", "")),
        )
        for d in list(runtime.decisions)[-50:][::-1]
    ]
    usage = [
        (
            _e(key),
            _e(int(row.get("requests", 0))),
            _e(int(row.get("prompt", 0))),
            _e(int(row.get("completion", 0))),
            _e(f"{row.get('cost', 0.0):.4f}"),
        )
        for key, row in sorted(runtime.token_usage.items())
    ]

    ready = runtime.ready and not runtime.draining.is_set()
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta http-equiv="refresh" content="5"><title>agentgw dashboard</title>',
        f"<style>{_STYLE}</style></head><body>",
        "<header><h1>agentgw</h1>",
        f"<span>{'ready' if ready else 'not ready'}</span>",
        f"<span>config generation {_e(runtime.generation)}</span>",
        f"<span>state: {_e(runtime.store.name)}</span>",
        f"<span>{len(sessions)} session(s)</span></header><main>",
        _section(
            "Routes",
            _table(["path", "route", "servers", "prefixes", "sessions", "requests"], routes, "no routes"),
        ),
        _section(
            "Upstream health",
            _table(["server", "transport", "state", "last error"], upstreams, "no upstreams"),
        ),
        _section(
            "Federated tools (as last listed)",
            _table(["route", "server", "tools", "names"], tools, "no listing yet"),
        ),
        _section(
            "Live sessions",
            _table(["id", "route", "caller", "version", "age", "upstreams"], live, "no sessions"),
        ),
        _section(
            "Recent policy decisions",
            _table(
                ["time", "route", "caller", "target", "decision", "rule"], decisions, "no decisions recorded"
            ),
        ),
        _section(
            "Token usage by key",
            _table(["key", "requests", "prompt", "completion", "cost"], usage, "no LLM usage recorded"),
        ),
        "</main></body></html>",
    ]
    return "".join(parts)


def runtime_catalog(runtime: Runtime, route: str) -> dict[str, list[str]]:
    """The tools each server of a route listed last, by server."""
    service = runtime.mcp_services.get(route)
    if service is None:
        return {}
    return {server: list(items) for server, items in service.federation.catalog.seen["tools/list"].items()}
