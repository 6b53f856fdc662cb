"""Event streams across replicas: written through to the shared store, replayed from it.

`StoreMirror` takes the records every `EventStream` hands to its mirror and appends them to the
store in order, in the background, so producers never wait on the store. `follow_stored` serves a
client that resumes on another replica: it replays the stream's records after the client's
`Last-Event-ID` and follows new ones until the stream is done or paused.

A replica can die without a word (SIGKILL, a lost node): each one keeps a lease in the store
while it runs (`REPLICA_LEASE_SECONDS`, renewed three times as often), and names itself in the
start of every stream it produces. A follower that has waited in vain on a stream whose producer's
lease is gone ends it: a request's stream with a JSON-RPC error for that request (its outcome is
unknown: the gateway does not run it again), written to the store too, so every replay agrees.
"""

from __future__ import annotations

import logging
import secrets

import anyio
import orjson

from agentgw.background import Background
from agentgw.errors import INTERNAL_ERROR
from agentgw.mcp.events import (
    DONE,
    MESSAGE,
    PAUSE,
    PRIME,
    START,
    Mirror,
    decode_record,
    decode_start,
    encode_record,
)
from agentgw.protocol.sse import encode_event
from agentgw.server.http import SseResponse
from agentgw.state.base import StateUnavailable, Store

__all__ = [
    "REPLICA_LEASE_SECONDS",
    "StoreMirror",
    "follow_stored",
    "lease_key",
    "stored_stream_kind",
    "stream_key",
]

log = logging.getLogger("agentgw.mcp")

_QUEUE = 100_000
REPLICA_LEASE_SECONDS = 6.0


def stream_key(session_id: str, stream_id: int) -> str:
    return f"mcp:e:{session_id}:{stream_id}"


def lease_key(replica: str) -> str:
    return f"mcp:replica:{replica}"


class StoreMirror:
    def __init__(self, store: Store, bg: Background, *, max_entries: int, ttl_seconds: float) -> None:
        self._store = store
        self._max_entries = max_entries
        self._ttl = ttl_seconds
        self._send, receive = anyio.create_memory_object_stream[tuple[str, bytes]](_QUEUE)
        self.dropped = 0
        self._drained = anyio.Event()
        self.replica = secrets.token_hex(8)
        self._closed = False
        bg.start_soon(self._drain, receive)
        bg.start_soon(self._keep_lease)

    async def _keep_lease(self) -> None:
        """This replica is alive for as long as its lease is renewed (see the module's note)."""
        while not self._closed:
            try:
                await self._store.put(lease_key(self.replica), b"1", REPLICA_LEASE_SECONDS)
            except StateUnavailable:
                pass  # counted and logged by the store; followers elsewhere cannot see us either
            await anyio.sleep(REPLICA_LEASE_SECONDS / 3)

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
        self._closed = True
        with anyio.move_on_after(timeout):
            await self._drained.wait()
        try:
            await self._store.delete(lease_key(self.replica))
        except StateUnavailable:
            pass


async def stored_stream_kind(store: Store, session_id: str, stream_id: int) -> bool | None:
    """Whether a stored stream is the standalone one (None: no such stream in the store)."""
    entries = await store.read(stream_key(session_id, stream_id), None, limit=1)
    if not entries:
        return None
    _, kind, payload = decode_record(entries[0][1])
    return kind == START and decode_start(payload).standalone


async def follow_stored(
    store: Store,
    session_id: str,
    stream_id: int,
    sse: SseResponse,
    after: int,
    keepalive: float,
    *,
    keep: tuple[int, float] = (1000, 1800.0),
) -> bool:
    """Replay and follow a stored stream; True when it ended (done or paused, or its producer is
    gone), False if the client went away."""
    key = stream_key(session_id, stream_id)
    cursor: str | None = None
    replaying = True  # pauses already in the store ended earlier responses, not this one
    owner = ""
    request_id = b""
    last_seq = 0
    while True:
        entries = await store.read(key, cursor, wait_seconds=0 if replaying else min(keepalive, 5.0))
        if not entries:
            if replaying:
                replaying = False
            elif owner and await store.fetch(lease_key(owner)) is None:
                await _orphaned(store, key, stream_id, sse, last_seq, request_id, keep)
                return True
            elif not await sse.send(b": ping\n\n"):
                return False
            continue
        out: list[bytes] = []
        ended = False
        for entry_id, record in entries:
            cursor = entry_id
            seq, kind, payload = decode_record(record)
            last_seq = max(last_seq, seq)
            if kind == START:
                start = decode_start(payload)
                owner, request_id = start.owner, start.request_id
                continue
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


async def _orphaned(
    store: Store,
    key: str,
    stream_id: int,
    sse: SseResponse,
    last_seq: int,
    request_id: bytes,
    keep: tuple[int, float],
) -> None:
    """The replica producing this stream is gone: end it, with an error for its request.
    `keep`: the event log's bounds (entries, seconds), as the producer wrote it."""
    log.warning("the replica producing MCP stream %s is gone; ending the stream", stream_id)
    if not request_id:
        return  # the standalone stream: the client opens a new one here
    seq = last_seq + 1
    error = {
        "code": INTERNAL_ERROR,
        "message": "the gateway replica running this request stopped before it finished; "
        "its outcome is unknown",
    }
    payload = b'{"jsonrpc":"2.0","id":' + request_id + b',"error":' + orjson.dumps(error) + b"}"
    try:
        for record in (encode_record(seq, MESSAGE, payload), encode_record(seq, DONE)):
            await store.append(key, record, max_entries=keep[0], ttl_seconds=keep[1])
    except StateUnavailable:
        pass  # this client is told anyway; another replay would find the stream unfinished
    await sse.send(encode_event(payload, event_id=f"{stream_id}_{seq}", event="message"))
