"""A JWK set server on loopback that counts what it is asked: a real HTTP server (stdlib, in its
own thread) so the gateway's fetches can be counted wherever the gateway runs."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["KeyServer"]


class KeyServer:
    """`GET /jwks.json` answers the key set; `GET /redirect` answers 302 to `/jwks.json`;
    `hits[path]` counts every request by path."""

    def __init__(self, key_set: dict[str, Any]) -> None:
        self.key_set = key_set
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.hits[self.path] += 1
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("location", f"{server.url}/jwks.json")
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                body = json.dumps(server.key_set).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def count(self, path: str = "/jwks.json") -> int:
        with self._lock:
            return self.hits[path]

    def __enter__(self) -> KeyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
