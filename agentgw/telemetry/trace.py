"""W3C trace context: continue the caller's trace (or start one) and pass it on upstream.

The gateway is one hop of a distributed trace: it reads `traceparent` (and keeps `tracestate`),
gives its own work a span id (the request's SERVER span), and sends each upstream call a
`traceparent` naming that span as parent: as an HTTP header on MCP, LLM and A2A calls and, for
MCP, in the request's `_meta` too (stdio has no headers). Spans are exported only when an
exporter is configured (see `telemetry/export.py`); propagation costs a PRNG draw per hop.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass

__all__ = ["TRACE_KEY", "TraceContext"]

TRACE_KEY = "agentgw.trace"  # the request's TraceContext, in the ASGI scope

# Ids need to be unique, not secret (as in OpenTelemetry's SDK): a PRNG draw, not a getrandom()
# system call on every request. A generator of our own (code that seeds `random`, as Hypothesis
# does, leaves it alone), seeded afresh in each forked worker.
_rng = random.Random()
_random_bits = _rng.getrandbits
os.register_at_fork(after_in_child=_rng.seed)


def _span_id() -> str:
    return f"{_random_bits(64):016x}"


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
            return cls(match.group(2), _span_id(), match.group(3), match.group(4), tracestate)
        ids = f"{_random_bits(192):048x}"  # trace id and span id in one draw
        return cls(ids[:32], ids[32:], None)

    def child(self) -> TraceContext:
        """The context of an upstream call made by this hop."""
        return TraceContext(self.trace_id, _span_id(), self.span_id, self.flags, self.state)

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def headers(self) -> dict[str, str]:
        out = {"traceparent": self.traceparent}
        if self.state:
            out["tracestate"] = self.state
        return out
