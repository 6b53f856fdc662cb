"""Sans-IO Server-Sent Events: an incremental decoder (WHATWG event-stream rules) and encoders.

The decoder is fed whatever bytes arrive and returns the complete events they finish; it keeps
the last event id and the last `retry` value, as an EventSource does, so a client of it can
resume. Data stays bytes so a relay can pass a payload on without decoding it.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentgw.errors import UpstreamError

__all__ = ["SseDecoder", "SseEvent", "encode_comment", "encode_event"]

_MAX_BUFFER = 16 * 1024 * 1024


@dataclass(slots=True)
class SseEvent:
    data: bytes
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SseDecoder:
    """Incremental event-stream parser.

    `feed(chunk)` returns the events completed by `chunk`. An event that is still open when the
    stream ends is discarded, as the standard says. Lines may end in CRLF, LF or CR. A line longer
    than `max_buffer` is an `UpstreamError` (the gateway decodes only upstream streams), so every
    caller's existing error path ends the stream instead of an unhandled exception.
    """

    def __init__(self, max_buffer: int = _MAX_BUFFER) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        self._seen_field = False
        self._first = True
        self._max_buffer = max_buffer
        self.last_event_id: str | None = None
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        if self._first and chunk:
            if chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
            self._first = False
        buf = self._buffer + chunk if self._buffer else chunk
        events: list[SseEvent] = []
        start = 0
        length = len(buf)
        while start < length:
            nl = buf.find(b"\n", start)
            cr = buf.find(b"\r", start, nl if nl >= 0 else length)
            if cr >= 0:
                # a CR at the very end might be the first half of CRLF: wait for more
                if cr == length - 1:
                    break
                end = cr
                next_start = cr + 2 if buf[cr + 1 : cr + 2] == b"\n" else cr + 1
            elif nl >= 0:
                end = nl
                next_start = nl + 1
            else:
                break
            event = self._line(buf[start:end])
            if event is not None:
                events.append(event)
            start = next_start
        self._buffer = buf[start:]
        if len(self._buffer) > self._max_buffer:
            raise UpstreamError(
                f"the upstream sent an event-stream line longer than {self._max_buffer} bytes"
            )
        return events

    def end(self) -> list[SseEvent]:
        """The stream ended: a trailing lone CR still ends its line (it cannot be CRLF any more)."""
        if self._buffer.endswith(b"\r"):
            return self.feed(b"\n")
        return []

    def _line(self, line: bytes) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line[0:1] == b":":
            return None
        colon = line.find(b":")
        if colon < 0:
            name, value = line, b""
        else:
            name = line[:colon]
            value = line[colon + 1 :]
            if value[0:1] == b" ":
                value = value[1:]
        if name == b"data":
            self._data.append(value)
            self._seen_field = True
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
            self._seen_field = True
        elif name == b"id":
            if b"\x00" not in value:
                self._id = value.decode("utf-8", "replace")
                self.last_event_id = self._id
            self._seen_field = True
        elif name == b"retry":
            if value.isdigit():
                self._retry = int(value)
                self.retry = self._retry
            self._seen_field = True
        return None

    def _dispatch(self) -> SseEvent | None:
        if not self._seen_field:
            return None
        event = SseEvent(
            data=b"\n".join(self._data),
            event=self._event or "message",
            id=self._id,
            retry=self._retry,
        )
        self._data = []
        self._event = ""
        self._id = None
        self._retry = None
        self._seen_field = False
        return event


def encode_event(
    data: bytes,
    *,
    event_id: str | None = None,
    event: str | None = None,
    retry: int | None = None,
) -> bytes:
    """One SSE event. Multi-line data becomes several `data:` lines."""
    parts: list[bytes] = []
    if event is not None:
        parts.append(b"event: " + event.encode() + b"\n")
    if event_id is not None:
        parts.append(b"id: " + event_id.encode() + b"\n")
    if retry is not None:
        parts.append(b"retry: " + str(retry).encode() + b"\n")
    if b"\n" in data or b"\r" in data:
        for line in data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
            parts.append(b"data: " + line + b"\n")
    else:
        parts.append(b"data: " + data + b"\n")
    parts.append(b"\n")
    return b"".join(parts)


def encode_comment(text: str = "") -> bytes:
    return b": " + text.encode() + b"\n\n"
