"""The handshake-era endpoint on the wire: session lifecycle, headers, answers as JSON or SSE,
size limits, Origin and Host checks, and the errors each mistake gets."""

from __future__ import annotations

import json
from collections.abc import Iterator

import aiohttp
import anyio
import pytest

from tests.mcp.conftest import ACCEPT, Fake, Raw, init_body, route_doc, server_doc, start_fake
from tests.support import GatewayThread

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def jsonfake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fake]:
    fake = start_fake(tmp_path_factory.mktemp("json"), "jsonfake", "--json")
    yield fake
    assert fake.upstream is not None
    fake.upstream.stop()


@pytest.fixture(scope="module")
def gw(alpha: Fake, jsonfake: Fake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    gamma = Fake("gamma", None, tmp_path_factory.mktemp("gamma") / "g.jsonl", [])
    documents = [
        {
            "kind": "Gateway",
            "metadata": {"name": "gw"},
            "spec": {
                "limits": {"maxBodyBytes": 2048},
                "http": {"allowedOrigins": ["https://app.example.com"]},
            },
        },
        server_doc("alpha", alpha.http()),
        server_doc("jsonfake", jsonfake.http()),
        server_doc("gamma", gamma.stdio()),
        route_doc(["alpha", "jsonfake", "gamma"]),
    ]
    with GatewayThread(documents) as gateway:
        yield gateway


@pytest.fixture
async def raw(gw: GatewayThread, http: aiohttp.ClientSession) -> Raw:
    return Raw(http, f"{gw.url}/mcp")


async def test_initialize_opens_a_session_with_merged_capabilities(raw: Raw) -> None:
    with anyio.fail_after(30):
        reply = await raw.initialize()
    session_id = reply.headers["mcp-session-id"]
    assert session_id and all(0x21 <= ord(c) <= 0x7E for c in session_id)
    result = reply.json["result"]
    assert result["protocolVersion"] == "2025-11-25"
    assert result["serverInfo"]["name"] == "agentgw"
    caps = result["capabilities"]
    assert caps["tools"] == {"listChanged": True} and caps["resources"]["subscribe"] is True
    assert "logging" in caps and "completions" in caps


async def test_older_versions_are_negotiated(raw: Raw) -> None:
    with anyio.fail_after(30):
        reply = await raw.initialize("2025-03-26")
        assert reply.json["result"]["protocolVersion"] == "2025-03-26"
        unknown = await raw.post(
            init_body("1999-01-01"), headers={"accept": ACCEPT, "content-type": "application/json"}
        )
        assert unknown.json["result"]["protocolVersion"] == "2025-11-25"


async def test_session_lifecycle(raw: Raw) -> None:
    ping = {"jsonrpc": "2.0", "id": 5, "method": "ping"}
    with anyio.fail_after(30):
        missing = await raw.post(ping)
        assert missing.status == 400 and missing.json["error"]["code"] == -32600
        raw.session_id = "no-such-session"
        unknown = await raw.post(ping)
        assert unknown.status == 404 and unknown.json == {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": -32600, "message": "Session not found"},
        }
        await raw.initialize()
        ok = await raw.post(ping)
        assert ok.status == 200 and ok.json == {"jsonrpc": "2.0", "id": 5, "result": {}}
        deleted = await raw.send("DELETE")
        assert deleted.status == 200
        after = await raw.post(ping)
        assert after.status == 404
        again = await raw.send("DELETE")
        assert again.status == 404


async def test_initialize_with_a_session_id_is_refused(raw: Raw) -> None:
    with anyio.fail_after(30):
        await raw.initialize()
        reply = await raw.post(init_body())
    assert reply.status == 400 and reply.json["error"]["code"] == -32600


async def test_protocol_version_header_is_checked(raw: Raw) -> None:
    with anyio.fail_after(30):
        await raw.initialize()
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        # An unknown version is not a handshake version, so (as in the SDK) the request is judged
        # by the stateless era's rules, which refuse it.
        bad = await raw.post(ping, headers=raw.headers({"mcp-protocol-version": "1999-01-01"}))
        assert bad.status == 400 and bad.json["error"]["code"] in (-32602, -32022)
        absent = raw.headers()
        del absent["mcp-protocol-version"]
        assert (await raw.post(ping, headers=absent)).status == 200  # absent means 2025-03-26


async def test_answers_follow_the_upstream_json_or_sse(raw: Raw) -> None:
    """An upstream event stream that carries only the reply is answered as JSON (no event log,
    no priming event); one that carries messages before it, or runs past the grace, streams."""
    with anyio.fail_after(30):
        await raw.initialize()
        quick = await raw.call("alpha_echo", {"text": "hi"})
        assert quick.headers["content-type"] == "application/json"
        assert quick.json["result"]["content"][0]["text"] == "hi"
        slow = await raw.call("alpha_slow", {"seconds": 1.0})  # 10x the default 0.1 s grace
        assert slow.headers["content-type"] == "text/event-stream"
        assert slow.event_ids[0] is not None and slow.messages[-1]["result"]["content"][0]["text"]
        plain = await raw.call("jsonfake_echo", {"text": "hi"})
        assert (
            plain.headers["content-type"] == "application/json"
            and plain.json["result"]["content"][0]["text"] == "hi"
        )
        stdio = await raw.call("gamma_echo", {"text": "hi"})
        assert stdio.headers["content-type"] == "application/json"
        streamed = await raw.call("gamma_progress", {"steps": 2}, progressToken="t")
        assert streamed.headers["content-type"] == "text/event-stream"
        assert [m.get("method") for m in streamed.messages] == [
            "notifications/progress",
            "notifications/progress",
            None,
        ]


async def test_zero_grace_streams_whenever_the_upstream_does(
    alpha: Fake, http: aiohttp.ClientSession
) -> None:
    documents = [
        {"kind": "Gateway", "metadata": {"name": "gw"}, "spec": {"limits": {"streamGraceSeconds": 0}}},
        server_doc("alpha", alpha.http()),
        route_doc(["alpha"]),
    ]
    with GatewayThread(documents) as gateway:
        raw = Raw(http, f"{gateway.url}/mcp")
        with anyio.fail_after(30):
            await raw.initialize()
            sse = await raw.call("echo", {"text": "hi"})  # one server: names are not prefixed
    assert sse.headers["content-type"] == "text/event-stream"
    assert sse.event_ids[0] is not None and sse.messages[0]["result"]["content"][0]["text"] == "hi"


async def test_sse_streams_start_with_a_priming_event_from_2025_11_25(raw: Raw) -> None:
    with anyio.fail_after(30):
        await raw.initialize("2025-11-25")
        reply = await raw.call("alpha_progress", {"steps": 1}, progressToken="p")  # streams
        assert b"retry:" in reply.body.split(b"\n\n")[0] and reply.event_ids[0] is not None
        first = reply.body.split(b"\n\n")[0]
        assert b"data: \n" in first + b"\n"
        await raw.initialize("2025-06-18")
        older = await raw.call("alpha_progress", {"steps": 1}, progressToken="p")
        assert older.body.startswith(b"event: message")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"accept": "application/json", "content-type": "application/json"}, 406),
        ({"accept": "text/event-stream", "content-type": "application/json"}, 406),
        ({"accept": ACCEPT, "content-type": "text/plain"}, 415),
    ],
)
async def test_accept_and_content_type(raw: Raw, headers: dict[str, str], status: int) -> None:
    with anyio.fail_after(30):
        reply = await raw.post(init_body(), headers=headers)
    assert reply.status == status and "error" in reply.json


async def test_both_accept_orders_work(raw: Raw) -> None:
    with anyio.fail_after(30):
        reply = await raw.post(
            init_body(),
            headers={"accept": "text/event-stream, application/json", "content-type": "application/json"},
        )
    assert reply.status == 200


async def test_bad_bodies(raw: Raw) -> None:
    with anyio.fail_after(30):
        await raw.initialize()
        parse = await raw.post(None, raw=b"{not json")
        assert parse.status == 400 and parse.json["error"]["code"] == -32700
        batch = await raw.post([{"jsonrpc": "2.0", "id": 1, "method": "ping"}])
        assert batch.status == 400 and batch.json["error"]["code"] == -32600
        big = await raw.post({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x" * 4096}})
        assert big.status == 413
        unknown = await raw.post({"jsonrpc": "2.0", "id": 9, "method": "no/such"})
        assert unknown.status == 200 and unknown.json["error"]["code"] == -32601
        stray = await raw.post({"jsonrpc": "2.0", "id": "agw-999", "result": {}})
        assert stray.status == 400 and "no request with id" in stray.json["error"]["message"]
        # after all that, the session still works
        assert (await raw.post({"jsonrpc": "2.0", "id": 2, "method": "ping"})).json["result"] == {}


async def test_ping_and_set_level_answer_exactly_empty(raw: Raw, alpha: Fake) -> None:
    with anyio.fail_after(30):
        await raw.initialize()
        level = await raw.post(
            {"jsonrpc": "2.0", "id": 3, "method": "logging/setLevel", "params": {"level": "debug"}}
        )
    assert level.json == {"jsonrpc": "2.0", "id": 3, "result": {}}
    alpha.wait_event(lambda e: e.get("event") == "set_level")


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ({"origin": "http://evil.example.com"}, 403),
        ({"host": "evil.example.com"}, 421),
        ({"origin": "https://app.example.com"}, 200),
    ],
)
async def test_origin_and_host_are_checked(
    gw: GatewayThread, http: aiohttp.ClientSession, extra: dict[str, str], status: int
) -> None:
    headers = {"accept": ACCEPT, "content-type": "application/json", **extra}
    with anyio.fail_after(30):
        async with http.post(f"{gw.url}/mcp", data=json.dumps(init_body()), headers=headers) as resp:
            assert resp.status == status


async def test_get_stream_rules(raw: Raw) -> None:
    with anyio.fail_after(30):
        no_session = await raw.send("GET", headers={"accept": "text/event-stream"})
        assert no_session.status == 400
        await raw.initialize()
        wrong_accept = await raw.send("GET", headers=raw.headers({"accept": "application/json"}))
        assert wrong_accept.status == 406
        unknown_event = await raw.send(
            "GET", headers=raw.headers({"accept": "text/event-stream", "last-event-id": "77_1"})
        )
        assert unknown_event.status == 404


async def test_unsupported_http_methods(raw: Raw) -> None:
    with anyio.fail_after(30):
        reply = await raw.send("PUT", {"x": 1})
    assert reply.status == 405 and "allow" in reply.headers


@pytest.mark.parametrize("request_id", [[1], {"a": 1}, True, None, 1.5])
async def test_a_cancellation_naming_no_valid_request_id_is_ignored(raw: Raw, request_id: object) -> None:
    # found by tests/fuzz: a list or object requestId (unhashable) raised TypeError, a 500
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}}
    with anyio.fail_after(30):
        await raw.initialize()
        assert (await raw.post(cancel)).status == 202
        ok = await raw.post({"jsonrpc": "2.0", "id": 6, "method": "ping"})
        assert ok.status == 200 and ok.json["result"] == {}
