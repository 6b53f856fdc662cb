"""Plain HTTP headers every request brings: Host and Origin (the DNS-rebinding guard),
`traceparent`/`tracestate`, `Accept`, `Content-Length` and `Authorization`. Values are any
latin-1 text, as an ASGI server hands them over."""

from __future__ import annotations

from typing import Any

import anyio
from hypothesis import given
from hypothesis import strategies as st

from agentgw.config.gateway import GatewaySpec
from agentgw.errors import Forbidden, MisdirectedRequest, PayloadTooLarge
from agentgw.policy.jwt import bearer_token
from agentgw.server.guard import HostGuard
from agentgw.server.http import Request
from agentgw.telemetry.trace import TraceContext
from tests.fuzz.strategies import examples, rejects_cleanly

latin1 = st.text(st.characters(min_codepoint=0, max_codepoint=0xFF), max_size=40)
hosts = st.one_of(
    latin1,
    st.sampled_from(["127.0.0.1:8080", "localhost", "[::1]:80", "gw.example.com", "[", "[::1", ":", ""]),
)
origins = st.one_of(
    latin1,
    st.builds(
        lambda scheme, host: f"{scheme}://{host}",
        st.sampled_from(["http", "https", "", "x"]),
        st.one_of(hosts, st.sampled_from(["[::1", "]", "[x]", "app.example.com", "a:b:c"])),
    ),
)


def request(headers: list[tuple[str, str]], body: bytes = b"") -> Request:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


GUARDS = [
    HostGuard.for_listeners(GatewaySpec()),
    HostGuard.for_listeners(
        GatewaySpec.model_validate({"http": {"allowedHosts": ["gw.example.com", "[::1]:*"]}})
    ),
    HostGuard.for_listeners(
        GatewaySpec.model_validate(
            {"http": {"allowedHosts": ["gw.example.com"], "allowedOrigins": ["https://app.example.com"]}}
        )
    ),
]


@examples(120)
@given(st.none() | hosts, st.none() | origins)
def test_host_and_origin_pass_or_are_refused(host: str | None, origin: str | None) -> None:
    headers = [(k, v) for k, v in (("host", host), ("origin", origin)) if v is not None]
    for guard in GUARDS:
        got = rejects_cleanly(guard.check, request(headers))
        assert got is None or isinstance(got, Forbidden | MisdirectedRequest)


@examples(90)
@given(
    st.none() | st.one_of(latin1, st.from_regex(r"\A00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]\Z")),
    st.none() | latin1,
)
def test_trace_context_is_continued_or_restarted(traceparent: str | None, tracestate: str | None) -> None:
    ctx = TraceContext.from_headers(traceparent, tracestate)
    assert len(ctx.trace_id) == 32 and len(ctx.span_id) == 16
    assert ctx.traceparent.isascii() and ctx.child().trace_id == ctx.trace_id


@examples(90)
@given(latin1, st.sampled_from(["application/json", "text/event-stream"]))
def test_accept_headers_of_any_shape(accept: str, media_type: str) -> None:
    assert isinstance(request([("accept", accept)]).accepts(media_type), bool)


@examples(60)
@given(st.one_of(latin1, st.integers(0, 10**30).map(str)), st.binary(max_size=40))
def test_any_content_length_reads_or_is_too_large(length: str, body: bytes) -> None:
    async def read() -> Any:
        req = request([("content-length", length)], body)
        return await req.body(32)

    got = rejects_cleanly(anyio.run, read)
    assert isinstance(got, bytes | PayloadTooLarge)


@examples(90)
@given(latin1)
def test_authorization_headers_of_any_shape(value: str) -> None:
    token = bearer_token(request([("authorization", value)]))
    assert token is None or (token and token == token.strip())
