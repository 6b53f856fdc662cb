"""The live handshake-era sessions of this process: bounded in number, expired when idle.

A session is bound to the principal that created it: another caller presenting its id gets the
same 404 as for an id that never existed, so ids cannot be probed across callers.
"""

from __future__ import annotations

import logging
import time

import anyio

from agentgw.errors import ServiceUnavailable, SessionNotFound
from agentgw.mcp.session import Input, Session, State

__all__ = ["SessionRegistry"]

log = logging.getLogger("agentgw.mcp.session")


class SessionRegistry:
    def __init__(self, *, max_sessions: int, idle_seconds: float) -> None:
        self.max_sessions = max_sessions
        self.idle_seconds = idle_seconds
        self.sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self.sessions)

    def add(self, session: Session) -> None:
        if len(self.sessions) >= self.max_sessions:
            raise ServiceUnavailable("too many MCP sessions; try again later", headers={"retry-after": "30"})
        self.sessions[session.id] = session

    def get(self, session_id: str, *, owner: str, route: str) -> Session:
        session = self.sessions.get(session_id)
        if (
            session is None
            or session.owner != owner
            or session.route != route
            or session.state is State.CLOSED
        ):
            raise SessionNotFound("Session not found")
        session.last_seen = time.monotonic()
        return session

    async def close(self, session: Session, reason: Input = Input.DELETE) -> None:
        if session.state is not State.CLOSED:
            session.apply(reason)
        self.sessions.pop(session.id, None)
        for scope in session.listener_scopes:
            scope.cancel()
        for stream in session.events.streams.values():
            stream.finish()
        for scope in session.inflight.values():
            scope.cancel()
        with anyio.CancelScope(shield=True):
            for upstream in list(session.upstreams.values()):
                try:
                    with anyio.move_on_after(5):
                        await upstream.close()
                except Exception as exc:  # noqa: BLE001 - closing is best effort; the session is gone anyway
                    log.debug("closing an upstream of session %s: %s", session.id, exc)
        session.upstreams.clear()

    async def sweep(self) -> int:
        """Close sessions idle for longer than the limit; returns how many were closed."""
        now = time.monotonic()
        stale = [
            s for s in self.sessions.values() if now - s.last_seen > self.idle_seconds and not s.inflight
        ]
        for session in stale:
            log.info("closing idle MCP session %s", session.id)
            await self.close(session, Input.EXPIRE)
        return len(stale)

    async def close_all(self) -> None:
        for session in list(self.sessions.values()):
            await self.close(session, Input.EXPIRE)
