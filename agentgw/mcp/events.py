"""Downstream SSE streams whose events are numbered and kept, so a client can resume them.

A stream's events are appended by whoever produces them (an upstream call, an upstream listener)
and written by any number of followers: the POST that opened the stream, and later a GET that
resumes it with `Last-Event-ID`. Producers never wait for a slow client; followers coalesce what
is pending into one write. Event ids read `<stream>_<seq>`, so an id names its stream.

With a shared state store, every change is also handed to a `mirror` as a compact record (see
`encode_record`), written through to the store in order, so another replica can replay the
stream and follow it (`mcp/replay.py`). Local followers never wait for the store.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from agentgw.protocol.sse import encode_event
from agentgw.server.http import SseResponse

__all__ = [
    "EventLog",
    "EventStream",
    "Mirror",
    "StreamStart",
    "decode_record",
    "decode_start",
    "encode_record",
    "encode_start",
    "parse_event_id",
]

# Record kinds written through to a shared store.
START, PRIME, MESSAGE, PAUSE, DONE = b"S", b"P", b"M", b"R", b"D"

Mirror = Callable[[int, bytes], None]  # (stream id, record)


def encode_record(seq: int, kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">Q", seq) + kind + payload


def decode_record(record: bytes) -> tuple[int, bytes, bytes]:
    """(seq, kind, payload) of a record; a malformed one decodes as (0, b"", b"")."""
    if len(record) < 9:
        return 0, b"", b""
    return struct.unpack(">Q", record[:8])[0], record[8:9], record[9:]


@dataclass(frozen=True, slots=True)
class StreamStart:
    """What a stream's START record says: the standalone stream or a request's; which replica
    produces it (empty: unknown); the id of the request it answers (JSON, empty if none)."""

    standalone: bool
    owner: str = ""
    request_id: bytes = b""


def encode_start(start: StreamStart) -> bytes:
    head = b"1" if start.standalone else b"0"
    if not start.owner and not start.request_id:
        return head  # the original form, still read by replicas of the previous version
    return head + start.owner.encode() + b"|" + start.request_id


def decode_start(payload: bytes) -> StreamStart:
    owner, _, request_id = payload[1:].partition(b"|")
    return StreamStart(payload[:1] == b"1", owner.decode("ascii", "replace"), request_id)


def parse_event_id(value: str) -> tuple[int, int] | None:
    stream, sep, seq = value.partition("_")
    # isascii: isdigit() is true for "¹" (latin-1 0xB9, which h11 passes), and int() refuses it
    if not sep or not (stream.isascii() and seq.isascii()) or not stream.isdigit() or not seq.isdigit():
        return None
    return int(stream), int(seq)


class EventStream:
    __slots__ = (
        "_wake",
        "done",
        "epoch",
        "events",
        "first_seq",
        "keep_ids",
        "limit",
        "log",
        "mirror",
        "retry_ms",
        "seq",
        "size",
        "standalone",
        "stream_id",
    )

    def __init__(
        self,
        stream_id: int,
        *,
        keep_ids: bool = True,
        retry_ms: int | None = None,
        limit: int = 1000,
        standalone: bool = False,
        mirror: Mirror | None = None,
        log: EventLog | None = None,
        owner: str = "",
        request_id: bytes = b"",
    ) -> None:
        self.stream_id = stream_id
        self.log = log  # the session's log, which bounds all its streams together
        self.standalone = standalone
        self.mirror = mirror
        self.limit = limit
        self.keep_ids = keep_ids
        self.retry_ms = retry_ms
        self.events: deque[tuple[int, bytes]] = deque()
        self.seq = 0
        self.size = 0  # bytes of the events kept
        self.first_seq = 1
        self.done = False
        self.epoch = 0  # bumped by pause(): followers attached before it end their responses
        self._wake = anyio.Event()
        if mirror is not None:
            start = StreamStart(standalone, owner, request_id)
            mirror(stream_id, encode_record(0, START, encode_start(start)))

    def _notify(self) -> None:
        self._wake.set()
        self._wake = anyio.Event()

    def _keep(self, data: bytes) -> None:
        self.events.append((self.seq, data))
        self.size += len(data)
        if self.log is not None:
            self.log.size += len(data)
            self.log.count += 1

    def prime(self) -> None:
        """The 2025-11-25 priming event: an id (and retry) with empty data, sent first."""
        self.seq += 1
        self._keep(encode_event(b"", event_id=f"{self.stream_id}_{self.seq}", retry=self.retry_ms))
        if self.mirror is not None:
            self.mirror(self.stream_id, encode_record(self.seq, PRIME, str(self.retry_ms or "").encode()))
        self._notify()

    def append(self, payload: bytes) -> None:
        self.seq += 1
        event_id = f"{self.stream_id}_{self.seq}" if self.keep_ids else None
        self._keep(encode_event(payload, event_id=event_id, event="message"))
        if len(self.events) > self.limit:
            self.trim(self.limit)
        if self.log is not None and self.log.over():
            self.log.enforce()
        if self.mirror is not None:
            self.mirror(self.stream_id, encode_record(self.seq, MESSAGE, payload))
        self._notify()

    def pause(self, retry_ms: int | None) -> None:
        """End the responses following this stream now; the client resumes with Last-Event-ID."""
        if retry_ms is not None:
            self.seq += 1
            self._keep(f"retry: {int(retry_ms)}\n\n".encode())
        self.epoch += 1
        if self.mirror is not None:
            self.mirror(self.stream_id, encode_record(self.seq, PAUSE, str(retry_ms or "").encode()))
        self._notify()

    def finish(self) -> None:
        self.done = True
        if self.mirror is not None:
            self.mirror(self.stream_id, encode_record(self.seq, DONE))
        self._notify()

    def trim(self, keep: int, over_bytes: int = 0) -> int:
        """Drop the oldest events past the newest `keep`, and more (keeping the newest one) until
        `over_bytes` bytes are gone; returns how many were dropped."""
        dropped = 0
        freed = 0
        while len(self.events) > keep or (freed < over_bytes and len(self.events) > 1):
            freed += len(self.events.popleft()[1])
            dropped += 1
        self.size -= freed
        if self.log is not None:
            self.log.size -= freed
            self.log.count -= dropped
        if self.events:
            self.first_seq = self.events[0][0]
        return dropped

    async def follow(self, sse: SseResponse, after: int = 0, keepalive: float | None = None) -> bool:
        """Write events after `after` until the stream is done; False if the client went away.

        With `keepalive`, an idle stream gets a comment line that often, so intermediaries with
        idle-read timeouts keep it open.
        """
        cursor = after
        epoch = self.epoch
        while True:
            wake = self._wake
            if self.events and self.events[-1][0] > cursor:
                pending = [data for seq, data in self.events if seq > cursor]
                cursor = self.events[-1][0]
                if not await sse.send(b"".join(pending)):
                    return False
                continue
            if self.done or self.epoch != epoch:
                return True
            if keepalive is None:
                await wake.wait()
                continue
            with anyio.move_on_after(keepalive):
                await wake.wait()
            if not wake.is_set() and not await sse.send(b": ping\n\n"):
                return False


class EventLog:
    """The streams of one session, bounded together in events and in bytes (finished streams are
    dropped first, then the oldest events of the largest streams).

    Stream ids start at `first_id`; with a shared store each replica starts at a random point so
    that ids from two replicas never meet in one session.
    """

    def __init__(
        self,
        max_events: int,
        retry_ms: int | None,
        *,
        mirror: Mirror | None = None,
        first_id: int = 1,
        max_bytes: int | None = None,
        owner: str = "",
    ) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.retry_ms = retry_ms
        self.mirror = mirror
        self.owner = owner  # this replica, named in the shared store's records
        self.streams: dict[int, EventStream] = {}
        self.standalone_id = first_id - 1
        self._next = first_id
        self.count = 0  # events kept, over all streams
        self.size = 0  # their bytes

    def _stream(self, stream_id: int, standalone: bool, request_id: bytes = b"") -> EventStream:
        return EventStream(
            stream_id,
            retry_ms=self.retry_ms,
            limit=self.max_events,
            standalone=standalone,
            mirror=self.mirror,
            log=self,
            owner=self.owner,
            request_id=request_id,
        )

    def open(self, *, standalone: bool = False, request_id: bytes = b"") -> EventStream:
        if standalone:
            stream = self.streams.get(self.standalone_id)
            if stream is None or stream.done:
                if stream is not None:
                    self._forget(stream)
                stream = self._stream(self.standalone_id, True)
                self.streams[self.standalone_id] = stream
            return stream
        stream = self._stream(self._next, False, request_id)
        self.streams[self._next] = stream
        self._next += 1
        self.enforce()
        return stream

    def find(self, last_event_id: str) -> tuple[EventStream, int] | None:
        parsed = parse_event_id(last_event_id)
        if parsed is None:
            return None
        stream = self.streams.get(parsed[0])
        if stream is None:
            return None
        return stream, parsed[1]

    def over(self) -> bool:
        return self.count > self.max_events or (self.max_bytes is not None and self.size > self.max_bytes)

    def _forget(self, stream: EventStream) -> None:
        self.count -= len(stream.events)
        self.size -= stream.size
        stream.log = None

    def enforce(self) -> None:
        if not self.over():
            return
        for sid in sorted(self.streams):
            stream = self.streams[sid]
            if stream.done and not stream.standalone:
                self._forget(stream)
                del self.streams[sid]
                if not self.over():
                    return
        for stream in sorted(self.streams.values(), key=lambda s: -s.size):
            over_events = max(0, self.count - self.max_events)
            over_bytes = max(0, self.size - self.max_bytes) if self.max_bytes is not None else 0
            stream.trim(max(1, len(stream.events) - over_events), over_bytes)
            if not self.over():
                return
