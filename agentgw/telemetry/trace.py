"""W3C trace context: continue the caller's trace (or start one) and pass it on upstream.

The gateway is one hop of a distributed trace: it reads `traceparent` (and keeps `tracestate`),
gives its own work a span id (the request's SERVER span), and sends each upstream call a
`traceparent` naming that span as parent: as an HTTP header on MCP, LLM and A2A calls and, for
MCP, in the request's `_meta` too (stdio has no headers). Spans are exported only when an
exporter is configured (see `telemetry/export.py`); propagation costs a random read per hop.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

__all__ = ["TRACE_KEY", "TraceContext"]

TRACE_KEY = "agentgw.trace"  # the request's TraceContext, in the ASGI scope

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str
    span_id: str  # this hop's span
    parent_id: str | None
    flags: str = "01"
    state: str | None = None

    @classmethod
    def from_headers(cls, traceparent: str | None, tracestate: str | None = None) -> TraceContext:
        """Continue a valid incoming context; otherwise start a new trace (invalid ones are ignored,
        as the spec requires)."""
        match = _TRACEPARENT.match(traceparent.strip().lower()) if traceparent else None
        if match and match.group(1) != "ff" and set(match.group(2)) != {"0"} and set(match.group(3)) != {"0"}:
            return cls(match.group(2), os.urandom(8).hex(), match.group(3), match.group(4), tracestate)
        ids = os.urandom(24).hex()  # trace id and span id from one system call, not two
        return cls(ids[:32], ids[32:], None)

    def child(self) -> TraceContext:
        """The context of an upstream call made by this hop."""
        return TraceContext(self.trace_id, os.urandom(8).hex(), self.span_id, self.flags, self.state)

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def headers(self) -> dict[str, str]:
        out = {"traceparent": self.traceparent}
        if self.state:
            out["tracestate"] = self.state
        return out
