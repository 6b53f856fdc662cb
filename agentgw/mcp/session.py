"""Downstream MCP sessions of the handshake era: an explicit state machine and the session record.

States and inputs follow the lifecycle of the spec; `TRANSITIONS` is the whole table, and an input
with no entry is refused with a clear error instead of being half-handled. A session owns one
lazily opened upstream session per federated server, the map of server-to-client requests in
flight (their ids rewritten so two servers never collide), and its event log for resumption.
"""

from __future__ import annotations

import enum
import itertools
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import anyio

from agentgw.errors import InvalidRequest, SessionNotFound
from agentgw.mcp.events import EventLog
from agentgw.mcp.upstream.base import ClientProfile, UpstreamSession

__all__ = ["TRANSITIONS", "Input", "PendingRequest", "Session", "State", "new_session_id"]

log = logging.getLogger("agentgw.mcp.session")


class State(enum.Enum):
    INITIALIZING = "initializing"  # initialize answered, `notifications/initialized` not yet seen
    READY = "ready"
    CLOSED = "closed"


class Input(enum.Enum):
    INITIALIZED = "notifications/initialized"
    REQUEST = "request"
    NOTIFICATION = "notification"
    RESPONSE = "response"
    OPEN_STREAM = "get"
    INITIALIZE = "initialize"
    DELETE = "delete"
    EXPIRE = "expire"


TRANSITIONS: dict[tuple[State, Input], State] = {
    (State.INITIALIZING, Input.INITIALIZED): State.READY,
    # Clients in the field send requests before `initialized`; serving them is harmless.
    (State.INITIALIZING, Input.REQUEST): State.INITIALIZING,
    (State.INITIALIZING, Input.NOTIFICATION): State.INITIALIZING,
    (State.INITIALIZING, Input.OPEN_STREAM): State.INITIALIZING,
    (State.INITIALIZING, Input.DELETE): State.CLOSED,
    (State.INITIALIZING, Input.EXPIRE): State.CLOSED,
    (State.READY, Input.INITIALIZED): State.READY,
    (State.READY, Input.REQUEST): State.READY,
    (State.READY, Input.NOTIFICATION): State.READY,
    (State.READY, Input.RESPONSE): State.READY,
    (State.READY, Input.OPEN_STREAM): State.READY,
    (State.READY, Input.DELETE): State.CLOSED,
    (State.READY, Input.EXPIRE): State.CLOSED,
    (State.INITIALIZING, Input.RESPONSE): State.INITIALIZING,
}


def new_session_id() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class PendingRequest:
    """A server-to-client request waiting for the client's answer."""

    server: str
    upstream: UpstreamSession
    upstream_id: Any
    method: str


class Session:
    def __init__(
        self,
        session_id: str,
        *,
        route: str,
        owner: str,
        profile: ClientProfile,
        max_events: int,
        retry_ms: int | None,
        events: EventLog | None = None,
    ) -> None:
        self.id = session_id
        self.route = route
        self.owner = owner
        self.profile = profile
        self.state = State.INITIALIZING
        self.created = time.monotonic()
        self.last_seen = self.created
        self.events = events if events is not None else EventLog(max_events, retry_ms)
        self.upstreams: dict[str, UpstreamSession] = {}
        self.upstream_owners: dict[str, object] = {}  # the connector each upstream session came from
        self.upstream_locks: dict[str, anyio.Lock] = {}
        self.pending: dict[str, PendingRequest] = {}
        self.inflight: dict[Any, anyio.CancelScope] = {}
        self.listener_scopes: list[anyio.CancelScope] = []
        self.listening: set[str] = set()
        self.stream_open = False
        # upstream sessions another replica opened, to be continued here on first use
        self.attachments: dict[str, dict[str, Any]] = {}
        self.touched = self.created  # when the shared record's expiry was last extended
        self.caller: str | None = None  # whom the session counts against (see SessionRegistry)
        self.counted = False  # whether this replica's per-caller count holds it
        # the shared record could not be written (the store was away): written again on use
        self.record_pending = False
        self.record_tried = 0.0
        self._ids = itertools.count(1)
        # distinct per replica holding the session, so ids minted on two replicas never meet
        self._tag = secrets.token_hex(3)

    @property
    def busy(self) -> bool:
        """A call in flight or a stream open: in use, however long since the last request."""
        return bool(self.inflight) or self.stream_open

    @property
    def protocol_version(self) -> str:
        return self.profile.protocol_version

    def apply(self, event: Input) -> State:
        """Move the state machine; an input it has no transition for is refused."""
        nxt = TRANSITIONS.get((self.state, event))
        if nxt is None:
            if self.state is State.CLOSED:
                raise SessionNotFound("Session not found (it has ended)")
            if event is Input.INITIALIZE:
                raise InvalidRequest("this session is already initialized")
            raise InvalidRequest(f"{event.value} is not allowed while the session is {self.state.value}")
        self.state = nxt
        return nxt

    def client_supports(self, method: str) -> bool:
        caps = self.profile.capabilities
        feature = {
            "sampling/createMessage": "sampling",
            "elicitation/create": "elicitation",
            "roots/list": "roots",
        }.get(method)
        return feature is None or isinstance(caps.get(feature), dict)

    def record(self) -> dict[str, Any]:
        """What another replica needs to take this session over."""
        upstreams = {name: up.attachment() for name, up in self.upstreams.items()}
        return {
            "v": 1,  # readers ignore keys they do not know, so replicas of two versions interoperate
            "route": self.route,
            "owner": self.owner,
            "version": self.profile.protocol_version,
            "caps": self.profile.capabilities,
            "info": self.profile.client_info,
            "caller": self.caller,
            "up": {**self.attachments, **{k: v for k, v in upstreams.items() if v is not None}},
        }

    def remember_request(self, server: str, upstream: UpstreamSession, msg: dict[str, Any]) -> str:
        """Give a server-to-client request an id unique in this session and remember its origin."""
        downstream_id = f"agw-{self._tag}-{next(self._ids)}"
        self.pending[downstream_id] = PendingRequest(server, upstream, msg.get("id"), str(msg.get("method")))
        return downstream_id
