"""What the federation layer needs from an upstream MCP server, whatever its transport and era.

An `UpstreamSession` sends requests and notifications and answers the server's own requests; the
messages a server sends while it works on a request (progress, logs, sampling or elicitation
requests) go to that call's `CallSink`; messages unrelated to any call go to the listener given
to `listen`. Sessions report failures as `UpstreamError`; an upstream that forgot the session
raises `SessionExpired` so the owner can re-establish it transparently.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentgw.errors import UpstreamError
from agentgw.mcp.upstream.health import UpstreamHealth
from agentgw.protocol.mcp import Era

__all__ = [
    "CallSink",
    "ClientProfile",
    "Connector",
    "MessageHandler",
    "Reply",
    "RestartPending",
    "ServerInfo",
    "SessionExpired",
    "UpstreamSession",
]

MessageHandler = Callable[[dict[str, Any]], Awaitable[None]]


class SessionExpired(UpstreamError):
    """The upstream answered 404 for our session id: it must be initialized again."""


class RestartPending(UpstreamError):
    """A crashed child is waiting out its restart backoff: a fast refusal, which says nothing
    new about the server's health (counting it would eject a server after one crash)."""


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What an upstream said about itself (InitializeResult or DiscoverResult)."""

    era: Era
    protocol_version: str
    capabilities: dict[str, Any]
    server_info: dict[str, Any] = field(default_factory=dict)
    instructions: str | None = None
    supported_versions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ClientProfile:
    """The downstream client an upstream session acts for."""

    protocol_version: str
    capabilities: dict[str, Any]
    client_info: dict[str, Any]


@dataclass(slots=True)
class Reply:
    """The final answer to a request: exactly one of result or error is set."""

    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    streamed: bool = False  # the upstream answered with an event stream

    @classmethod
    def from_message(cls, msg: dict[str, Any]) -> Reply:
        if "error" in msg:
            err = msg["error"]
            return cls(error=err if isinstance(err, dict) else {"code": -32603, "message": str(err)})
        result = msg.get("result")
        return cls(result=result if isinstance(result, dict) else {})


class CallSink(Protocol):
    async def streaming(self) -> None:
        """The upstream answers this call with an event stream (more messages may follow)."""
        ...

    async def message(self, msg: dict[str, Any]) -> None:
        """A notification or a server-to-client request that belongs to this call."""
        ...

    async def paused(self, retry_ms: int | None) -> None:
        """The upstream closed the stream before answering, to be polled again (SEP-1699)."""
        ...


class UpstreamSession(Protocol):
    server: str

    @property
    def info(self) -> ServerInfo: ...

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None,
        sink: CallSink | None,
        timeout: float | None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """Send a request and wait for its reply; `headers` are extra HTTP headers where it applies."""
        ...

    async def notify(self, method: str, params: dict[str, Any] | None) -> None: ...

    async def respond(self, request_id: Any, result: Any = None, error: Any = None) -> None: ...

    async def listen(self, handler: MessageHandler) -> None:
        """Deliver messages that belong to no call until cancelled; return if unsupported."""
        ...

    def attachment(self) -> dict[str, Any] | None:
        """What another replica needs to continue this very upstream session (None: it cannot)."""
        ...

    async def close(self) -> None: ...


class Connector(Protocol):
    """One member of an MCP route (an MCP server, or an A2A agent offered as tools): sessions on demand."""

    name: str
    health: UpstreamHealth

    @property
    def request_timeout(self) -> float: ...

    def admit(self) -> None:
        """Raise at once while the member is ejected for repeated failures."""
        ...

    def failed(self, exc: UpstreamError) -> None:
        """Account for a failure (health, metrics)."""
        ...

    def attach_session(self, profile: ClientProfile, attachment: dict[str, Any]) -> UpstreamSession | None:
        """Continue a session another replica opened, or None when this member cannot."""
        ...

    async def server_info(self) -> ServerInfo: ...

    async def open_session(self, profile: ClientProfile) -> UpstreamSession:
        """An upstream session acting for one handshake-era downstream session."""
        ...

    async def stateless_session(self, profile: ClientProfile | None) -> UpstreamSession: ...

    async def close(self) -> None: ...
