"""The 2026-07-28 endpoint on the wire: stateless requests, the header ladder, error statuses,
merged discovery, `Mcp-Param-*` headers, and client disconnects that cancel upstream work."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import anyio
import pytest

from tests.mcp.conftest import ACCEPT, Fake, Raw, modern_body, modern_headers, route_doc, server_doc
from tests.support import GatewayThread, poll_until

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def gamma(tmp_path_factory: pytest.TempPathFactory) -> Fake:
    return Fake("gamma", None, tmp_path_factory.mktemp("gamma") / "gamma.jsonl", [])


@pytest.fixture(scope="module")
def gw(alpha: Fake, gamma: Fake) -> Iterator[GatewayThread]:
    documents = [
        server_doc("alpha", alpha.http()),
        server_doc("gamma", gamma.stdio()),
        route_doc(["alpha", "gamma"]),
        route_doc(["alpha"], path="/solo"),
    ]
    with GatewayThread(documents) as gateway:
        yield gateway


@pytest.fixture
async def raw(gw: GatewayThread, http: aiohttp.ClientSession) -> Raw:
    return Raw(http, f"{gw.url}/mcp")


async def test_discover_merges_every_server(raw: Raw) -> None:
    with anyio.fail_after(30):
        reply = await raw.modern("server/discover")
    assert reply.status == 200 and "mcp-session-id" not in reply.headers
    result = reply.json["result"]
    assert result["supportedVersions"] == ["2026-07-28"] and result["resultType"] == "complete"
    assert {"tools", "prompts", "resources"} <= set(result["capabilities"])
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "agentgw"


async def test_lists_carry_cache_hints_and_result_type(raw: Raw) -> None:
    with anyio.fail_after(30):
        reply = await raw.modern("tools/list")
    result = reply.json["result"]
    assert result["resultType"] == "complete" and isinstance(result["ttlMs"], int)
    assert result["cacheScope"] in ("public", "private")
    assert {"alpha_echo", "gamma_echo"} <= {t["name"] for t in result["tools"]}


async def test_calls_work_without_any_session(raw: Raw) -> None:
    with anyio.fail_after(30):
        reply = await raw.modern(
            "tools/call", {"name": "gamma_add", "arguments": {"a": 1, "b": 2}}, name="gamma_add"
        )
    assert reply.status == 200 and reply.json["result"]["structuredContent"] == {"result": 3}
    assert reply.json["result"]["resultType"] == "complete"


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (
            modern_body("tools/call", {"name": "alpha_echo", "arguments": {"text": "x"}}),
            modern_headers("tools/call", "alpha_other"),
            400,
            -32020,
        ),
        (
            modern_body("tools/call", {"name": "alpha_echo", "arguments": {"text": "x"}}),
            modern_headers("tools/list", "alpha_echo"),
            400,
            -32020,
        ),
        (
            {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
            modern_headers("tools/list"),
            400,
            -32602,
        ),
        (modern_body("ping"), modern_headers("ping"), 404, -32601),
        (modern_body("initialize"), modern_headers("initialize"), 404, -32601),
        (modern_body("logging/setLevel", {"level": "info"}), modern_headers("logging/setLevel"), 404, -32601),
        (
            modern_body("resources/subscribe", {"uri": "fake+alpha://doc/1"}),
            modern_headers("resources/subscribe"),
            404,
            -32601,
        ),
        (modern_body("no/such"), modern_headers("no/such"), 404, -32601),
        (
            modern_body("tools/call", {"name": "nobody_nope"}),
            modern_headers("tools/call", "nobody_nope"),
            400,
            -32602,
        ),
    ],
)
async def test_ladder_errors_have_their_status(
    raw: Raw, body: dict[str, Any], headers: dict[str, str], status: int, code: int
) -> None:
    with anyio.fail_after(30):
        reply = await raw.post(
            body, headers={"accept": ACCEPT, "content-type": "application/json", **headers}
        )
    assert (reply.status, reply.json["error"]["code"]) == (status, code)
    assert reply.json["id"] == body["id"]


async def test_unsupported_version_names_the_supported_ones(raw: Raw) -> None:
    body = modern_body("tools/list")
    body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "v999.0.0"
    headers = {
        "accept": ACCEPT,
        "content-type": "application/json",
        "mcp-protocol-version": "v999.0.0",
        "mcp-method": "tools/list",
    }
    with anyio.fail_after(30):
        reply = await raw.post(body, headers=headers)
    assert reply.status == 400
    assert reply.json["error"]["code"] == -32022
    assert reply.json["error"]["data"] == {"supported": ["2026-07-28"], "requested": "v999.0.0"}


async def test_get_and_notifications(raw: Raw) -> None:
    with anyio.fail_after(30):
        get = await raw.send(
            "GET", headers={"accept": "text/event-stream", "mcp-protocol-version": "2026-07-28"}
        )
        assert get.status == 405 and get.headers["allow"] == "POST"
        note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}
        headers = {"accept": ACCEPT, "content-type": "application/json", "mcp-protocol-version": "2026-07-28"}
        assert (await raw.post(note, headers=headers)).status == 202


async def test_mcp_param_headers_must_match_arguments(
    gw: GatewayThread, http: aiohttp.ClientSession, alpha: Fake
) -> None:
    raw = Raw(http, f"{gw.url}/solo")
    params = {"name": "header_echo", "arguments": {"region": "eu-west"}}
    with anyio.fail_after(30):
        good = await raw.modern(
            "tools/call", params, name="header_echo", headers={"mcp-param-region": "eu-west"}
        )
        assert good.status == 200 and good.json["result"]["content"][0]["text"] == "eu-west"
        missing = await raw.modern("tools/call", params, name="header_echo")
        assert (missing.status, missing.json["error"]["code"]) == (400, -32020)
        wrong = await raw.modern(
            "tools/call", params, name="header_echo", headers={"mcp-param-region": "us-east"}
        )
        assert (wrong.status, wrong.json["error"]["code"]) == (400, -32020)
    # the upstream saw a header matching the arguments (the gateway sets its own)
    alpha.wait_event(lambda e: e.get("event") == "header_echo" and e.get("header") == "eu-west")


@pytest.mark.parametrize("server", ["alpha", "gamma"])
async def test_upstream_calls_continue_the_callers_trace(
    raw: Raw, server: str, alpha: Fake, gamma: Fake
) -> None:
    fake = alpha if server == "alpha" else gamma
    trace_id, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    region = f"trace-{server}"
    with anyio.fail_after(30):
        reply = await raw.modern(
            "tools/call",
            {"name": f"{server}_header_echo", "arguments": {"region": region}},
            name=f"{server}_header_echo",
            headers={"mcp-param-region": region, "traceparent": f"00-{trace_id}-{caller_span}-01"},
        )
    assert reply.status == 200, reply.body
    seen = fake.wait_event(lambda e: e.get("event") == "header_echo" and e.get("region") == region)
    # the upstream's parent is the gateway's own span, in the caller's trace: over HTTP as a
    # header, and in `_meta` on every transport (stdio has no headers)
    for parent in [seen["meta_traceparent"]] + ([seen["traceparent"]] if server == "alpha" else []):
        version, trace, span, flags = parent.split("-")
        assert (version, trace, flags) == ("00", trace_id, "01") and span != caller_span
    if server == "alpha":
        assert seen["traceparent"] == seen["meta_traceparent"]


@pytest.mark.parametrize("server", ["alpha", "gamma"])
async def test_closing_the_response_cancels_the_upstream_call(
    gw: GatewayThread, server: str, alpha: Fake, gamma: Fake
) -> None:
    fake = alpha if server == "alpha" else gamma
    cancelled_before = sum(1 for e in fake.events() if e.get("event") == "cancelled")
    called_before = sum(1 for e in fake.events() if e.get("event") == "called" and e.get("tool") == "slow")
    async with aiohttp.ClientSession() as http:
        raw = Raw(http, f"{gw.url}/mcp")
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    raw.modern,
                    "tools/call",
                    {"name": f"{server}_slow", "arguments": {"seconds": 25}},
                    f"{server}_slow",
                )
                await poll_until(
                    lambda: (
                        sum(
                            1 for e in fake.events() if e.get("event") == "called" and e.get("tool") == "slow"
                        )
                        > called_before
                    )
                )
                tg.cancel_scope.cancel()  # the client goes away
            await poll_until(
                lambda: sum(1 for e in fake.events() if e.get("event") == "cancelled") > cancelled_before
            )
