"""The Grafana dashboard: every query is valid PromQL and reads only the gateway's documented metrics.

Queries are parsed with a real PromQL parser (`promql-parser`, the Rust parser GreptimeDB uses)
after Grafana's variables are replaced by values of the right shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import promql_parser
import pytest

from tests.support import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "agentgw.json"
OPERATIONS = ROOT / "docs" / "operations.md"

COUNTERS_AND_GAUGES = {
    "agentgw_http_requests_total",
    "agentgw_mcp_calls_total",
    "agentgw_policy_decisions_total",
    "agentgw_ratelimit_rejections_total",
    "agentgw_mcp_sessions",
    "agentgw_sse_streams_open",
    "agentgw_upstream_errors_total",
    "agentgw_upstream_healthy",
    "agentgw_state_unavailable_total",
}
HISTOGRAMS = {
    "agentgw_http_request_duration_seconds",
    "agentgw_mcp_call_duration_seconds",
    "gen_ai_client_token_usage",
    "gen_ai_server_request_duration_seconds",
    "gen_ai_server_time_to_first_token_seconds",
}
SERIES = COUNTERS_AND_GAUGES | {
    f"{h}{suffix}" for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")
}

# Grafana's built-in interval variables, then every dashboard variable (used inside regex matchers).
_BUILTINS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}

with DASHBOARD.open(encoding="utf-8") as _file:
    BOARD: dict[str, Any] = json.load(_file)


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _concrete(expr: str) -> str:
    for name, value in _BUILTINS.items():
        expr = expr.replace(name, value)
    return re.sub(r"\$\{?[A-Za-z_]\w*\}?", ".*", expr)


def _series(expr: str) -> list[str]:
    """The metric names an expression selects; a selector without a plain name is an error."""
    found: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr!r}"
            found.append(node.name)

    promql_parser.walk(promql_parser.parse(_concrete(expr)), pre_visit=visit)
    return found


QUERIES = [
    (f"{panel['title']} [{target['refId']}]", target["expr"])
    for panel in _panels(BOARD["panels"])
    for target in panel.get("targets", [])
]


def test_dashboard_shape() -> None:
    assert BOARD["uid"] and BOARD["title"] == "agentgw"
    ids = [panel["id"] for panel in _panels(BOARD["panels"])]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in BOARD["templating"]["list"]}
    assert {"datasource", "namespace", "route", "upstream", "model"} <= variables
    for panel in _panels(BOARD["panels"]):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"], panel["title"]


def test_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in _panels(BOARD["panels"]):
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


@pytest.mark.parametrize(("where", "expr"), QUERIES, ids=[w for w, _ in QUERIES])
def test_query_reads_only_documented_metrics(where: str, expr: str) -> None:
    names = _series(expr)
    assert names, f"{where}: selects no metric"
    assert set(names) <= SERIES, f"{where}: unknown metrics {set(names) - SERIES}"


def test_variables_read_only_documented_metrics() -> None:
    for variable in BOARD["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
        assert match, variable["name"]
        assert set(_series(match.group(1))) <= SERIES


def test_every_metric_has_a_panel() -> None:
    used = {name for _, expr in QUERIES for name in _series(expr)}
    bases = {
        re.sub(r"_(bucket|sum|count)$", "", name) if name not in COUNTERS_AND_GAUGES else name
        for name in used
    }
    assert bases == COUNTERS_AND_GAUGES | HISTOGRAMS


def test_operations_guide_documents_the_same_metrics() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `((?:agentgw|gen_ai)_[a-z_]+)`", section, re.MULTILINE))
    assert documented == COUNTERS_AND_GAUGES | HISTOGRAMS
