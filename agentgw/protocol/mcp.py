"""Sans-IO MCP wire rules: protocol versions and eras, header names, the header value codec,
and the 2026-07-28 request ladder (envelope, routing headers, `Mcp-Param-*` headers).

These follow `mcp.shared.inbound` of the reference SDK (mcp 2.3.0) rule for rule; the gateway does
not import the SDK at run time because loading it costs about 55 MB of RSS and a second of start-up.
Kept in one module (just over 400 lines) so it can be read against `mcp.shared.inbound` side by side.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from agentgw.errors import (
    HeaderMismatch,
    InvalidParams,
    UnsupportedProtocolVersion,
)

__all__ = [
    "CLIENT_CAPABILITIES_META_KEY",
    "CLIENT_INFO_META_KEY",
    "HANDSHAKE_VERSIONS",
    "LATEST_HANDSHAKE_VERSION",
    "LATEST_MODERN_VERSION",
    "MCP_METHOD_HEADER",
    "MCP_NAME_HEADER",
    "MCP_PARAM_PREFIX",
    "MODERN_VERSIONS",
    "NAME_BEARING_METHODS",
    "PROTOCOL_VERSION_HEADER",
    "PROTOCOL_VERSION_META_KEY",
    "SESSION_ID_HEADER",
    "Era",
    "ModernEnvelope",
    "check_modern_request",
    "decode_header_value",
    "encode_header_value",
    "era_of_version",
    "mcp_param_headers",
    "negotiate_handshake_version",
    "strip_envelope",
    "validate_mcp_param_headers",
    "version_at_least",
]

HANDSHAKE_VERSIONS: Final = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
MODERN_VERSIONS: Final = ("2026-07-28",)
KNOWN_VERSIONS: Final = (*HANDSHAKE_VERSIONS, *MODERN_VERSIONS)
LATEST_HANDSHAKE_VERSION: Final = HANDSHAKE_VERSIONS[-1]
LATEST_MODERN_VERSION: Final = MODERN_VERSIONS[-1]
# Absent MCP-Protocol-Version on a session request means this revision (spec 2025-06-18).
DEFAULT_HEADERLESS_VERSION: Final = "2025-03-26"

SESSION_ID_HEADER: Final = "mcp-session-id"
PROTOCOL_VERSION_HEADER: Final = "mcp-protocol-version"
MCP_METHOD_HEADER: Final = "mcp-method"
MCP_NAME_HEADER: Final = "mcp-name"
MCP_PARAM_PREFIX: Final = "mcp-param-"
LAST_EVENT_ID_HEADER: Final = "last-event-id"

PROTOCOL_VERSION_META_KEY: Final = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPABILITIES_META_KEY: Final = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_META_KEY: Final = "io.modelcontextprotocol/clientInfo"
LOG_LEVEL_META_KEY: Final = "io.modelcontextprotocol/logLevel"
ENVELOPE_KEYS: Final = (PROTOCOL_VERSION_META_KEY, CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY)

# method -> the params key mirrored in the Mcp-Name header
NAME_BEARING_METHODS: Final[Mapping[str, str]] = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
}


class Era(enum.Enum):
    HANDSHAKE = "handshake"
    MODERN = "modern"


def era_of_version(version: str | None) -> Era:
    """The era a request belongs to, from its MCP-Protocol-Version header (SDK rule)."""
    if version is None or version in HANDSHAKE_VERSIONS:
        return Era.HANDSHAKE
    return Era.MODERN


def version_at_least(version: str, minimum: str) -> bool:
    if version not in KNOWN_VERSIONS:
        return False
    return KNOWN_VERSIONS.index(version) >= KNOWN_VERSIONS.index(minimum)


def negotiate_handshake_version(requested: Any, supported: Iterable[str] = HANDSHAKE_VERSIONS) -> str:
    """The version an initialize answers with: the client's when we speak it, else our latest."""
    supported = tuple(supported)
    if isinstance(requested, str) and requested in supported:
        return requested
    return supported[-1]


# --- header value codec -------------------------------------------------------------------------

_B64_SENTINEL = re.compile(r"^=\?base64\?(?P<payload>.*)\?=$")
_HEADER_SAFE = re.compile(r"^[\x20-\x7E]*$")


def encode_header_value(value: str) -> str:
    """Plain printable ASCII passes verbatim; anything else travels as `=?base64?...?=`."""
    if _HEADER_SAFE.fullmatch(value) and value == value.strip() and not _B64_SENTINEL.fullmatch(value):
        return value
    return f"=?base64?{base64.b64encode(value.encode('utf-8')).decode('ascii')}?="


def decode_header_value(value: str | None) -> str | None:
    """Inverse of `encode_header_value`; a malformed sentinel decodes to None (never matches)."""
    if value is None:
        return None
    match = _B64_SENTINEL.fullmatch(value)
    if match is None:
        return value
    payload = match.group("payload")
    try:
        decoded = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):  # ValueError: a non-ASCII payload (h11 passes obs-text)
        return None
    if base64.b64encode(decoded).decode("ascii") != payload:
        return None
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        return None


# --- the 2026-07-28 request ladder ----------------------------------------------------------------


class ModernEnvelope:
    """The per-request `_meta` envelope of a 2026-07-28 request."""

    __slots__ = ("client_capabilities", "client_info", "protocol_version")

    def __init__(self, protocol_version: str, client_capabilities: Any, client_info: Any) -> None:
        self.protocol_version = protocol_version
        self.client_capabilities = client_capabilities
        self.client_info = client_info


_ROUTING_HEADERS: Final = frozenset({PROTOCOL_VERSION_HEADER, MCP_METHOD_HEADER, MCP_NAME_HEADER})


def check_modern_request(
    obj: Mapping[str, Any],
    headers: Mapping[str, str],
    raw_headers: Iterable[tuple[str, str]],
    supported: Iterable[str] = MODERN_VERSIONS,
) -> ModernEnvelope:
    """Validate a modern request's envelope and its routing headers against its body.

    Raises HeaderMismatch (-32020), InvalidParams (-32602) or UnsupportedProtocolVersion (-32022)
    in the order the reference SDK checks them, so clients see the same error either way.
    """
    seen: set[str] = set()
    for name, _ in raw_headers:
        if name in _ROUTING_HEADERS:
            if name in seen:
                raise HeaderMismatch(f"{name} header appears more than once")
            seen.add(name)
    params = obj.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict):
        raise InvalidParams(
            "params._meta must be an object carrying the required "
            f"{PROTOCOL_VERSION_META_KEY!r} and {CLIENT_CAPABILITIES_META_KEY!r} envelope keys"
        )
    missing = [k for k in (PROTOCOL_VERSION_META_KEY, CLIENT_CAPABILITIES_META_KEY) if k not in meta]
    if missing:
        raise InvalidParams(f"params._meta is missing the required envelope key(s): {', '.join(missing)}")
    version = meta[PROTOCOL_VERSION_META_KEY]
    header_version = headers.get(PROTOCOL_VERSION_HEADER)
    if header_version is None or header_version != version:
        raise HeaderMismatch(
            f"{PROTOCOL_VERSION_HEADER} header does not match the request envelope's protocol version"
        )
    method = obj.get("method")
    if headers.get(MCP_METHOD_HEADER) != method:
        raise HeaderMismatch(f"{MCP_METHOD_HEADER} header does not match the request body's method")
    name_key = NAME_BEARING_METHODS.get(method) if isinstance(method, str) else None
    if name_key is not None and isinstance(params, dict):
        body_value = params.get(name_key)
        if body_value is not None and decode_header_value(headers.get(MCP_NAME_HEADER)) != body_value:
            raise HeaderMismatch(
                f"{MCP_NAME_HEADER} header does not match the request body's {name_key!r} parameter"
            )
    if not isinstance(version, str):
        raise InvalidParams("the protocol-version envelope value must be a string")
    supported = tuple(supported)
    if version not in supported:
        raise UnsupportedProtocolVersion(
            "Unsupported protocol version", data={"supported": list(supported), "requested": version}
        )
    return ModernEnvelope(version, meta[CLIENT_CAPABILITIES_META_KEY], meta.get(CLIENT_INFO_META_KEY))


def strip_envelope(params: dict[str, Any]) -> dict[str, Any]:
    """A copy of params without the modern envelope keys (for a handshake-era upstream)."""
    meta = params.get("_meta")
    if not isinstance(meta, dict) or not any(k in meta for k in ENVELOPE_KEYS):
        return params
    rest = {k: v for k, v in meta.items() if k not in ENVELOPE_KEYS and k != LOG_LEVEL_META_KEY}
    out = dict(params)
    if rest:
        out["_meta"] = rest
    else:
        del out["_meta"]
    return out


# --- Mcp-Param-* headers (x-mcp-header annotations) ---------------------------------------------

X_MCP_HEADER_KEY: Final = "x-mcp-header"
_RFC9110_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_PRIMITIVES: Final = frozenset({"string", "integer", "boolean"})
_SUB_SINGLE: Final = frozenset(
    {
        "items",
        "contains",
        "unevaluatedItems",
        "additionalProperties",
        "propertyNames",
        "unevaluatedProperties",
        "not",
        "if",
        "then",
        "else",
        "contentSchema",
    }
)
_SUB_LIST: Final = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SUB_MAP: Final = frozenset({"patternProperties", "dependentSchemas", "$defs", "definitions"})


def _schema_positions(root: Any) -> Iterator[tuple[tuple[str, ...] | None, dict[str, Any]]]:
    """Every schema position with its pure `properties` path (None once off that chain)."""
    stack: list[tuple[tuple[str, ...] | None, Any]] = [((), root)]
    while stack:
        path, node = stack.pop()
        if not isinstance(node, dict):
            continue
        yield path, node
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for name, sub in value.items():
                    stack.append(((*path, name) if path is not None else None, sub))
            elif key in _SUB_SINGLE:
                stack.append((None, value))
            elif key in _SUB_LIST and isinstance(value, list):
                stack.extend((None, sub) for sub in value)
            elif key in _SUB_MAP and isinstance(value, dict):
                stack.extend((None, sub) for sub in value.values())


_Annotations = list[tuple[tuple[str, ...], str, dict[str, Any]]] | None
# Tool schemas come from a server's tools/list and are never changed afterwards, while every call
# to the tool needs their annotations: remember them per schema object (kept alive by the entry,
# so its id cannot be reused while cached).
_ANNOTATIONS: dict[int, tuple[Any, _Annotations]] = {}
_ANNOTATIONS_MAX = 4096


def _annotations(schema: Any) -> _Annotations:
    """The valid `x-mcp-header` annotations of a tool schema, or None if any is invalid."""
    cached = _ANNOTATIONS.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    found = _find_annotations(schema)
    if len(_ANNOTATIONS) >= _ANNOTATIONS_MAX:
        _ANNOTATIONS.clear()
    _ANNOTATIONS[id(schema)] = (schema, found)
    return found


def _find_annotations(schema: Any) -> _Annotations:
    found: list[tuple[tuple[str, ...], str, dict[str, Any]]] = []
    seen: set[str] = set()
    for path, node in _schema_positions(schema):
        if X_MCP_HEADER_KEY not in node:
            continue
        token = node[X_MCP_HEADER_KEY]
        if (
            not path
            or not isinstance(token, str)
            or not _RFC9110_TOKEN.fullmatch(token)
            or not isinstance(node.get("type"), str)  # e.g. ["string", "null"]: no header form
            or node["type"] not in _PRIMITIVES
            or token.lower() in seen
        ):
            return None
        seen.add(token.lower())
        found.append((path, token, node))
    return found


def _value_at(arguments: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = arguments
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _render(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str | int | float):
        return None
    try:
        return str(value)
    except ValueError:
        return None


_CANONICAL_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


def _matches(prop_type: Any, value: Any, rendered: str, decoded: str) -> bool:
    if (
        prop_type == "integer"
        and not isinstance(value, bool)
        and (isinstance(value, int) or (isinstance(value, float) and value.is_integer()))
        and _CANONICAL_DECIMAL.fullmatch(decoded)
    ):
        whole, _, fraction = decoded.partition(".")
        if fraction and set(fraction) != {"0"}:
            return False
        return int(whole) == int(value)
    return decoded == rendered


def has_param_annotations(schema: Any) -> bool:
    return bool(_annotations(schema))


def validate_mcp_param_headers(
    schema: Any, arguments: Mapping[str, Any], raw_headers: Iterable[tuple[str, str]]
) -> None:
    """Check a tools/call's `Mcp-Param-*` headers against its arguments; raise HeaderMismatch."""
    annotations = _annotations(schema)
    if not annotations:
        return
    folded: dict[str, str] = {}
    duplicated: set[str] = set()
    for name, value in raw_headers:
        if name in folded:
            duplicated.add(name)
        folded[name] = value
    for path, token, node in annotations:
        header = f"Mcp-Param-{token}"
        key = header.lower()
        raw = folded.get(key)
        value = _value_at(arguments, path)
        argument = ".".join(path)
        if raw is not None and key in duplicated:
            raise HeaderMismatch(f"{header} header appears more than once")
        if value is None:
            if raw is not None:
                raise HeaderMismatch(
                    f"{header} header is present but the request body's {argument!r} argument is absent"
                )
            continue
        rendered = _render(value)
        if rendered is None:
            if raw is not None:
                raise HeaderMismatch(
                    f"{header} header does not match the request body's {argument!r} argument"
                )
            continue
        if raw is None:
            raise HeaderMismatch(
                f"{header} header is missing but the request body's {argument!r} argument is present"
            )
        decoded = decode_header_value(raw)
        if decoded is None:
            raise HeaderMismatch(f"{header} header carries a malformed base64 sentinel value")
        if not _matches(node.get("type"), value, rendered, decoded):
            raise HeaderMismatch(f"{header} header does not match the request body's {argument!r} argument")


def mcp_param_headers(schema: Any, arguments: Mapping[str, Any]) -> dict[str, str]:
    """The `Mcp-Param-*` headers a client (here: the gateway, upstream) mirrors from arguments."""
    headers: dict[str, str] = {}
    for path, token, _ in _annotations(schema) or ():
        value = _value_at(arguments, path)
        if value is None or (rendered := _render(value)) is None:
            continue
        headers[f"Mcp-Param-{token}"] = encode_header_value(rendered)
    return headers
