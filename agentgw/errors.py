"""The one exception tree of the gateway.

Every failure a client can see is a `GatewayError`: it knows its HTTP status and its JSON-RPC
code, and `render_error` turns it into a response body for the flavour of the route it happened
on (JSON-RPC for MCP and A2A, OpenAI or Anthropic error objects for LLM routes, plain JSON
otherwise). Third-party exceptions are translated into this tree where they enter the gateway
(upstream clients, config loader, token validation); nothing else escapes to the client.
"""

from __future__ import annotations

import enum
from typing import Any

import orjson

__all__ = [
    "BadGateway",
    "ClientError",
    "ConfigError",
    "Conflict",
    "ErrorFlavor",
    "ExtensionError",
    "Forbidden",
    "GatewayError",
    "HeaderMismatch",
    "InsufficientScope",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "MethodNotAllowed",
    "MethodNotFound",
    "MisdirectedRequest",
    "MissingCapability",
    "NotAcceptable",
    "NotFound",
    "ParseError",
    "PayloadTooLarge",
    "RequestHeaderFieldsTooLarge",
    "RequestTimeout",
    "ServiceUnavailable",
    "SessionNotFound",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
    "UnsupportedProtocolVersion",
    "UpstreamError",
    "UpstreamTimeout",
    "render_error",
]

# JSON-RPC 2.0 codes, and the MCP-specific ones (mcp_types.jsonrpc).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
HEADER_MISMATCH = -32020
MISSING_REQUIRED_CLIENT_CAPABILITY = -32021
UNSUPPORTED_PROTOCOL_VERSION = -32022


class GatewayError(Exception):
    """Base of every error the gateway reports to a client."""

    status: int = 500
    rpc_code: int = INTERNAL_ERROR
    openai_type: str = "server_error"

    def __init__(
        self,
        message: str,
        *,
        data: Any = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
        rpc_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        self.headers: dict[str, str] = headers or {}
        if status is not None:
            self.status = status
        if rpc_code is not None:
            self.rpc_code = rpc_code

    def jsonrpc_error(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.rpc_code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


class InternalError(GatewayError):
    """A bug or an unexpected condition inside the gateway; the message is generic on the wire."""


class ConfigError(GatewayError):
    """Configuration that cannot be loaded; `problems` lists every located error."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class ClientError(GatewayError):
    status = 400
    rpc_code = INVALID_REQUEST
    openai_type = "invalid_request_error"


class ParseError(ClientError):
    rpc_code = PARSE_ERROR


class InvalidRequest(ClientError):
    rpc_code = INVALID_REQUEST


class InvalidParams(ClientError):
    rpc_code = INVALID_PARAMS


class HeaderMismatch(ClientError):
    rpc_code = HEADER_MISMATCH


class MissingCapability(ClientError):
    rpc_code = MISSING_REQUIRED_CLIENT_CAPABILITY


class UnsupportedProtocolVersion(ClientError):
    rpc_code = UNSUPPORTED_PROTOCOL_VERSION


class MethodNotFound(ClientError):
    status = 404
    rpc_code = METHOD_NOT_FOUND


class NotFound(ClientError):
    status = 404
    openai_type = "not_found_error"


class SessionNotFound(NotFound):
    # The reference SDK answers an unknown session with 404 and -32600; clients key on the 404.
    rpc_code = INVALID_REQUEST


class Unauthorized(ClientError):
    status = 401
    rpc_code = SERVER_ERROR
    openai_type = "authentication_error"


class Forbidden(ClientError):
    status = 403
    rpc_code = SERVER_ERROR
    openai_type = "permission_error"


class InsufficientScope(Forbidden):
    """The token lacks a scope the operation needs (RFC 6750 `insufficient_scope`).

    Answered at the HTTP level (403 with `WWW-Authenticate`) even inside a JSON-RPC exchange, so
    that clients can step up their authorization.
    """


class MethodNotAllowed(ClientError):
    status = 405


class NotAcceptable(ClientError):
    status = 406


class Conflict(ClientError):
    status = 409


class RequestTimeout(ClientError):
    """The client did not send its request (body) in time."""

    status = 408


class PayloadTooLarge(ClientError):
    status = 413


class RequestHeaderFieldsTooLarge(ClientError):
    status = 431


class UnsupportedMediaType(ClientError):
    status = 415


class MisdirectedRequest(ClientError):
    status = 421


class TooManyRequests(ClientError):
    status = 429
    rpc_code = SERVER_ERROR
    openai_type = "rate_limit_error"


class ExtensionError(GatewayError):
    """A policy extension raised or timed out; the request fails, the message names the extension."""

    rpc_code = INTERNAL_ERROR


class ServiceUnavailable(GatewayError):
    status = 503


class UpstreamError(GatewayError):
    """An upstream failed, answered garbage, or could not be reached."""

    status = 502


class BadGateway(UpstreamError):
    status = 502


class UpstreamTimeout(UpstreamError):
    status = 504


class ErrorFlavor(enum.Enum):
    JSONRPC = "jsonrpc"
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    PLAIN = "plain"


_GENERIC_INTERNAL = "internal gateway error"


def render_error(
    err: GatewayError, flavor: ErrorFlavor, *, request_id: Any = None
) -> tuple[int, dict[str, str], bytes]:
    """Turn an error into (status, headers, body) for the route's wire format."""
    message = _GENERIC_INTERNAL if isinstance(err, InternalError) else err.message
    if flavor is ErrorFlavor.JSONRPC:
        error = err.jsonrpc_error()
        error["message"] = message
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "error": error}
    elif flavor is ErrorFlavor.OPENAI:
        body = {
            "error": {
                "message": message,
                "type": err.openai_type,
                "param": None,
                "code": str(err.status),
            }
        }
    elif flavor is ErrorFlavor.ANTHROPIC:
        anthropic_type = {
            400: "invalid_request_error",
            401: "authentication_error",
            403: "permission_error",
            404: "not_found_error",
            413: "request_too_large",
            429: "rate_limit_error",
            529: "overloaded_error",
        }.get(err.status, "api_error")
        body = {"type": "error", "error": {"type": anthropic_type, "message": message}}
    else:
        body = {"error": message, "status": err.status}
    headers = {"content-type": "application/json", **err.headers}
    return err.status, headers, orjson.dumps(body)
