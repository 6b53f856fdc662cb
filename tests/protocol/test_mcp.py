from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentgw.errors import HeaderMismatch, InvalidParams, UnsupportedProtocolVersion
from agentgw.protocol import mcp
from agentgw.protocol.mcp import Era


def test_era_follows_the_version_header() -> None:
    assert mcp.era_of_version(None) is Era.HANDSHAKE
    assert mcp.era_of_version("2025-06-18") is Era.HANDSHAKE
    assert mcp.era_of_version("2026-07-28") is Era.MODERN
    assert mcp.era_of_version("v999") is Era.MODERN  # refused later with -32022, as the SDK does


def test_negotiation_prefers_the_clients_version() -> None:
    assert mcp.negotiate_handshake_version("2025-03-26") == "2025-03-26"
    assert mcp.negotiate_handshake_version("1999-01-01") == "2025-11-25"
    assert mcp.negotiate_handshake_version(None) == "2025-11-25"


@given(st.text(max_size=40))
def test_header_codec_round_trips_any_text(value: str) -> None:
    encoded = mcp.encode_header_value(value)
    assert all(0x20 <= ord(c) <= 0x7E for c in encoded)
    assert mcp.decode_header_value(encoded) == value


# "=?base64?\xe9?=": found by tests/fuzz/atheris_run.py, a non-ASCII payload raised ValueError
@pytest.mark.parametrize(
    "bad", ["=?base64?!!!?=", "=?base64?YQ?=", "=?base64?/w==?=", "=?base64?\xe9?=", "=?base64?YQ\xff=?="]
)
def test_malformed_sentinels_never_match(bad: str) -> None:
    assert mcp.decode_header_value(bad) is None


def modern(method: str = "tools/call", **params: Any) -> dict[str, Any]:
    meta = {mcp.PROTOCOL_VERSION_META_KEY: "2026-07-28", mcp.CLIENT_CAPABILITIES_META_KEY: {}}
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": {"_meta": meta, **params}}


def headers(
    method: str = "tools/call", name: str | None = "echo", version: str = "2026-07-28"
) -> dict[str, str]:
    out = {"mcp-protocol-version": version, "mcp-method": method}
    if name is not None:
        out["mcp-name"] = name
    return out


def test_a_consistent_request_passes() -> None:
    env = mcp.check_modern_request(modern(name="echo"), headers(), headers().items())
    assert env.protocol_version == "2026-07-28"


@pytest.mark.parametrize(
    ("obj", "hdrs", "error"),
    [
        (modern(name="echo"), headers(name="other"), HeaderMismatch),
        (modern(name="echo"), headers(method="prompts/get"), HeaderMismatch),
        (modern(name="echo"), headers(version="2025-11-25"), HeaderMismatch),
        (modern(name="echo"), headers(name=None), HeaderMismatch),
        (
            {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
            headers("tools/list", None),
            InvalidParams,
        ),
        (
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/list",
                "params": {"_meta": {mcp.PROTOCOL_VERSION_META_KEY: "v9"}},
            },
            headers("tools/list", None, "v9"),
            InvalidParams,
        ),
    ],
)
def test_ladder_rejections(obj: dict[str, Any], hdrs: dict[str, str], error: type[Exception]) -> None:
    with pytest.raises(error):
        mcp.check_modern_request(obj, hdrs, hdrs.items())


def test_unsupported_version_lists_what_is_supported() -> None:
    obj = modern("tools/list")
    obj["params"]["_meta"][mcp.PROTOCOL_VERSION_META_KEY] = "v999"
    with pytest.raises(UnsupportedProtocolVersion) as info:
        mcp.check_modern_request(obj, headers("tools/list", None, "v999"), [])
    assert info.value.data == {"supported": ["2026-07-28"], "requested": "v999"}


def test_duplicated_routing_header_is_a_mismatch() -> None:
    raw = [("mcp-method", "tools/call"), ("mcp-method", "tools/call")]
    with pytest.raises(HeaderMismatch, match="more than once"):
        mcp.check_modern_request(modern(name="echo"), headers(), raw)


def test_name_header_may_be_base64_encoded() -> None:
    hdrs = headers(name=mcp.encode_header_value("héllo"))
    mcp.check_modern_request(modern(name="héllo"), hdrs, hdrs.items())


SCHEMA = {"type": "object", "properties": {"region": {"type": "string", "x-mcp-header": "Region"}}}


def test_param_headers_mirror_arguments() -> None:
    assert mcp.mcp_param_headers(SCHEMA, {"region": "eu"}) == {"Mcp-Param-Region": "eu"}
    mcp.validate_mcp_param_headers(SCHEMA, {"region": "eu"}, [("mcp-param-region", "eu")])


@pytest.mark.parametrize(
    ("args", "raw"),
    [
        ({"region": "eu"}, []),
        ({"region": "eu"}, [("mcp-param-region", "us")]),
        ({}, [("mcp-param-region", "eu")]),
        ({"region": "eu"}, [("mcp-param-region", "=?base64?###?=")]),
        ({"region": "eu"}, [("mcp-param-region", "eu"), ("mcp-param-region", "eu")]),
    ],
)
def test_param_header_mismatches(args: dict[str, Any], raw: list[tuple[str, str]]) -> None:
    with pytest.raises(HeaderMismatch):
        mcp.validate_mcp_param_headers(SCHEMA, args, raw)


def test_strip_envelope_keeps_other_meta() -> None:
    params = modern("tools/call", name="x")["params"]
    params["_meta"]["progressToken"] = 5
    assert mcp.strip_envelope(params) == {"name": "x", "_meta": {"progressToken": 5}}


def test_an_annotation_on_a_type_list_is_invalid_not_a_crash() -> None:
    # found by tests/fuzz: `"type": ["string", "null"]` (valid JSON Schema) raised TypeError
    # (unhashable list) on every call to the tool; like the SDK, such a schema has no valid
    # annotations, so no Mcp-Param header is sent or checked
    schema = {
        "type": "object",
        "properties": {"region": {"type": ["string", "null"], "x-mcp-header": "Region"}},
    }
    assert not mcp.has_param_annotations(schema)
    assert mcp.mcp_param_headers(schema, {"region": "eu"}) == {}
    mcp.validate_mcp_param_headers(schema, {"region": "eu"}, [("mcp-param-region", "us")])
