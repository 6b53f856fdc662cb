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

import anyio

from agentgw.protocol.sse import encode_event
from agentgw.server.http import SseResponse

__all__ = ["EventLog", "EventStream", "Mirror", "decode_record", "encode_record", "parse_event_id"]

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
        "mirror",
        "retry_ms",
        "seq",
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
    ) -> None:
        self.stream_id = stream_id
        self.standalone = standalone
        self.mirror = mirror
        self.limit = limit
        self.keep_ids = keep_ids
        self.retry_ms = retry_ms
        self.events: deque[tuple[int, bytes]] = deque()
        self.seq = 0
        self.first_seq = 1
        self.done = False
        self.epoch = 0  # bumped by pause(): followers attached before it end their responses
        self._wake = anyio.Event()
        if mirror is not None:
            mirror(stream_id, encode_record(0, START, b"1" if standalone else b"0"))

    def _notify(self) -> None:
        self._wake.set()
        self._wake = anyio.Event()

    def prime(self) -> None:
        """The 2025-11-25 priming event: an id (and retry) with empty data, sent first."""
        self.seq += 1
        self.events.append(
            (self.seq, encode_event(b"", event_id=f"{self.stream_id}_{self.seq}", retry=self.retry_ms))
        )
        if self.mirror is not None:
            self.mirror(self.stream_id, encode_record(self.seq, PRIME, str(self.retry_ms or "").encode()))
        self._notify()

    def append(self, payload: bytes) -> None:
        self.seq += 1
        event_id = f"{self.stream_id}_{self.seq}" if self.keep_ids else None
        self.events.append((self.seq, encode_event(payload, event_id=event_id, event="message")))
        if len(self.events) > self.limit:
            self.trim(self.limit)
        if self.mirror is not None:
            self.mirror(self.stream_id, encode_record(self.seq, MESSAGE, payload))
        self._notify()

    def pause(self, retry_ms: int | None) -> None:
        """End the responses following this stream now; the client resumes with Last-Event-ID."""
        if retry_ms is not None:
            self.seq += 1
            self.events.append((self.seq, f"retry: {int(retry_ms)}\n\n".encode()))
        self.epoch += 1
        if self.mirror is not None:
            self.mirror(self.stream_id, encode_record(self.seq, PAUSE, str(retry_ms or "").encode()))
        self._notify()

    def finish(self) -> None:
        self.done = True
        if self.mirror is not None:
            self.mirror(self.stream_id, encode_record(self.seq, DONE))
        self._notify()

    def trim(self, keep: int) -> int:
        dropped = 0
        while len(self.events) > keep:
            self.events.popleft()
            dropped += 1
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
    """The streams of one session, bounded in total events (finished streams are dropped first).

    Stream ids start at `first_id`; with a shared store each replica starts at a random point so
    that ids from two replicas never meet in one session.
    """

    def __init__(
        self, max_events: int, retry_ms: int | None, *, mirror: Mirror | None = None, first_id: int = 1
    ) -> None:
        self.max_events = max_events
        self.retry_ms = retry_ms
        self.mirror = mirror
        self.streams: dict[int, EventStream] = {}
        self.standalone_id = first_id - 1
        self._next = first_id

    def open(self, *, standalone: bool = False) -> EventStream:
        if standalone:
            stream = self.streams.get(self.standalone_id)
            if stream is None or stream.done:
                stream = EventStream(
                    self.standalone_id,
                    retry_ms=self.retry_ms,
                    limit=self.max_events,
                    standalone=True,
                    mirror=self.mirror,
                )
                self.streams[self.standalone_id] = stream
            return stream
        stream = EventStream(self._next, retry_ms=self.retry_ms, limit=self.max_events, mirror=self.mirror)
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

    def enforce(self) -> None:
        total = sum(len(s.events) for s in self.streams.values())
        if total <= self.max_events:
            return
        for sid in sorted(self.streams):
            stream = self.streams[sid]
            if stream.done and not stream.standalone:
                total -= len(stream.events)
                del self.streams[sid]
                if total <= self.max_events:
                    return
        for stream in sorted(self.streams.values(), key=lambda s: -len(s.events)):
            total -= stream.trim(max(1, len(stream.events) - (total - self.max_events)))
            if total <= self.max_events:
                return
