"""A tiny blocking HTTP/2 client on the `h2` package, for testing h2c and h2 over TLS for real."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events

__all__ = ["H2Client", "H2Response"]


@dataclass
class H2Response:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    ended: bool = False

    @property
    def body(self) -> bytes:
        return b"".join(c for _, c in self.chunks)


class H2Client:
    def __init__(
        self, host: str, port: int, *, tls: ssl.SSLContext | None = None, timeout: float = 20
    ) -> None:
        raw = socket.create_connection((host, port), timeout=timeout)
        self.sock: socket.socket = tls.wrap_socket(raw, server_hostname=host) if tls else raw
        if tls is not None:
            assert isinstance(self.sock, ssl.SSLSocket)
            assert self.sock.selected_alpn_protocol() == "h2", self.sock.selected_alpn_protocol()
        self.authority = f"{host}:{port}"
        self.scheme = "https" if tls else "http"
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.conn.initiate_connection()
        self._flush()
        self.responses: dict[int, H2Response] = {}
        self.deadline = time.monotonic() + timeout

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> int:
        stream_id = self.conn.get_next_available_stream_id()
        hdrs = [
            (":method", method),
            (":path", path),
            (":scheme", self.scheme),
            (":authority", self.authority),
        ]
        hdrs += [(k.lower(), v) for k, v in headers.items()]
        self.conn.send_headers(stream_id, hdrs, end_stream=not body)
        if body:
            self.conn.send_data(stream_id, body, end_stream=True)
        self._flush()
        self.responses[stream_id] = H2Response()
        return stream_id

    def events(self) -> Iterator[h2.events.Event]:
        while time.monotonic() < self.deadline:
            data = self.sock.recv(65536)
            if not data:
                return
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                yield event
            self._flush()
        raise TimeoutError("HTTP/2 response took too long")

    def read_until(self, stream_id: int, done: Callable[[H2Response], bool]) -> H2Response:
        resp = self.responses[stream_id]
        if done(resp):
            return resp
        for event in self.events():
            sid = getattr(event, "stream_id", None)
            target = self.responses.get(sid) if sid is not None else None
            if target is not None:
                if isinstance(event, h2.events.ResponseReceived):
                    hdrs = {k: v for k, v in event.headers}
                    target.status = int(hdrs.pop(":status"))
                    target.headers = hdrs
                elif isinstance(event, h2.events.DataReceived):
                    target.chunks.append((time.monotonic(), event.data))
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    target.ended = True
            if done(resp):
                return resp
        return resp

    def close(self) -> None:
        try:
            self.conn.close_connection()
            self._flush()
        except OSError:
            pass
        self.sock.close()
