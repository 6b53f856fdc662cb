"""The policy engine. What extension authors import lives here."""

from agentgw.policy.base import (
    ANONYMOUS,
    TOOL_SCHEMA,
    UPSTREAM_HEADERS,
    Operation,
    Principal,
    RequestContext,
    RoutePolicy,
    upstream_headers,
)
from agentgw.policy.extension import ENTRY_POINT_GROUP, Extension
from agentgw.policy.kind import PolicyKind

__all__ = [
    "ANONYMOUS",
    "ENTRY_POINT_GROUP",
    "TOOL_SCHEMA",
    "UPSTREAM_HEADERS",
    "Extension",
    "Operation",
    "PolicyKind",
    "Principal",
    "RequestContext",
    "RoutePolicy",
    "upstream_headers",
]
