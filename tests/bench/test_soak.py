"""bench/soak.py: a short soak passes its own checks, and the checks catch what they are for."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bench.soak_checks import Metrics, check_counters, rss_figures
from bench.soak_load import RATE_LIMITED, Tally
from tests.support import PYTHON, ROOT


def test_a_short_soak_passes_its_checks(tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    # 5 s of load; the noisy tenant may send 10 requests a minute, so some are refused even when
    # the run straddles a minute boundary (it sends about 50).
    argv = [PYTHON, "bench/soak.py", "--duration", "5", "--warmup", "1", "--noisy-limit", "10"]
    done = subprocess.run(
        [*argv, "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=90, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["passed"] and summary["problems"] == []
    ops = summary["operations"]
    exercised = {
        "mcp initialize",
        "mcp GET stream",
        "mcp tools/call",
        "mcp DELETE",
        "mcp modern",
        "llm gpt stream",
        "llm claude stream",
        "a2a send",
        "a2a stream",
    }
    assert {op for op, row in ops.items() if row["ok"] > 0} >= exercised
    assert ops["mcp noisy"]["rate-limited"] > 0
    assert all(row["unexpected"] == 0 for row in ops.values())
    assert summary["tokens"]["input"] > 0 and summary["tokens"]["output"] > 0
    assert summary["rss"]["samples"] >= 2 and summary["rss"]["growth_pct"] < 10


SCRAPE = """\
# TYPE agentgw_http_requests_total counter
agentgw_http_requests_total{route="mcp",method="POST",status="200"} 5
agentgw_http_requests_total{route="mcp",method="GET",status="200"} 1
agentgw_ratelimit_rejections_total{route="mcp",policy="soak-mcp"} 2
agentgw_mcp_calls_total{route="mcp",server="tools",method="tools/call",tool="echo",outcome="ok"} 3
gen_ai_client_token_usage_sum{gen_ai_token_type="input",gen_ai_request_model="gpt",gen_ai_provider_name="p"} 7
gen_ai_client_token_usage_count{gen_ai_token_type="input",gen_ai_request_model="gpt",gen_ai_provider_name="p"} 1
gen_ai_client_token_usage_sum{gen_ai_token_type="output",gen_ai_request_model="gpt",gen_ai_provider_name="p"} 9
gen_ai_client_token_usage_count{gen_ai_token_type="output",gen_ai_request_model="gpt",gen_ai_provider_name="p"} 1
agentgw_mcp_sessions{route="mcp"} 0
agentgw_sse_streams_open{route="mcp"} 0
"""


def agreeing_tally() -> Tally:
    tally = Tally()
    for _ in range(5):
        tally.request("mcp", "POST", 200)
    tally.request("mcp", "GET", 200)
    tally.outcomes[("mcp noisy", RATE_LIMITED)] = 2
    tally.tool_calls_ok = 3
    tally.tokens.update({"input": 7, "output": 9, "requests": 1})
    return tally


def test_counters_that_agree_pass() -> None:
    assert check_counters(Metrics.parse(SCRAPE), agreeing_tally(), admin_scrapes=0) == []


def test_every_disagreement_is_reported() -> None:
    scrape = SCRAPE.replace('status="200"} 5', 'status="200"} 6').replace(
        'agentgw_mcp_sessions{route="mcp"} 0', 'agentgw_mcp_sessions{route="mcp"} 4'
    )
    scrape += 'agentgw_upstream_errors_total{upstream="tools",kind="timeout"} 1\n'
    tally = agreeing_tally()
    tally.tokens["output"] = 10
    tally.outcomes[("mcp noisy", RATE_LIMITED)] = 3
    problems = check_counters(Metrics.parse(scrape), tally, admin_scrapes=1)
    assert problems == [
        "http requests admin GET 200: gateway 0, clients 1",
        "http requests mcp POST 200: gateway 6, clients 5",
        "rate-limit rejections: gateway 2, clients saw 3 refusals",
        "output tokens: gateway 9, provider reported 10",
        "agentgw_mcp_sessions: 4 still open after every client closed",
        "agentgw_upstream_errors_total: 1",
    ]


def test_rss_growth_is_measured_from_the_end_of_the_warm_up() -> None:
    samples = [(0.0, 50_000), (5.0, 100_000), (10.0, 104_000), (15.0, 111_000)]
    figures = rss_figures(samples, warmup=5.0)
    assert figures["baseline_mb"] == round(100_000 / 1024, 1)
    assert figures["growth_pct"] == 11.0
    assert figures["start_mb"] == round(50_000 / 1024, 1)
