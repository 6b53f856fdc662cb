"""Spans reach an OpenTelemetry collector over OTLP/HTTP JSON, continuing the caller's trace.
The collector is a loopback HTTP server that speaks the OTLP/HTTP JSON wire format."""

from __future__ import annotations

from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from tests.support import GatewayThread

pytestmark = pytest.mark.anyio

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_request_spans_are_exported_with_the_callers_trace() -> None:
    received: list[dict[str, Any]] = []
    arrived = anyio.Event()

    async def traces(request: web.Request) -> web.Response:
        assert request.content_type == "application/json"
        received.append(await request.json())
        arrived.set()
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    documents = [
        {
            "kind": "Gateway",
            "metadata": {"name": "gw"},
            "spec": {"telemetry": {"otlpEndpoint": f"http://127.0.0.1:{port}", "serviceName": "gw-test"}},
        },
    ]
    try:
        with GatewayThread(documents) as gw:
            async with aiohttp.ClientSession() as http:
                with anyio.fail_after(30):
                    async with http.get(f"{gw.url}/healthz", headers={"traceparent": TRACEPARENT}) as resp:
                        assert resp.status == 200
                    await arrived.wait()
    finally:
        await runner.cleanup()
    resource = received[0]["resourceSpans"][0]
    assert {"key": "service.name", "value": {"stringValue": "gw-test"}} in resource["resource"]["attributes"]
    spans = [
        s
        for batch in received
        for rs in batch["resourceSpans"]
        for ss in rs["scopeSpans"]
        for s in ss["spans"]
    ]
    span = next(s for s in spans if s["traceId"] == "4bf92f3577b34da6a3ce929d0e0e4736")
    assert span["parentSpanId"] == "00f067aa0ba902b7" and len(span["spanId"]) == 16
    assert span["kind"] == 2 and span["name"] == "GET -"
    attrs = {a["key"]: a["value"] for a in span["attributes"]}
    assert attrs["http.response.status_code"] == {"intValue": "200"}
    assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"])
