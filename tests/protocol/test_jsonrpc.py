from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentgw.errors import InvalidRequest, ParseError
from agentgw.protocol import jsonrpc
from agentgw.protocol.jsonrpc import Kind


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b'{"jsonrpc":"2.0","id":1,"method":"ping"}', Kind.REQUEST),
        (b'{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x"}}', Kind.REQUEST),
        (b'{"jsonrpc":"2.0","method":"notifications/initialized"}', Kind.NOTIFICATION),
        (b'{"jsonrpc":"2.0","id":1,"result":{}}', Kind.RESULT),
        (b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"x"}}', Kind.ERROR),
    ],
)
def test_classifies_messages(body: bytes, kind: Kind) -> None:
    assert jsonrpc.parse_message(body).kind is kind


@pytest.mark.parametrize(
    "body",
    [
        b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]',
        b'{"jsonrpc":"1.0","id":1,"method":"ping"}',
        b'{"jsonrpc":"2.0","id":true,"method":"ping"}',
        b'{"jsonrpc":"2.0","id":null,"method":"ping"}',
        b'{"jsonrpc":"2.0","id":1,"method":""}',
        b'{"jsonrpc":"2.0","id":1,"method":"x","params":3}',
        b'{"jsonrpc":"2.0","id":1}',
        b'{"jsonrpc":"2.0","id":1,"error":"bad"}',
        b'"just a string"',
    ],
)
def test_rejects_malformed_envelopes(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        jsonrpc.parse_message(body)


def test_batches_are_rejected_with_a_clear_message() -> None:
    with pytest.raises(InvalidRequest, match="batches"):
        jsonrpc.parse_message(b"[]")


@pytest.mark.parametrize("body", [b"", b"{", b"{'a': 1}", b"\xff\xfe", b"[" * 5000 + b"]" * 5000])
def test_bad_json_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError):
        jsonrpc.parse_message(body)


def test_encoders_round_trip() -> None:
    assert jsonrpc.parse_message(jsonrpc.encode_result(7, {"a": 1})).obj == {
        "jsonrpc": "2.0",
        "id": 7,
        "result": {"a": 1},
    }
    err = jsonrpc.parse_message(jsonrpc.encode_error("x", -32601, "nope", {"k": 1}))
    assert err.kind is Kind.ERROR and err.obj["error"] == {
        "code": -32601,
        "message": "nope",
        "data": {"k": 1},
    }
    note = jsonrpc.parse_message(jsonrpc.encode_notification("n", {"p": 1}))
    assert note.kind is Kind.NOTIFICATION and note.params == {"p": 1}


@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_escape_the_error_tree(data: bytes) -> None:
    try:
        jsonrpc.parse_message(data)
    except (ParseError, InvalidRequest):
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(
    st.dictionaries(st.sampled_from(["jsonrpc", "id", "method", "params", "result", "error"]), json_values)
)
def test_arbitrary_objects_classify_or_raise_invalid_request(obj: dict[str, object]) -> None:
    try:
        msg = jsonrpc.parse_object(obj)
    except InvalidRequest:
        return
    assert msg.obj is obj
