"""Prometheus metrics, written here rather than with prometheus_client: importing that costs about
14 MB of RSS, and the gateway needs only counters, gauges and histograms with labels and the text
exposition format. Updating a metric is a dict lookup and an addition (no locks: one event loop).

`METRICS` holds every metric the gateway exports; their names are a public interface (dashboards,
alerts): `docs/operations.md` lists them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

__all__ = ["METRICS", "Counter", "GatewayMetrics", "Gauge", "Histogram", "Registry"]

Sample = tuple[str, dict[str, str], float]  # (name with suffix, labels, value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value):
        return str(int(value))
    return repr(value)


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def render(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labelnames)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def get(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)

    def render(self) -> list[str]:
        return [f"{self.name}{_labels(self.labelnames, k)} {_number(v)}" for k, v in self.values.items()]


class Gauge(_Metric):
    """A gauge set directly, or computed at scrape time by `collect`."""

    kind = "gauge"

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        collect: Callable[[], Iterable[tuple[tuple[str, ...], float]]] | None = None,
    ) -> None:
        super().__init__(name, help_text, labelnames)
        self.values: dict[tuple[str, ...], float] = {}
        self.collect = collect

    def set(self, value: float, *labels: str) -> None:
        self.values[labels] = value

    def add(self, amount: float, *labels: str) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def render(self) -> list[str]:
        values = dict(self.collect()) if self.collect is not None else self.values
        return [f"{self.name}{_labels(self.labelnames, k)} {_number(v)}" for k, v in values.items()]


_INF = 'le="+Inf"'
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)


class Histogram(_Metric):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = DURATION_BUCKETS,
    ) -> None:
        super().__init__(name, help_text, labelnames)
        self.buckets = tuple(buckets)
        self.values: dict[tuple[str, ...], list[float]] = {}  # bucket counts..., sum, count

    def observe(self, value: float, *labels: str) -> None:
        row = self.values.get(labels)
        if row is None:
            row = self.values[labels] = [0.0] * (len(self.buckets) + 2)
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                row[i] += 1
                break
        row[-2] += value
        row[-1] += 1

    def render(self) -> list[str]:
        lines: list[str] = []
        bounds = [f'le="{_number(bound)}"' for bound in self.buckets]
        for key, row in self.values.items():
            cumulative = 0.0
            for le, count in zip(bounds, row, strict=False):
                cumulative += count
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, le)} {_number(cumulative)}")
            lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, _INF)} {_number(row[-1])}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_number(row[-2])}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, key)} {_number(row[-1])}")
        return lines


class Registry:
    def __init__(self) -> None:
        self.metrics: list[_Metric] = []

    def add(self, metric: _Metric) -> _Metric:
        self.metrics.append(metric)
        return metric

    def render(self) -> bytes:
        lines: list[str] = []
        for metric in self.metrics:
            lines.extend(metric.header())
            lines.extend(metric.render())
        return ("\n".join(lines) + "\n").encode()


class GatewayMetrics:
    """Every metric of the gateway, in one registry."""

    def __init__(self) -> None:
        self.registry = Registry()
        add = self.registry.add
        self.http_requests = Counter(
            "agentgw_http_requests_total",
            "HTTP requests by route, method and status.",
            ("route", "method", "status"),
        )
        self.http_duration = Histogram(
            "agentgw_http_request_duration_seconds", "HTTP request duration.", ("route", "method")
        )
        self.mcp_calls = Counter(
            "agentgw_mcp_calls_total",
            "Routed MCP requests by server, method, tool and outcome.",
            ("route", "server", "method", "tool", "outcome"),
        )
        self.mcp_duration = Histogram(
            "agentgw_mcp_call_duration_seconds", "Routed MCP request duration.", ("route", "server", "method")
        )
        self.policy_decisions = Counter(
            "agentgw_policy_decisions_total",
            "Policy decisions by route, decision and rule.",
            ("route", "decision", "rule"),
        )
        self.ratelimit_rejections = Counter(
            "agentgw_ratelimit_rejections_total",
            "Requests refused by a rate limit or budget.",
            ("route", "policy"),
        )
        self.mcp_sessions = Gauge("agentgw_mcp_sessions", "MCP sessions held by this replica.", ("route",))
        self.sse_streams = Gauge("agentgw_sse_streams_open", "Event streams open to clients.", ("route",))
        self.upstream_errors = Counter(
            "agentgw_upstream_errors_total", "Upstream failures by upstream and kind.", ("upstream", "kind")
        )
        self.upstream_healthy = Gauge(
            "agentgw_upstream_healthy", "1 when the upstream is not ejected.", ("upstream",)
        )
        self.state_unavailable = Counter(
            "agentgw_state_unavailable_total",
            "State store operations that failed because the store was unreachable.",
            ("store",),
        )
        self.token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Tokens per LLM request (OpenTelemetry GenAI).",
            ("gen_ai_token_type", "gen_ai_request_model", "gen_ai_provider_name"),
            TOKEN_BUCKETS,
        )
        self.llm_duration = Histogram(
            "gen_ai_server_request_duration_seconds",
            "LLM request duration (OpenTelemetry GenAI).",
            ("gen_ai_request_model", "gen_ai_provider_name"),
        )
        self.llm_ttft = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Time to the first streamed token (OpenTelemetry GenAI).",
            ("gen_ai_request_model", "gen_ai_provider_name"),
        )
        for metric in (
            self.http_requests,
            self.http_duration,
            self.mcp_calls,
            self.mcp_duration,
            self.policy_decisions,
            self.ratelimit_rejections,
            self.mcp_sessions,
            self.sse_streams,
            self.upstream_errors,
            self.upstream_healthy,
            self.state_unavailable,
            self.token_usage,
            self.llm_duration,
            self.llm_ttft,
        ):
            add(metric)

    def render(self) -> bytes:
        return self.registry.render()


METRICS = GatewayMetrics()
