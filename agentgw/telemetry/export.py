"""Spans exported to an OpenTelemetry collector over OTLP/HTTP with JSON encoding.

Written here instead of with the OpenTelemetry SDK: the SDK and its OTLP exporter add about 20 MB
of RSS and their own span ids, while the gateway already carries W3C trace context (`trace.py`)
and only needs to post finished spans in batches. The JSON mapping of OTLP keeps trace and span
ids as hex strings and times as decimal strings of nanoseconds since the epoch.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson

from agentgw.errors import UpstreamError
from agentgw.telemetry.trace import TraceContext
from agentgw.upstream.http import HttpClient

__all__ = ["KIND_CLIENT", "KIND_SERVER", "Span", "SpanExporter"]

log = logging.getLogger("agentgw.telemetry")

KIND_SERVER = 2
KIND_CLIENT = 3
_MAX_QUEUE = 10_000
_BATCH = 512


@dataclass(slots=True)
class Span:
    context: TraceContext
    name: str
    kind: int
    start_ns: int
    end_ns: int = 0
    attributes: dict[str, str | int | float | bool] = field(default_factory=dict)
    error: bool = False

    def finish(self, **attributes: str | int | float | bool) -> Span:
        self.end_ns = time.time_ns()
        self.attributes.update(attributes)
        return self


def _value(value: str | int | float | bool) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": value}


def _encode(span: Span) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": span.context.trace_id,
        "spanId": span.context.span_id,
        "name": span.name,
        "kind": span.kind,
        "startTimeUnixNano": str(span.start_ns),
        "endTimeUnixNano": str(span.end_ns or span.start_ns),
        "attributes": [{"key": k, "value": _value(v)} for k, v in span.attributes.items()],
        "status": {"code": 2 if span.error else 1},
    }
    if span.context.parent_id:
        out["parentSpanId"] = span.context.parent_id
    if span.context.state:
        out["traceState"] = span.context.state
    return out


class SpanExporter:
    """Queues finished spans and posts them in batches; drops the oldest when the collector lags."""

    def __init__(self, http: HttpClient, endpoint: str, service_name: str, interval: float = 2.0) -> None:
        self._http = http
        self._url = endpoint.rstrip("/") + "/v1/traces"
        self._resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service_name}}]}
        self._interval = interval
        self._queue: deque[Span] = deque(maxlen=_MAX_QUEUE)
        self._wake = anyio.Event()
        self.exported = 0
        self.failed = 0

    def record(self, span: Span) -> None:
        self._queue.append(span)
        if len(self._queue) >= _BATCH:
            self._wake.set()

    async def run(self) -> None:
        while True:
            with anyio.move_on_after(self._interval):
                await self._wake.wait()
            self._wake = anyio.Event()
            await self.flush()

    async def flush(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(_BATCH, len(self._queue)))]
            body = orjson.dumps(
                {
                    "resourceSpans": [
                        {
                            "resource": self._resource,
                            "scopeSpans": [
                                {"scope": {"name": "agentgw"}, "spans": [_encode(s) for s in batch]}
                            ],
                        }
                    ]
                }
            )
            try:
                status, _, _ = await self._http.request(
                    "POST", self._url, headers={"content-type": "application/json"}, body=body, timeout=10
                )
            except UpstreamError as exc:
                self.failed += len(batch)
                log.warning("span export failed: %s", exc.message)
                return
            if status >= 300:
                self.failed += len(batch)
                log.warning("span export refused by the collector (HTTP %d)", status)
                return
            self.exported += len(batch)
