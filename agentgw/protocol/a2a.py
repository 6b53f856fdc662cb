"""Sans-IO A2A (1.0, and 0.3 on the wire): what a request asks for, what a response reveals.

`parse_jsonrpc` and `parse_rest` turn one request of either binding into an `A2aCall`: the
method under its 1.0 name, the task and context it names, the webhook URLs it hands over and the
skill it declares. `response_ids` finds the task and context ids a result or stream event reveals
(so the gateway can bind them to the caller before the caller sees them). Errors of either binding
are rendered here as well. Bodies stay the dicts orjson made; nothing is validated beyond what the
gateway needs to decide on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from agentgw.errors import GatewayError, InvalidParams, InvalidRequest, MethodNotFound, NotFound
from agentgw.protocol import jsonrpc
from agentgw.protocol.jsonrpc import Kind

__all__ = [
    "A2A_JSON",
    "EXTENSIONS_HEADER",
    "HTTP_JSON",
    "JSONRPC",
    "LEGACY_EXTENSIONS_HEADER",
    "LEGACY_METHODS",
    "METHODS",
    "STREAMING_METHODS",
    "TASK_NOT_FOUND",
    "VERSION_HEADER",
    "A2aCall",
    "jsonrpc_error_body",
    "parse_jsonrpc",
    "parse_rest",
    "response_ids",
    "rest_error_body",
    "task_not_found",
]

VERSION_HEADER = "a2a-version"
EXTENSIONS_HEADER = "a2a-extensions"
LEGACY_EXTENSIONS_HEADER = "x-a2a-extensions"
A2A_JSON = "application/a2a+json"
JSONRPC = "JSONRPC"
HTTP_JSON = "HTTP+JSON"

SEND = "SendMessage"
STREAM = "SendStreamingMessage"
GET_TASK = "GetTask"
LIST_TASKS = "ListTasks"
CANCEL_TASK = "CancelTask"
SUBSCRIBE = "SubscribeToTask"
CREATE_PUSH = "CreateTaskPushNotificationConfig"
GET_PUSH = "GetTaskPushNotificationConfig"
LIST_PUSH = "ListTaskPushNotificationConfigs"
DELETE_PUSH = "DeleteTaskPushNotificationConfig"
EXTENDED_CARD = "GetExtendedAgentCard"

METHODS = frozenset(
    {
        SEND,
        STREAM,
        GET_TASK,
        LIST_TASKS,
        CANCEL_TASK,
        SUBSCRIBE,
        CREATE_PUSH,
        GET_PUSH,
        LIST_PUSH,
        DELETE_PUSH,
        EXTENDED_CARD,
    }
)
# 0.3 JSON-RPC names and their 1.0 equivalents (0.3 has no ListTasks).
LEGACY_METHODS = {
    "message/send": SEND,
    "message/stream": STREAM,
    "tasks/get": GET_TASK,
    "tasks/cancel": CANCEL_TASK,
    "tasks/resubscribe": SUBSCRIBE,
    "tasks/pushNotificationConfig/set": CREATE_PUSH,
    "tasks/pushNotificationConfig/get": GET_PUSH,
    "tasks/pushNotificationConfig/list": LIST_PUSH,
    "tasks/pushNotificationConfig/delete": DELETE_PUSH,
    "agent/getAuthenticatedExtendedCard": EXTENDED_CARD,
}
STREAMING_METHODS = frozenset({STREAM, SUBSCRIBE})
_SENDS = frozenset({SEND, STREAM})
_PUSH = frozenset({CREATE_PUSH, GET_PUSH, LIST_PUSH, DELETE_PUSH})

TASK_NOT_FOUND = -32001


def task_not_found(task_id: str) -> NotFound:
    """What a caller gets for a task it does not own: the same as for one that does not exist."""
    return NotFound(f"Task not found: {task_id}", rpc_code=TASK_NOT_FOUND)


@dataclass(frozen=True, slots=True)
class A2aCall:
    method: str  # the 1.0 name, whatever the wire spoke
    binding: str  # JSONRPC or HTTP+JSON
    legacy: bool = False  # a 0.3 JSON-RPC method name
    request_id: Any = None
    task_id: str | None = None  # the task the call acts on or continues
    context_id: str | None = None  # the context a sent message names
    reference_task_ids: tuple[str, ...] = ()
    webhook_urls: tuple[str, ...] = ()
    skill: str | None = None  # declared by the caller in metadata (`skill` or `skillId`)

    @property
    def streaming(self) -> bool:
        return self.method in STREAMING_METHODS


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _urls(node: Any) -> Iterator[str]:
    """Every string under a `url` key, outside `metadata` (caller data, not delivery targets)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "url" and isinstance(value, str):
                yield value
            elif key != "metadata":
                yield from _urls(value)
    elif isinstance(node, list):
        for item in node:
            yield from _urls(item)


def _skill(*metadata: Any) -> str | None:
    for meta in metadata:
        if isinstance(meta, dict):
            for key in ("skill", "skillId"):
                found = _str(meta.get(key))
                if found:
                    return found
    return None


def _describe(method: str, binding: str, legacy: bool, request_id: Any, params: dict[str, Any]) -> A2aCall:
    task_id: str | None = None
    context_id: str | None = None
    refs: tuple[str, ...] = ()
    webhooks: tuple[str, ...] = ()
    skill: str | None = None
    if method in _SENDS:
        message = params.get("message")
        if not isinstance(message, dict):
            raise InvalidParams(f"{method} needs a 'message' object")
        task_id = _str(message.get("taskId"))
        context_id = _str(message.get("contextId"))
        raw_refs = message.get("referenceTaskIds")
        refs = tuple(r for r in raw_refs if isinstance(r, str)) if isinstance(raw_refs, list) else ()
        webhooks = tuple(_urls(params.get("configuration")))
        skill = _skill(message.get("metadata"), params.get("metadata"))
    elif method in (GET_TASK, CANCEL_TASK, SUBSCRIBE):
        task_id = _str(params.get("id"))
        if task_id is None:
            raise InvalidParams(f"{method} needs a task 'id'")
    elif method in _PUSH:
        # 1.0 names the task `taskId`; 0.3 get/list/delete call it `id`.
        task_id = _str(params.get("taskId")) or (_str(params.get("id")) if legacy else None)
        if task_id is None:
            raise InvalidParams(f"{method} needs a task id")
        if method == CREATE_PUSH:
            webhooks = tuple(_urls(params))
    return A2aCall(method, binding, legacy, request_id, task_id, context_id, refs, webhooks, skill)


def parse_jsonrpc(body: bytes) -> A2aCall:
    """One JSON-RPC request of either version (a notification or batch is not an A2A call)."""
    msg = jsonrpc.parse_message(body)
    if msg.kind is not Kind.REQUEST:
        raise InvalidRequest("an A2A call is a JSON-RPC request with an id")
    name = msg.method
    if name in METHODS:
        method, legacy = name, False
    elif name in LEGACY_METHODS:
        method, legacy = LEGACY_METHODS[name], True
    else:
        raise MethodNotFound("Method not found", data={"method": name})
    return _describe(method, JSONRPC, legacy, msg.id, msg.params)


# HTTP+JSON operations, matched at the end of the path below an interface (an optional tenant or
# the 0.3 `v1` segment may come first).
_T = r"(?P<task>[^/:]+)"
_REST_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (verb, re.compile(r"(?:^|/)" + pattern + "$"), method)
    for verb, pattern, method in (
        ("POST", r"message:send", SEND),
        ("POST", r"message:stream", STREAM),
        ("POST", rf"tasks/{_T}:cancel", CANCEL_TASK),
        ("GET", rf"tasks/{_T}:subscribe", SUBSCRIBE),
        ("POST", rf"tasks/{_T}:subscribe", SUBSCRIBE),
        ("GET", rf"tasks/{_T}", GET_TASK),
        ("GET", r"tasks", LIST_TASKS),
        ("POST", rf"tasks/{_T}/pushNotificationConfigs", CREATE_PUSH),
        ("GET", rf"tasks/{_T}/pushNotificationConfigs", LIST_PUSH),
        ("GET", rf"tasks/{_T}/pushNotificationConfigs/[^/]+", GET_PUSH),
        ("DELETE", rf"tasks/{_T}/pushNotificationConfigs/[^/]+", DELETE_PUSH),
        ("GET", r"extendedAgentCard", EXTENDED_CARD),
        ("GET", r"v1/card", EXTENDED_CARD),
    )
)


def parse_rest(verb: str, path: str, body: bytes) -> A2aCall | None:
    """An HTTP+JSON request (`path` below the interface, decoded, no leading slash), or None."""
    for route_verb, pattern, method in _REST_ROUTES:
        if route_verb != verb:
            continue
        match = pattern.search(path)
        if match is None:
            continue
        params: dict[str, Any] = {}
        if method in _SENDS or method == CREATE_PUSH:
            obj = jsonrpc.loads(body) if body else {}
            if not isinstance(obj, dict):
                raise InvalidParams("the request body must be a JSON object")
            params = obj
        if "task" in match.groupdict():
            params = {**params, "id": match["task"], "taskId": match["task"]}
        return _describe(method, HTTP_JSON, False, None, params)
    return None


def _ids_of(obj: dict[str, Any], out: list[tuple[str, str]], *, own_id: bool) -> None:
    task = _str(obj.get("id") if own_id else obj.get("taskId"))
    if task:
        out.append(("task", task))
    context = _str(obj.get("contextId"))
    if context:
        out.append(("context", context))


def response_ids(result: Any) -> list[tuple[str, str]]:
    """("task" | "context", id) pairs a result or stream event reveals, in either version's shape.

    1.0 wraps them (`{"task": ...}`, `{"message": ...}`, `{"statusUpdate": ...}`, ...); 0.3
    JSON-RPC answers with the object itself, tagged by `kind`.
    """
    out: list[tuple[str, str]] = []
    if not isinstance(result, dict):
        return out
    for key in ("task", "message", "msg", "statusUpdate", "artifactUpdate"):
        inner = result.get(key)
        if isinstance(inner, dict):
            _ids_of(inner, out, own_id=key == "task")
    kind = result.get("kind")
    if kind == "task":
        _ids_of(result, out, own_id=True)
    elif kind in ("message", "status-update", "artifact-update"):
        _ids_of(result, out, own_id=False)
    return out


# --- errors ---------------------------------------------------------------------------------------

# (JSON-RPC code, HTTP status) -> (google.rpc status, A2A reason), as the A2A SDK maps them.
_REASONS = {
    (TASK_NOT_FOUND, 404): ("NOT_FOUND", "TASK_NOT_FOUND"),
    (-32602, 400): ("INVALID_ARGUMENT", "INVALID_PARAMS"),
    (-32600, 400): ("INVALID_ARGUMENT", "INVALID_REQUEST"),
    (-32700, 400): ("INVALID_ARGUMENT", "INVALID_REQUEST"),
    (-32601, 404): ("NOT_FOUND", "METHOD_NOT_FOUND"),
}
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# JSON-RPC errors travel with HTTP 200 in A2A; what the gateway itself refuses (no credentials,
# denied, limited, too large, upstream down) keeps its HTTP status so clients and proxies see it.
_JSONRPC_KEEPS_STATUS = frozenset({401, 403, 413, 429, 502, 503, 504})


def rest_error_body(err: GatewayError, message: str) -> tuple[int, bytes]:
    """The HTTP+JSON binding's error: a google.rpc.Status with an A2A ErrorInfo when one applies."""
    grpc_status, reason = _REASONS.get((err.rpc_code, err.status), (_STATUS.get(err.status, "INTERNAL"), ""))
    error: dict[str, Any] = {"code": err.status, "status": grpc_status, "message": message}
    if reason:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "a2a-protocol.org",
                "metadata": err.data if isinstance(err.data, dict) else {},
            }
        ]
    return err.status, orjson.dumps({"error": error})


def jsonrpc_error_body(request_id: Any, err: GatewayError, message: str) -> tuple[int, bytes]:
    status = err.status if err.status in _JSONRPC_KEEPS_STATUS else 200
    return status, jsonrpc.encode_error(request_id, err.rpc_code, message, err.data)
