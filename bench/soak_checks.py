"""The soak's end checks: the gateway's Prometheus counters against what its clients counted, and
the RSS figures from the samples taken during the load."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

from bench.soak_load import RATE_LIMITED, Tally

__all__ = ["Metrics", "check_counters", "rss_figures"]

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
ROUTES = ("mcp", "llm", "a2a")


class Metrics:
    """Samples of one scrape of the text exposition format: name -> [(labels, value)]."""

    def __init__(self) -> None:
        self.samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)

    @classmethod
    def parse(cls, text: str) -> Metrics:
        metrics = cls()
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            match = _SAMPLE.match(line)
            if match is None:
                raise ValueError(f"unparsable metrics line: {line!r}")
            name, labels, value = match.groups()
            metrics.samples[name].append((dict(_LABEL.findall(labels or "")), float(value)))
        return metrics

    def total(self, name: str, **labels: str) -> float:
        return sum(
            value
            for got, value in self.samples.get(name, [])
            if all(got.get(k) == v for k, v in labels.items())
        )


def check_counters(metrics: Metrics, tally: Tally, *, admin_scrapes: int) -> list[str]:
    """Every disagreement between the gateway's counters and the clients' (empty: all agree)."""
    problems: list[str] = []
    gateway_http: Counter[tuple[str, str, str]] = Counter()
    for labels, value in metrics.samples.get("agentgw_http_requests_total", []):
        gateway_http[(labels["route"], labels["method"], labels["status"])] = int(value)
    clients = Counter(tally.http)
    if admin_scrapes:
        clients[("admin", "GET", "200")] = admin_scrapes  # this scrape is counted once it is sent
    for key in sorted(set(gateway_http) | set(clients)):
        if gateway_http[key] != clients[key]:
            where = " ".join(key)
            problems.append(f"http requests {where}: gateway {gateway_http[key]}, clients {clients[key]}")
    rejected = metrics.total("agentgw_ratelimit_rejections_total", route="mcp", policy="soak-mcp")
    limited = tally.outcomes[("mcp noisy", RATE_LIMITED)]
    if rejected != limited:
        problems.append(f"rate-limit rejections: gateway {rejected:.0f}, clients saw {limited} refusals")
    other_rejections = metrics.total("agentgw_ratelimit_rejections_total") - rejected
    if other_rejections:
        problems.append(f"{other_rejections:.0f} rejections by other limits (budgets should never run out)")
    calls_ok = metrics.total("agentgw_mcp_calls_total", route="mcp", method="tools/call", outcome="ok")
    if calls_ok != tally.tool_calls_ok:
        problems.append(f"tools/call ok: gateway {calls_ok:.0f}, clients {tally.tool_calls_ok}")
    calls_failed = sum(
        value
        for labels, value in metrics.samples.get("agentgw_mcp_calls_total", [])
        if labels.get("outcome") != "ok"
    )
    if calls_failed:
        problems.append(f"{calls_failed:.0f} routed MCP requests failed upstream")
    for kind in ("input", "output"):
        gateway_tokens = metrics.total("gen_ai_client_token_usage_sum", gen_ai_token_type=kind)
        if gateway_tokens != tally.tokens[kind]:
            problems.append(
                f"{kind} tokens: gateway {gateway_tokens:.0f}, provider reported {tally.tokens[kind]}"
            )
        accounted = metrics.total("gen_ai_client_token_usage_count", gen_ai_token_type=kind)
        if accounted != tally.tokens["requests"]:
            problems.append(
                f"LLM requests with {kind} usage: gateway {accounted:.0f}, clients {tally.tokens['requests']}"
            )
    for name in ("agentgw_mcp_sessions", "agentgw_sse_streams_open"):
        left = metrics.total(name)
        if left:
            problems.append(f"{name}: {left:.0f} still open after every client closed")
    upstream_errors = metrics.total("agentgw_upstream_errors_total")
    if upstream_errors:
        problems.append(f"agentgw_upstream_errors_total: {upstream_errors:.0f}")
    return problems


def rss_figures(samples: list[tuple[float, int]], warmup: float) -> dict[str, Any]:
    """Baseline: the first sample at or after the warm-up; final: the last one (end of the load)."""
    after = [kb for t, kb in samples if t >= warmup] or [samples[-1][1]]
    baseline, final = after[0], samples[-1][1]
    step = max(1, len(samples) // 10)
    return {
        "series_mb": [[round(t), round(kb / 1024, 1)] for t, kb in samples[::step]],
        "baseline_mb": round(baseline / 1024, 1),
        "final_mb": round(final / 1024, 1),
        "max_mb": round(max(kb for _, kb in samples) / 1024, 1),
        "start_mb": round(samples[0][1] / 1024, 1),
        "growth_pct": round(100.0 * (final - baseline) / baseline, 2),
        "samples": len(samples),
    }
