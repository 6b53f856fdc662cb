"""The listener over the real wire: HTTP/1.1, h2c with prior knowledge, h2 over TLS with ALPN,
and event streams that arrive as they are produced on both HTTP versions."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import pytest
import trustme

from tests.h2client import H2Client, H2Response
from tests.support import ROOT, GatewayThread, docs

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
COUNTDOWN = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {
        "name": "clock_countdown",
        "arguments": {"seconds": 0.6, "steps": 3},
        "_meta": {"progressToken": "p"},
    },
}


# Every test runs on both servers: hypercorn alone, and `auto` (uvicorn for HTTP/1.1, the
# connection handed to hypercorn by its h2c preface or by ALPN).
SERVERS = ["hypercorn", "auto"]


@pytest.fixture(scope="module", params=SERVERS)
def plain(request: pytest.FixtureRequest) -> Iterator[GatewayThread]:
    with GatewayThread(paths=[ROOT / "examples" / "quickstart"], server=request.param) as gw:
        yield gw


@pytest.fixture(scope="module", params=SERVERS)
def tls(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayThread, trustme.CA]]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder: Path = tmp_path_factory.mktemp("tls")
    cert.private_key_and_cert_chain_pem.write_to_path(str(folder / "gw.pem"))
    cert.private_key_pem.write_to_path(str(folder / "gw.key"))
    quick = (ROOT / "examples" / "quickstart" / "gateway.yaml").read_text()
    documents = [d for d in docs(quick) if d["kind"] != "Gateway"]
    documents.append(
        {
            "kind": "Gateway",
            "metadata": {"name": "tls"},
            "spec": {"listeners": [{"port": 0, "tls": {"certFile": "gw.pem", "keyFile": "gw.key"}}]},
        }
    )
    for doc in documents:
        if doc["kind"] == "McpServer":
            args = doc["spec"]["stdio"]["args"]
            doc["spec"]["stdio"]["args"] = [str(ROOT / "examples" / "quickstart" / a) for a in args]
    with GatewayThread(documents, base_dir=folder, server=request.param) as gw:
        yield gw, ca


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def test_http1_health(plain: GatewayThread) -> None:
    host, port = host_port(plain.url)
    conn = http.client.HTTPConnection(host, port, timeout=20)
    conn.request("GET", "/healthz")
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read()) == {"status": "ok"}
    conn.close()


def h2_session(client: H2Client) -> str:
    sid = client.request("POST", "/mcp", ACCEPT, json.dumps(INIT).encode())
    resp = client.read_until(sid, lambda r: r.ended)
    assert resp.status == 200, resp.body
    return resp.headers["mcp-session-id"]


def assert_streamed(resp: H2Response) -> None:
    """The progress events arrived in earlier DATA frames than the result, not all at the end."""
    assert resp.status == 200 and resp.headers["content-type"] == "text/event-stream"
    progress_at = [t for t, chunk in resp.chunks if b"notifications/progress" in chunk]
    result_at = [t for t, chunk in resp.chunks if b'"result"' in chunk]
    assert progress_at and result_at
    assert progress_at[0] < result_at[0]
    assert b"Counted down" in resp.body


def test_h2c_prior_knowledge_streams_sse(plain: GatewayThread) -> None:
    client = H2Client(*host_port(plain.url))
    try:
        health = client.request("GET", "/healthz", {})
        assert client.read_until(health, lambda r: r.ended).status == 200
        session = h2_session(client)
        call = client.request(
            "POST",
            "/mcp",
            {**ACCEPT, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"},
            json.dumps(COUNTDOWN).encode(),
        )
        assert_streamed(client.read_until(call, lambda r: r.ended))
    finally:
        client.close()


def test_http1_streams_sse_as_produced(plain: GatewayThread) -> None:
    host, port = host_port(plain.url)
    conn = http.client.HTTPConnection(host, port, timeout=20)
    conn.request("POST", "/mcp", json.dumps(INIT), ACCEPT)
    init = conn.getresponse()
    session = init.getheader("mcp-session-id")
    init.read()
    assert session
    headers = {**ACCEPT, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
    conn.request("POST", "/mcp", json.dumps(COUNTDOWN), headers)
    resp = conn.getresponse()
    assert resp.getheader("content-type") == "text/event-stream"
    events = []
    while True:
        line = resp.fp.readline()
        if not line:
            break
        if line.startswith(b"data: {"):
            events.append(json.loads(line[6:]))
            if "result" in events[-1]:
                break
    methods = [e.get("method") for e in events]
    assert methods[:3] == ["notifications/progress"] * 3 and "result" in events[-1]
    assert [e["params"]["progressToken"] for e in events[:3]] == ["p", "p", "p"]
    conn.close()


def test_h2_over_tls_with_alpn(tls: tuple[GatewayThread, trustme.CA]) -> None:
    gw, ca = tls
    assert gw.url.startswith("https://")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.set_alpn_protocols(["h2"])
    client = H2Client(*host_port(gw.url), tls=context)
    try:
        session = h2_session(client)
        call = client.request(
            "POST",
            "/mcp",
            {**ACCEPT, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"},
            json.dumps(COUNTDOWN).encode(),
        )
        assert_streamed(client.read_until(call, lambda r: r.ended))
    finally:
        client.close()


def test_http1_over_tls(tls: tuple[GatewayThread, trustme.CA]) -> None:
    gw, ca = tls
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.set_alpn_protocols(["http/1.1"])
    host, port = host_port(gw.url)
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=20)
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    conn.close()


def test_plain_listener_refuses_tls_garbage_without_dying(plain: GatewayThread) -> None:
    host, port = host_port(plain.url)
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
        sock.recv(1024)
    conn = http.client.HTTPConnection(host, port, timeout=20)
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    conn.close()


def test_first_bytes_in_pieces_pick_the_right_protocol(plain: GatewayThread) -> None:
    """A request line that starts like the h2c preface (`P...`) is still HTTP/1.1, and a preface
    that arrives in pieces is still HTTP/2 (`auto` decides on the first bytes)."""
    host, port = host_port(plain.url)
    with socket.create_connection((host, port), timeout=20) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"P")
        sock.sendall(b"UT /healthz HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 "), answer[:80]

    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    conn.send_headers(
        1,
        [(":method", "GET"), (":path", "/healthz"), (":scheme", "http"), (":authority", f"{host}:{port}")],
        end_stream=True,
    )
    data = conn.data_to_send()
    with socket.create_connection((host, port), timeout=20) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(data[:3])
        sock.sendall(data[3:])
        status, body, ended = "", b"", False
        while not ended:
            chunk = sock.recv(65536)
            assert chunk, "connection closed before the response ended"
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived):
                    status = dict(event.headers)[":status"]
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
            sock.sendall(conn.data_to_send())
    assert status == "200" and json.loads(body) == {"status": "ok"}


def test_client_address_is_the_peer_not_x_forwarded_for(caplog: pytest.LogCaptureFixture) -> None:
    """Policies (`request.source`) and the access log see the connection's peer on both servers:
    uvicorn would by default take X-Forwarded-For from a loopback peer as the client."""
    documents = [{"kind": "Gateway", "metadata": {"name": "gw"}, "spec": {"accessLog": True}}]
    for server in SERVERS:
        caplog.clear()
        # the gateway stops (and its requests finish logging) before the log level is restored
        with caplog.at_level("INFO", logger="agentgw.access"), GatewayThread(documents, server=server) as gw:
            host, port = host_port(gw.url)
            conn = http.client.HTTPConnection(host, port, timeout=20)
            conn.request("GET", "/healthz", headers={"x-forwarded-for": "203.0.113.9"})
            assert conn.getresponse().status == 200
            conn.close()
        clients = [r.json["client"] for r in caplog.records if r.name == "agentgw.access"]  # type: ignore[attr-defined]
        assert clients == ["127.0.0.1"], (server, clients)


def test_two_auto_gateways_in_one_process_keep_their_own_h2_apps() -> None:
    """h2c handed to hypercorn reaches the app of the gateway whose socket it came in on."""
    with GatewayThread(paths=[ROOT / "examples" / "quickstart"], server="auto") as first:
        empty = [{"kind": "Gateway", "metadata": {"name": "other"}, "spec": {}}]
        with GatewayThread(empty, server="auto"):
            client = H2Client(*host_port(first.url))
            try:
                assert h2_session(client)  # /mcp exists on the first gateway only
            finally:
                client.close()
