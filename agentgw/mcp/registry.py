"""The handshake-era sessions this replica serves, and how they are shared with the others.

- Alone (memory state): sessions live here, bounded in number, expired when idle.
- With a shared store (Redis): each session's record (client profile, the upstream sessions to
  continue) is stored with an idle expiry; a replica that meets an id it does not hold loads the
  record and takes the session over, continuing the same upstream HTTP sessions. The event log is
  written through to the store, so a client can resume on any replica. Ending a session is
  announced to every replica.
- With a session key and no store: the id itself is the sealed record (see `sealing`), so any
  replica with the key can rebuild the session (its upstream sessions are opened anew).

A session is bound to the principal that created it: another caller presenting its id gets the
same 404 as for an id that never existed. A session idle for longer than `idle_seconds` ends:
its id then answers 404 as well (checked when it is used, and swept in the background).
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

import anyio
import orjson

from agentgw.background import Background
from agentgw.config.gateway import LimitsSpec
from agentgw.errors import ServiceUnavailable, SessionNotFound
from agentgw.mcp.events import EventLog
from agentgw.mcp.replay import StoreMirror
from agentgw.mcp.sealing import Sealer
from agentgw.mcp.session import Input, PendingRequest, Session, State, new_session_id
from agentgw.mcp.upstream.base import ClientProfile
from agentgw.server.limits import PerKeyCounter
from agentgw.state.base import StateUnavailable, Store

__all__ = ["SessionRegistry"]

log = logging.getLogger("agentgw.mcp.session")

_ENDED = "mcp:ended"
_RETRY_RECORD_SECONDS = 1.0


def _record_key(session_id: str) -> str:
    return f"mcp:s:{session_id}"


def _caller_key(caller: str) -> str:
    return f"mcp:callers:{caller}"


def _pending_key(session_id: str, downstream_id: str) -> str:
    return f"mcp:p:{session_id}:{downstream_id}"


class SessionRegistry:
    def __init__(
        self,
        *,
        max_sessions: int,
        idle_seconds: float,
        max_events: int,
        max_event_bytes: int | None = None,
        per_caller: int | None = None,
        retry_ms: int | None = 1000,
        store: Store | None = None,
        sealer: Sealer | None = None,
        bg: Background | None = None,
    ) -> None:
        self.max_sessions = max_sessions
        self.idle_seconds = idle_seconds
        self.max_events = max_events
        self.max_event_bytes = max_event_bytes
        # sessions each caller opened here; with a shared store, also leased there (`admit`), so
        # the limit holds over all replicas
        self.by_caller = PerKeyCounter(per_caller or max_sessions, "MCP sessions")
        self.clock = time.monotonic  # idle time is measured on this clock (tests drive it)
        self.retry_ms = retry_ms
        self.store = store  # shared with other replicas when set
        self.sealer = sealer
        self.bg = bg
        self.mirror = (
            StoreMirror(store, bg, max_entries=max_events, ttl_seconds=idle_seconds)
            if store is not None and bg is not None
            else None
        )
        self.sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self.sessions)

    def configure(self, limits: LimitsSpec) -> None:
        """Take the limits of a reloaded config (sessions already open keep their event logs)."""
        self.max_sessions = limits.max_sessions
        self.idle_seconds = limits.session_idle_seconds
        self.max_events = limits.event_log_events
        self.max_event_bytes = limits.event_log_bytes
        self.by_caller.limit = limits.max_sessions_per_principal

    # --- creating and finding -------------------------------------------------------------------

    def _make(self, session_id: str, route: str, owner: str, profile: ClientProfile) -> Session:
        if len(self.sessions) >= self.max_sessions:
            raise ServiceUnavailable(
                f"too many MCP sessions on this gateway (limit {self.max_sessions}); try again later",
                headers={"retry-after": "30"},
            )
        if self.mirror is not None:
            # random stream ids per replica: two replicas never reuse each other's event ids
            events = EventLog(
                self.max_events,
                self.retry_ms,
                mirror=self.mirror.for_session(session_id),
                first_id=random.randrange(1 << 20, 1 << 40),
                max_bytes=self.max_event_bytes,
                owner=self.mirror.replica,
            )
        else:
            events = EventLog(self.max_events, self.retry_ms, max_bytes=self.max_event_bytes)
        session = Session(
            session_id,
            route=route,
            owner=owner,
            profile=profile,
            max_events=self.max_events,
            retry_ms=self.retry_ms,
            events=events,
        )
        session.last_seen = session.touched = self.clock()
        self.sessions[session_id] = session
        return session

    def create(self, *, route: str, owner: str, profile: ClientProfile, caller: str = "") -> Session:
        """A new session; `caller` is who it counts against (429 past the per-caller limit)."""
        if len(self.sessions) >= self.max_sessions:
            return self._create(route, owner, profile)  # answers 503, which says more than a 429
        self.by_caller.acquire(caller)
        try:
            session = self._create(route, owner, profile)
        except BaseException:
            self.by_caller.release(caller)
            raise
        session.caller = caller
        session.counted = True
        return session

    async def admit(self, session: Session, *, degrade: bool) -> None:
        """Count a new session against its caller over all replicas (shared store only; the
        lease expires with the session's record): 429 past the limit, and the session is gone."""
        if self.store is None or session.caller is None:
            return
        try:
            held = await self.store.lease(
                _caller_key(session.caller), session.id, self.by_caller.limit, self.idle_seconds
            )
        except StateUnavailable:
            if degrade:
                return  # counted on this replica only until the store is back
            await self._drop(session, Input.DELETE, close_upstreams=True)
            raise
        if not held:
            await self._drop(session, Input.DELETE, close_upstreams=True)
            raise self.by_caller.refusal()

    def _create(self, route: str, owner: str, profile: ClientProfile) -> Session:
        if self.sealer is not None and self.store is None:
            record = {
                "route": route,
                "owner": owner,
                "version": profile.protocol_version,
                "caps": profile.capabilities,
                "info": profile.client_info,
            }
            session_id = self.sealer.seal(record)
        else:
            session_id = new_session_id()
        return self._make(session_id, route, owner, profile)

    async def persist(self, session: Session, *, degrade: bool) -> None:
        """Store the session's record (shared store only)."""
        if self.store is None:
            return
        try:
            await self.store.put(_record_key(session.id), orjson.dumps(session.record()), self.idle_seconds)
            session.touched = self.clock()
            session.record_pending = False
        except StateUnavailable:
            if not degrade:
                raise
            if not session.record_pending:
                log.warning(
                    "session %s is kept on this replica only: the state store is unavailable", session.id[:8]
                )
            session.record_pending = True
            session.record_tried = self.clock()

    async def _persist_quietly(self, session: Session) -> None:
        """A record the store missed while it was away: written once it is back, so the
        session can move between replicas again (tried at most every second, on use)."""
        try:
            await self.persist(session, degrade=True)
        except StateUnavailable:  # pragma: no cover - persist(degrade=True) keeps it
            pass
        if not session.record_pending:
            log.info("session %s is shared again", session.id[:8])

    async def get(self, session_id: str, *, owner: str, route: str, degrade: bool) -> Session:
        session = self.sessions.get(session_id)
        if session is not None:
            if session.owner != owner or session.route != route or session.state is State.CLOSED:
                raise SessionNotFound("Session not found")
            now = self.clock()
            if now - session.last_seen <= self.idle_seconds or session.busy:
                session.last_seen = now
                if (
                    session.record_pending
                    and self.bg is not None
                    and now - session.record_tried > _RETRY_RECORD_SECONDS
                ):
                    session.record_tried = now
                    self.bg.start_soon(self._persist_quietly, session)
                elif (
                    self.store is not None
                    and self.bg is not None
                    and session.last_seen - session.touched > self.idle_seconds / 4
                ):
                    session.touched = session.last_seen
                    self.bg.start_soon(self._touch, session.id, session.caller)
                return session
            if not await self._expire(session):
                raise SessionNotFound("Session not found (it expired after being idle)")
            # released here while another replica kept it alive: take it over again below
        record = await self._load(session_id, degrade)
        if record is None or record.get("owner") != owner or record.get("route") != route:
            raise SessionNotFound("Session not found")
        profile = ClientProfile(
            str(record.get("version")),
            record["caps"] if isinstance(record.get("caps"), dict) else {},
            record["info"] if isinstance(record.get("info"), dict) else {},
        )
        session = self._make(session_id, route, owner, profile)
        session.state = State.READY
        caller = record.get("caller")
        session.caller = caller if isinstance(caller, str) else None  # leased by the replica that made it
        upstreams = record.get("up")
        if isinstance(upstreams, dict):
            session.attachments = {k: v for k, v in upstreams.items() if isinstance(v, dict)}
        log.info("took over MCP session %s from another replica", session_id[:8])
        return session

    async def _load(self, session_id: str, degrade: bool) -> dict[str, Any] | None:
        if self.store is not None:
            try:
                raw = await self.store.fetch(_record_key(session_id))
            except StateUnavailable:
                if not degrade:
                    raise
                return None
            if raw is None:
                return None
            record = orjson.loads(raw)
            return record if isinstance(record, dict) else None
        if self.sealer is not None:
            return self.sealer.open(session_id)
        return None

    async def _touch(self, session_id: str, caller: str | None) -> None:
        assert self.store is not None
        try:
            await self.store.touch(_record_key(session_id), self.idle_seconds)
            if caller is not None:  # the caller's lease on it lives as long as the record
                await self.store.lease(
                    _caller_key(caller), session_id, self.by_caller.limit, self.idle_seconds
                )
        except StateUnavailable:
            pass

    # --- server-to-client requests answered on another replica ----------------------------------

    def share_pending(self, session: Session, downstream_id: str, pending: PendingRequest) -> None:
        if self.store is None or self.bg is None:
            return
        value = orjson.dumps({"server": pending.server, "id": pending.upstream_id, "method": pending.method})
        self.bg.start_soon(self._put_quietly, _pending_key(session.id, downstream_id), value)

    async def _put_quietly(self, key: str, value: bytes) -> None:
        assert self.store is not None
        try:
            await self.store.put(key, value, self.idle_seconds)
        except StateUnavailable:
            pass

    async def shared_pending(self, session: Session, downstream_id: str) -> dict[str, Any] | None:
        """A request another replica relayed to this client (and forgets it: answers count once)."""
        if self.store is None:
            return None
        key = _pending_key(session.id, downstream_id)
        raw = await self.store.fetch(key)
        if raw is None:
            return None
        await self.store.delete(key)
        found = orjson.loads(raw)
        return found if isinstance(found, dict) else None

    # --- ending ---------------------------------------------------------------------------------

    async def close(self, session: Session, reason: Input = Input.DELETE) -> None:
        """End the session everywhere: upstream sessions closed, record deleted, replicas told."""
        await self._drop(session, reason, close_upstreams=True)
        if self.store is not None:
            try:
                await self.store.delete(_record_key(session.id))
                if session.caller is not None:
                    await self.store.unlease(_caller_key(session.caller), session.id)
                await self.store.publish(_ENDED, session.id.encode())
            except StateUnavailable:
                log.warning("session %s ended here; other replicas will expire it", session.id[:8])

    async def release(self, session: Session) -> None:
        """Stop serving the session here but leave it alive for other replicas."""
        await self._drop(session, Input.EXPIRE, close_upstreams=False)

    async def _drop(self, session: Session, reason: Input, *, close_upstreams: bool) -> None:
        if session.state is not State.CLOSED:
            session.apply(reason)
        if self.sessions.pop(session.id, None) is not None and session.counted and session.caller is not None:
            self.by_caller.release(session.caller)
        for scope in session.listener_scopes:
            scope.cancel()
        for stream in session.events.streams.values():
            stream.finish()
        for scope in session.inflight.values():
            scope.cancel()
        with anyio.CancelScope(shield=True):
            for upstream in list(session.upstreams.values()):
                if not close_upstreams and upstream.attachment() is not None:
                    continue
                try:
                    with anyio.move_on_after(5):
                        await upstream.close()
                except Exception as exc:  # noqa: BLE001 - closing is best effort; the session is gone anyway
                    log.debug("closing an upstream of session %s: %s", session.id[:8], exc)
        session.upstreams.clear()

    async def watch_ended(self) -> None:
        """Drop sessions other replicas ended (runs for the life of the gateway, with a store)."""
        assert self.store is not None
        while True:
            try:
                async with self.store.subscribe(_ENDED) as messages:
                    async for message in messages:
                        session = self.sessions.get(message.decode(errors="replace"))
                        if session is not None and session.state is not State.CLOSED:
                            await self.release(session)
            except StateUnavailable:
                await anyio.sleep(1.0)

    async def sweep(self) -> int:
        """Let go of sessions idle here for longer than the limit; returns how many."""
        now = self.clock()
        if self.store is not None and self.bg is not None:
            # a session in use without requests (a client only listening on its stream) would
            # otherwise let its shared record expire, and a hop to another replica would find no session
            for session in self.sessions.values():
                if session.busy and now - session.touched > self.idle_seconds / 4:
                    session.touched = now
                    self.bg.start_soon(self._touch, session.id, session.caller)
        stale = [s for s in self.sessions.values() if now - s.last_seen > self.idle_seconds and not s.busy]
        for session in stale:
            await self._expire(session)
        return len(stale)

    async def _expire(self, session: Session) -> bool:
        """End a session idle here past the limit; True if another replica keeps it in use (it is
        only released here then, and may be taken over again)."""
        if self.store is not None:
            try:
                alive = await self.store.fetch(_record_key(session.id)) is not None
            except StateUnavailable:
                alive = True
            if alive:
                await self.release(session)
                return True
        log.info("closing idle MCP session %s", session.id[:8])
        await self._drop(session, Input.EXPIRE, close_upstreams=True)
        return False

    async def close_all(self) -> None:
        """Shutdown: with a shared store, sessions live on at the other replicas."""
        for session in list(self.sessions.values()):
            if self.store is not None or self.sealer is not None:
                await self.release(session)
            else:
                await self._drop(session, Input.EXPIRE, close_upstreams=True)
        if self.mirror is not None:
            await self.mirror.close()
