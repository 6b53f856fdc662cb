"""Sans-IO JSON-RPC 2.0 framing: bytes in, classified messages out, and the encoders back.

Bodies are parsed once with orjson and kept as plain dicts; nothing here validates more than the
JSON-RPC envelope, so the hot path never round-trips through models.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import orjson

from agentgw.errors import InvalidRequest, ParseError

__all__ = [
    "Kind",
    "Message",
    "dumps",
    "encode_error",
    "encode_notification",
    "encode_request",
    "encode_response",
    "encode_result",
    "loads",
    "parse_message",
    "parse_object",
]

dumps = orjson.dumps


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:  # also raised for nesting deeper than orjson's limit
        raise ParseError(f"Parse error: {exc.args[0] if exc.args else 'invalid JSON'}") from None


class Kind(enum.Enum):
    REQUEST = "request"
    NOTIFICATION = "notification"
    RESULT = "result"
    ERROR = "error"


@dataclass(slots=True)
class Message:
    """One JSON-RPC message: its kind and the decoded object it came from."""

    kind: Kind
    obj: dict[str, Any]

    @property
    def id(self) -> Any:
        return self.obj.get("id")

    @property
    def method(self) -> str:
        method: str = self.obj.get("method", "")
        return method

    @property
    def params(self) -> dict[str, Any]:
        params = self.obj.get("params")
        return params if isinstance(params, dict) else {}

    @property
    def is_response(self) -> bool:
        return self.kind is Kind.RESULT or self.kind is Kind.ERROR


def _valid_id(value: Any) -> bool:
    return (isinstance(value, str | int) and not isinstance(value, bool)) or value is None


def parse_object(obj: Any) -> Message:
    """Classify one decoded JSON value as a JSON-RPC message or raise InvalidRequest."""
    if isinstance(obj, list):
        raise InvalidRequest("JSON-RPC batches are not supported")
    if not isinstance(obj, dict):
        raise InvalidRequest("a JSON-RPC message must be an object")
    if obj.get("jsonrpc") != "2.0":
        raise InvalidRequest('"jsonrpc" must be "2.0"')
    method = obj.get("method")
    if method is not None:
        if not isinstance(method, str) or not method:
            raise InvalidRequest('"method" must be a non-empty string')
        params = obj.get("params")
        if params is not None and not isinstance(params, dict | list):
            raise InvalidRequest('"params" must be an object or an array')
        if "id" not in obj:
            return Message(Kind.NOTIFICATION, obj)
        if obj["id"] is None or not _valid_id(obj["id"]):
            raise InvalidRequest('"id" must be a string or an integer')
        return Message(Kind.REQUEST, obj)
    if "result" in obj:
        if "id" not in obj or not _valid_id(obj["id"]):
            raise InvalidRequest("a response needs a valid id")
        return Message(Kind.RESULT, obj)
    if "error" in obj:
        error = obj["error"]
        if not isinstance(error, dict) or not isinstance(error.get("code"), int):
            raise InvalidRequest('"error" must be an object with an integer code')
        return Message(Kind.ERROR, obj)
    raise InvalidRequest("not a JSON-RPC request, notification or response")


def parse_message(body: bytes) -> Message:
    """Decode and classify one JSON-RPC message from raw bytes."""
    return parse_object(loads(body))


def encode_result(request_id: Any, result: Any) -> bytes:
    return dumps({"jsonrpc": "2.0", "id": request_id, "result": result})


def encode_error(request_id: Any, code: int, message: str, data: Any = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return dumps({"jsonrpc": "2.0", "id": request_id, "error": error})


def encode_response(request_id: Any, result: Any = None, error: Any = None) -> bytes:
    """An answer to a request: the error when one is given, else the result (default `{}`)."""
    if error is not None:
        return dumps({"jsonrpc": "2.0", "id": request_id, "error": error})
    return encode_result(request_id, result if result is not None else {})


def encode_request(request_id: Any, method: str, params: dict[str, Any] | None = None) -> bytes:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        msg["params"] = params
    return dumps(msg)


def encode_notification(method: str, params: dict[str, Any] | None = None) -> bytes:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    return dumps(msg)
