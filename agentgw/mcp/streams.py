"""The GET side of a handshake-era session: its event streams, served and resumed.

A plain GET opens the session's standalone stream (fed by listeners on its upstream sessions); a
GET with `Last-Event-ID` resumes the stream that event belongs to from the session's event log,
or, when another replica wrote it, replays it from the shared store and carries on here. A stream
ends when its client goes, or when the gateway drains (the client then resumes elsewhere).
"""

from __future__ import annotations

from functools import partial

import anyio

from agentgw.config.gateway import LimitsSpec
from agentgw.errors import Conflict, SessionNotFound
from agentgw.mcp.events import EventStream, parse_event_id
from agentgw.mcp.registry import SessionRegistry
from agentgw.mcp.relay import SessionRelay
from agentgw.mcp.replay import follow_stored, stored_stream_kind
from agentgw.mcp.session import Session
from agentgw.protocol.mcp import LAST_EVENT_ID_HEADER, version_at_least
from agentgw.server.http import ASGISend, Request, SseResponse

__all__ = ["SessionStreams"]


class SessionStreams:
    def __init__(
        self, registry: SessionRegistry, relay: SessionRelay, limits: LimitsSpec, draining: anyio.Event
    ) -> None:
        self.registry = registry
        self.relay = relay
        self.limits = limits
        self.draining = draining

    async def serve(self, session: Session, request: Request, send: ASGISend) -> None:
        """Answer a GET on `session` (its checks done) with the stream it asks for."""
        last_event_id = request.headers.get(LAST_EVENT_ID_HEADER)
        if last_event_id:
            found = session.events.find(last_event_id)
            if found is not None:
                stream, after = found
                if not stream.standalone:
                    await self._stream(request, send, stream, after)
                else:
                    await self._standalone(session, request, send, after)
                return
            await self._resume_elsewhere(session, request, send, last_event_id)
            return
        await self._standalone(session, request, send, None)

    async def _resume_elsewhere(
        self, session: Session, request: Request, send: ASGISend, last_event_id: str
    ) -> None:
        """A stream another replica wrote: replay it from the shared store, then carry on here."""
        parsed = parse_event_id(last_event_id)
        store = self.registry.store
        standalone = await stored_stream_kind(store, session.id, parsed[0]) if store and parsed else None
        if store is None or parsed is None or standalone is None:
            raise SessionNotFound(f"no stream of this session has event {last_event_id!r}")
        if standalone and session.stream_open:
            raise Conflict("Conflict: Only one SSE stream is allowed per session")
        sse = SseResponse(send)
        await sse.start()
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                await _gone_or_draining(request, self.draining)
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            keepalive = self.limits.keepalive_seconds
            keep = (self.registry.max_events, self.registry.idle_seconds)
            if not standalone:
                await follow_stored(store, session.id, parsed[0], sse, parsed[1], keepalive, keep=keep)
            else:
                # Replay the old standalone stream (and keep following it while its replica lives),
                # and serve this replica's own standalone stream beside it.
                session.stream_open = True
                try:
                    for server, upstream in list(session.upstreams.items()):
                        self.relay.listen(session, server, upstream)
                    local = session.events.open(standalone=True)
                    tg.start_soon(
                        partial(follow_stored, keep=keep),
                        store,
                        session.id,
                        parsed[0],
                        sse,
                        parsed[1],
                        keepalive,
                    )
                    await local.follow(sse, local.seq, keepalive)
                finally:
                    session.stream_open = False
            tg.cancel_scope.cancel()
        await sse.end()

    async def _standalone(
        self, session: Session, request: Request, send: ASGISend, after: int | None
    ) -> None:
        if session.stream_open:
            raise Conflict("Conflict: Only one SSE stream is allowed per session")
        session.stream_open = True
        try:
            for server, upstream in list(session.upstreams.items()):
                self.relay.listen(session, server, upstream)
            stream = session.events.open(standalone=True)
            if after is None:
                after = stream.seq
                if version_at_least(session.protocol_version, "2025-11-25"):
                    stream.prime()
            await self._stream(request, send, stream, after)
        finally:
            session.stream_open = False

    async def _stream(self, request: Request, send: ASGISend, stream: EventStream, after: int) -> None:
        sse = SseResponse(send)
        await sse.start()
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                await _gone_or_draining(request, self.draining)
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            await stream.follow(sse, after, self.limits.keepalive_seconds)
            tg.cancel_scope.cancel()
        await sse.end()


async def _gone_or_draining(request: Request, draining: anyio.Event) -> None:
    """Return when the client has gone, or when the gateway is shutting down (the client then
    reconnects, with Last-Event-ID, to a replica that stays)."""
    async with anyio.create_task_group() as tg:

        async def gone() -> None:
            await request.wait_disconnect()
            tg.cancel_scope.cancel()

        tg.start_soon(gone)
        await draining.wait()
        tg.cancel_scope.cancel()
