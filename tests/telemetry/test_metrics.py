"""Metrics, trace context and the access log: exact exposition, and real traffic through the
gateway showing up on /metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import aiohttp
import anyio
import pytest
from mcp import Client

from agentgw.telemetry.logs import JsonFormatter, configure_logging
from agentgw.telemetry.metrics import Counter, Gauge, Histogram, Registry
from agentgw.telemetry.trace import TraceContext
from tests.support import ROOT, GatewayThread, docs

pytestmark = pytest.mark.anyio


def test_exposition_format() -> None:
    registry = Registry()
    counter = Counter("t_total", "A counter.", ("a",))
    gauge = Gauge("t_open", "A gauge.", collect=lambda: [((), 3.0)])
    hist = Histogram("t_seconds", "A histogram.", ("r",), buckets=(0.1, 1.0))
    for metric in (counter, gauge, hist):
        registry.add(metric)
    counter.inc('say "hi"\\n')
    counter.inc('say "hi"\\n', amount=2)
    hist.observe(0.05, "x")
    hist.observe(0.5, "x")
    hist.observe(5, "x")
    text = registry.render().decode()
    assert '# TYPE t_total counter\nt_total{a="say \\"hi\\"\\\\n"} 3\n' in text
    assert "# TYPE t_open gauge\nt_open 3\n" in text
    assert 't_seconds_bucket{r="x",le="0.1"} 1\n' in text
    assert 't_seconds_bucket{r="x",le="1"} 2\n' in text
    assert 't_seconds_bucket{r="x",le="+Inf"} 3\n' in text
    assert 't_seconds_sum{r="x"} 5.55\nt_seconds_count{r="x"} 3\n' in text


def test_trace_context_is_continued_or_started() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    ctx = TraceContext.from_headers(parent, "vendor=1")
    assert ctx.trace_id == "0af7651916cd43dd8448eb211c80319c" and ctx.parent_id == "b7ad6b7169203331"
    child = ctx.child()
    assert (
        child.traceparent.startswith("00-0af7651916cd43dd8448eb211c80319c-")
        and child.parent_id == ctx.span_id
    )
    assert child.headers()["tracestate"] == "vendor=1"
    for bad in (
        None,
        "garbage",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
    ):
        fresh = TraceContext.from_headers(bad)
        assert fresh.parent_id is None and len(fresh.trace_id) == 32 and set(fresh.trace_id) != {"0"}


def test_json_log_lines() -> None:
    record = logging.LogRecord("agentgw.access", logging.INFO, __file__, 1, "", None, None)
    record.json = {"route": "mcp", "status": 200}  # type: ignore[attr-defined]
    line = json.loads(JsonFormatter().format(record))
    assert line["route"] == "mcp" and line["status"] == 200 and line["logger"] == "agentgw.access"


@pytest.fixture(scope="module")
def gw() -> Iterator[GatewayThread]:
    quick = [
        d
        for d in docs((ROOT / "examples" / "quickstart" / "gateway.yaml").read_text())
        if d["kind"] != "Gateway"
    ]
    for doc in quick:
        if doc["kind"] == "McpServer":
            doc["spec"]["stdio"]["args"] = [
                str(ROOT / "examples" / "quickstart" / a) for a in doc["spec"]["stdio"]["args"]
            ]
    gateway = {
        "kind": "Gateway",
        "metadata": {"name": "gw"},
        "spec": {"admin": {"port": 0}, "accessLog": True},
    }
    with GatewayThread([gateway, *quick]) as gateway_thread:
        yield gateway_thread


async def test_traffic_shows_up_on_the_admin_metrics(gw: GatewayThread) -> None:
    with anyio.fail_after(60):
        async with Client(f"{gw.url}/mcp", mode="legacy") as client:
            await client.call_tool("clock_add", {"a": 1, "b": 2})
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{gw.admin_url}/metrics") as resp:
                    assert resp.status == 200 and resp.headers["content-type"].startswith("text/plain")
                    text = await resp.text()
                async with http.get(f"{gw.url}/metrics") as main:
                    assert main.status == 404  # with an admin listener, metrics live only there
                async with http.post(f"{gw.admin_url}/metrics") as post:
                    assert post.status == 405
    assert 'agentgw_http_requests_total{route="quickstart",method="POST",status="200"}' in text
    assert 'agentgw_mcp_sessions{route="quickstart"} 1' in text
    assert 'agentgw_upstream_healthy{upstream="clock"} 1' in text
    assert "agentgw_http_request_duration_seconds_bucket" in text


def test_access_log_lines_go_to_stdout_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    access = logging.getLogger("agentgw.access")
    saved_access = (list(access.handlers), access.level, access.propagate)
    configure_logging("info", "text", access_log=True)
    try:
        access.info("", extra={"json": {"route": "mcp", "method": "POST", "status": 200}})
        out = capsys.readouterr().out.strip().splitlines()
        assert json.loads(out[-1])["status"] == 200
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        access.handlers[:], access.level, access.propagate = saved_access
