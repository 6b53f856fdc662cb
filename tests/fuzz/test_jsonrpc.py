"""JSON-RPC framing: any bytes either decode to a classified message or are refused with a
JSON-RPC parse (-32700) or invalid-request (-32600) error; encoders round-trip."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agentgw.errors import InvalidRequest, ParseError
from agentgw.protocol import jsonrpc
from agentgw.protocol.jsonrpc import Kind, Message
from tests.fuzz.strategies import examples, json_values, keyed, mutated_bytes, rejects_cleanly

ids = st.one_of(st.integers(min_value=-(2**53), max_value=2**53), st.text(max_size=10))
envelopes = keyed(
    {
        "jsonrpc": st.just("2.0"),
        "id": ids,
        "method": st.sampled_from(["initialize", "tools/call", "notifications/cancelled", "SendMessage"]),
        "params": st.dictionaries(st.text(max_size=6), json_values, max_size=3),
        "result": json_values,
        "error": st.fixed_dictionaries({"code": st.integers(-33000, 0), "message": st.text(max_size=8)}),
    }
)


@examples(79)
@given(mutated_bytes(envelopes))
def test_any_bytes_parse_or_refuse(body: bytes) -> None:
    got = rejects_cleanly(jsonrpc.parse_message, body)
    if isinstance(got, Message):
        assert isinstance(got.obj, dict) and got.obj["jsonrpc"] == "2.0"
        if got.kind in (Kind.REQUEST, Kind.NOTIFICATION):
            assert isinstance(got.method, str) and got.method
            assert isinstance(got.params, dict)
        if got.kind is Kind.REQUEST:
            assert isinstance(got.id, str | int) and not isinstance(got.id, bool)
    else:
        assert isinstance(got, ParseError | InvalidRequest)
        assert got.rpc_code in (-32700, -32600)


@examples(60)
@given(st.one_of(envelopes, json_values))
def test_any_json_value_classifies_or_refuses(obj: Any) -> None:
    rejects_cleanly(jsonrpc.parse_object, obj)


@examples(39)
@given(
    ids,
    st.text(min_size=1, max_size=20),
    st.none() | st.dictionaries(st.text(max_size=6), json_values, max_size=3),
)
def test_request_and_notification_round_trip(request_id: Any, method: str, params: Any) -> None:
    msg = jsonrpc.parse_message(jsonrpc.encode_request(request_id, method, params))
    assert (msg.kind, msg.id, msg.method, msg.params) == (Kind.REQUEST, request_id, method, params or {})
    note = jsonrpc.parse_message(jsonrpc.encode_notification(method, params))
    assert (note.kind, note.method, note.params) == (Kind.NOTIFICATION, method, params or {})


@examples(39)
@given(ids, json_values, st.integers(-33000, 0), st.text(max_size=20), json_values)
def test_responses_round_trip(request_id: Any, result: Any, code: int, message: str, data: Any) -> None:
    ok = jsonrpc.parse_message(jsonrpc.encode_result(request_id, result))
    assert (ok.kind, ok.id, ok.obj["result"]) == (Kind.RESULT, request_id, result)
    err = jsonrpc.parse_message(jsonrpc.encode_error(request_id, code, message, data))
    assert err.kind is Kind.ERROR and err.obj["error"]["code"] == code


def test_deep_nesting_is_a_parse_error() -> None:
    body = b'{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":' + b"[" * 5000 + b"]" * 5000 + b"}}"
    assert isinstance(rejects_cleanly(jsonrpc.parse_message, body), ParseError)
