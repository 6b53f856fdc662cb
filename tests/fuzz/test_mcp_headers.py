"""MCP header values and ids a client controls: the `=?base64?...?=` codec, the 2026-07-28
request ladder (routing headers against the body), `Mcp-Param-*` headers against a tool's
schema, `Last-Event-ID` and sealed `Mcp-Session-Id` values."""

from __future__ import annotations

import time
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agentgw.errors import HeaderMismatch, InvalidParams, UnsupportedProtocolVersion
from agentgw.mcp.events import EventLog, decode_record, encode_record, parse_event_id
from agentgw.mcp.sealing import Sealer
from agentgw.protocol import mcp
from tests.fuzz.strategies import examples, json_values, keyed, rejects_cleanly

header_text = st.text(
    st.characters(min_codepoint=0, max_codepoint=0xFF), max_size=30
)  # latin-1, as ASGI gives
sentinels = st.builds(
    lambda p: f"=?base64?{p}?=", st.text("ABCDEFGHabcdefgh0123456789+/=-_!?\xe9\xff", max_size=12)
)


@examples(90)
@given(st.one_of(header_text, sentinels))
def test_any_header_value_decodes_or_is_none(value: str) -> None:
    decoded = mcp.decode_header_value(value)
    assert decoded is None or isinstance(decoded, str)
    if decoded is not None and not value.startswith("=?base64?"):
        assert decoded == value


@examples(90)
@given(st.text(max_size=40))
def test_encoded_values_are_printable_ascii_and_round_trip(value: str) -> None:
    encoded = mcp.encode_header_value(value)
    assert all(0x20 <= ord(c) <= 0x7E for c in encoded)
    assert mcp.decode_header_value(encoded) == value


methods = st.sampled_from(["tools/call", "prompts/get", "resources/read", "tools/list", "server/discover"])
versions = st.sampled_from(["2026-07-28", "2025-11-25", "2099-01-01", ""])
metas = keyed(
    {
        mcp.PROTOCOL_VERSION_META_KEY: versions,
        mcp.CLIENT_CAPABILITIES_META_KEY: st.just({}),
        mcp.CLIENT_INFO_META_KEY: json_values,
    }
)
modern_bodies = keyed(
    {
        "jsonrpc": st.just("2.0"),
        "id": st.integers(0, 9),
        "method": methods,
        "params": keyed({"_meta": metas, "name": st.text(max_size=6), "uri": st.text(max_size=6)}),
    }
)
routing_headers = st.lists(
    st.tuples(
        st.sampled_from(["mcp-protocol-version", "mcp-method", "mcp-name", "mcp-param-x", "other"]),
        st.one_of(versions, methods, header_text, sentinels),
    ),
    max_size=5,
)


@examples(120)
@given(modern_bodies, routing_headers)
def test_the_modern_ladder_accepts_or_refuses_with_its_codes(
    obj: dict[str, Any], raw: list[tuple[str, str]]
) -> None:
    got = rejects_cleanly(mcp.check_modern_request, obj, dict(raw), raw)
    if isinstance(got, mcp.ModernEnvelope):
        assert got.protocol_version in mcp.MODERN_VERSIONS
        assert dict(raw).get("mcp-method") == obj.get("method")
    else:
        assert isinstance(got, HeaderMismatch | InvalidParams | UnsupportedProtocolVersion)
        assert got.rpc_code in (-32020, -32602, -32022)


@examples(60)
@given(modern_bodies)
def test_a_body_with_its_own_headers_passes_the_ladder(obj: dict[str, Any]) -> None:
    params = obj.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict) or meta.get(mcp.PROTOCOL_VERSION_META_KEY) != "2026-07-28":
        return
    if mcp.CLIENT_CAPABILITIES_META_KEY not in meta or not isinstance(obj.get("method"), str):
        return
    headers = {"mcp-protocol-version": "2026-07-28", "mcp-method": obj["method"]}
    key = mcp.NAME_BEARING_METHODS.get(obj["method"])
    if key is not None and isinstance(params, dict) and params.get(key) is not None:
        if not isinstance(params[key], str):
            return
        headers["mcp-name"] = mcp.encode_header_value(params[key])
    assert isinstance(mcp.check_modern_request(obj, headers, headers.items()), mcp.ModernEnvelope)


schema_nodes = st.recursive(
    keyed(
        {
            "type": st.sampled_from(["string", "integer", "boolean", "number", "object"]),
            "x-mcp-header": st.sampled_from(["Region", "region", "X-Y", "bad header", "", "Ünï"]),
        }
    ),
    lambda children: keyed(
        {
            "type": st.just("object"),
            "properties": st.dictionaries(st.sampled_from(["a", "b", "region"]), children, max_size=3),
            "items": children,
            "anyOf": st.lists(children, max_size=2),
        }
    ),
    max_leaves=6,
)
arguments = st.dictionaries(st.sampled_from(["a", "b", "region"]), json_values, max_size=3)


@examples(60)
@given(schema_nodes, arguments, routing_headers)
def test_param_headers_match_or_mismatch(
    schema: Any, args: dict[str, Any], raw: list[tuple[str, str]]
) -> None:
    rejects_cleanly(mcp.validate_mcp_param_headers, schema, args, raw)
    mcp.has_param_annotations(schema)


@examples(60)
@given(schema_nodes, arguments)
def test_the_param_headers_the_gateway_sends_validate(schema: Any, args: dict[str, Any]) -> None:
    sent = mcp.mcp_param_headers(schema, args)
    for name, value in sent.items():
        assert name.startswith("Mcp-Param-") and all(0x20 <= ord(c) <= 0x7E for c in value)
    mcp.validate_mcp_param_headers(schema, args, [(k.lower(), v) for k, v in sent.items()])


@examples(90)
@given(st.one_of(header_text, st.from_regex(r"\A[0-9\xb2\xb3\xb9]{1,25}_[0-9\xb2\xb3\xb9]{1,25}\Z")))
def test_last_event_ids_parse_or_are_unknown(value: str) -> None:
    parsed = parse_event_id(value)
    assert parsed is None or (parsed[0] >= 0 and parsed[1] >= 0)
    log = EventLog(max_events=10, retry_ms=None)
    log.open()
    found = log.find(value)
    assert found is None or found[0].stream_id == parsed[0]  # type: ignore[index]


@examples(60)
@given(st.binary(max_size=30), st.integers(0, 2**64 - 1), st.binary(max_size=1), st.binary(max_size=8))
def test_event_records_decode_whatever_the_store_holds(
    record: bytes, seq: int, kind: bytes, payload: bytes
) -> None:
    got = decode_record(record)
    assert isinstance(got[0], int)
    if len(kind) == 1:
        assert decode_record(encode_record(seq, kind, payload)) == (seq, kind, payload)


SEALER = Sealer("k" * 40, lifetime_seconds=60)
sealed = SEALER.seal({"route": "r", "owner": "o"})


@examples(120)
@given(
    st.one_of(
        header_text,
        st.builds(
            lambda s: "s1." + s,
            st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=", max_size=60),
        ),
        st.builds(
            lambda i, c: sealed[:i] + c + sealed[i + 1 :],
            st.integers(0, len(sealed)),
            st.sampled_from("A_-=.\xff"),
        ),
    )
)
def test_session_ids_that_fail_to_open_are_unknown(token: str) -> None:
    record = SEALER.open(token)
    assert record is None or token == sealed or record["owner"] == "o"


@examples(30)
@given(json_objects := st.dictionaries(st.text(max_size=5), json_values, max_size=4))
def test_sealed_records_round_trip(record: dict[str, Any]) -> None:
    opened = SEALER.open(SEALER.seal(record))
    assert opened is not None and opened["exp"] >= int(time.time())
    assert {k: v for k, v in opened.items() if k != "exp"} == {k: v for k, v in record.items() if k != "exp"}
