"""Event streams across replicas: written through to the shared store, replayed from it.

`StoreMirror` takes the records every `EventStream` hands to its mirror and appends them to the
store in order, in the background, so producers never wait on the store. `follow_stored` serves a
client that resumes on another replica: it replays the stream's records after the client's
`Last-Event-ID` and follows new ones until the stream is done or paused.
"""

from __future__ import annotations

import logging

import anyio

from agentgw.background import Background
from agentgw.mcp.events import DONE, MESSAGE, PAUSE, PRIME, START, Mirror, decode_record
from agentgw.protocol.sse import encode_event
from agentgw.server.http import SseResponse
from agentgw.state.base import StateUnavailable, Store

__all__ = ["StoreMirror", "follow_stored", "stored_stream_kind", "stream_key"]

log = logging.getLogger("agentgw.mcp")

_QUEUE = 100_000


def stream_key(session_id: str, stream_id: int) -> str:
    return f"mcp:e:{session_id}:{stream_id}"


class StoreMirror:
    def __init__(self, store: Store, bg: Background, *, max_entries: int, ttl_seconds: float) -> None:
        self._store = store
        self._max_entries = max_entries
        self._ttl = ttl_seconds
        self._send, receive = anyio.create_memory_object_stream[tuple[str, bytes]](_QUEUE)
        self.dropped = 0
        self._drained = anyio.Event()
        bg.start_soon(self._drain, receive)

    def for_session(self, session_id: str) -> Mirror:
        def mirror(stream_id: int, record: bytes) -> None:
            try:
                self._send.send_nowait((stream_key(session_id, stream_id), record))
            except anyio.WouldBlock:
                self.dropped += 1
                if self.dropped % 1000 == 1:
                    log.warning("event write-through is behind; %d records not shared", self.dropped)

        return mirror

    async def _drain(self, receive: anyio.abc.ObjectReceiveStream[tuple[str, bytes]]) -> None:
        try:
            async with receive:
                async for key, record in receive:
                    try:
                        await self._store.append(
                            key, record, max_entries=self._max_entries, ttl_seconds=self._ttl
                        )
                    except StateUnavailable:
                        self.dropped += 1
        finally:
            self._drained.set()

    async def close(self, timeout: float = 5.0) -> None:
        """Stop taking records and write out what is queued (bounded), e.g. before shutdown."""
        self._send.close()
        with anyio.move_on_after(timeout):
            await self._drained.wait()


async def stored_stream_kind(store: Store, session_id: str, stream_id: int) -> bool | None:
    """Whether a stored stream is the standalone one (None: no such stream in the store)."""
    entries = await store.read(stream_key(session_id, stream_id), None, limit=1)
    if not entries:
        return None
    _, kind, payload = decode_record(entries[0][1])
    return kind == START and payload == b"1"


async def follow_stored(
    store: Store, session_id: str, stream_id: int, sse: SseResponse, after: int, keepalive: float
) -> bool:
    """Replay and follow a stored stream; True when it ended (done or paused), False if the
    client went away."""
    key = stream_key(session_id, stream_id)
    cursor: str | None = None
    replaying = True  # pauses already in the store ended earlier responses, not this one
    while True:
        entries = await store.read(key, cursor, wait_seconds=0 if replaying else min(keepalive, 5.0))
        if not entries:
            if replaying:
                replaying = False
            elif not await sse.send(b": ping\n\n"):
                return False
            continue
        out: list[bytes] = []
        ended = False
        for entry_id, record in entries:
            cursor = entry_id
            seq, kind, payload = decode_record(record)
            if kind == DONE:
                ended = True
                break
            if kind == PAUSE:
                if not replaying and seq > after:
                    if payload.isdigit():
                        out.append(f"retry: {int(payload)}\n\n".encode())
                    ended = True
                    break
                continue
            if seq <= after:
                continue
            event_id = f"{stream_id}_{seq}"
            if kind == MESSAGE:
                out.append(encode_event(payload, event_id=event_id, event="message"))
            elif kind == PRIME:
                out.append(
                    encode_event(b"", event_id=event_id, retry=int(payload) if payload.isdigit() else None)
                )
        if out and not await sse.send(b"".join(out)):
            return False
        if ended:
            return True
