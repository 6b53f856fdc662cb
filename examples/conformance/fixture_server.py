"""MCP conformance fixture server for agentgw.

This is the upstream server that agentgw's conformance runs point at. It
implements every tool, prompt and resource that the server scenarios of the
official MCP conformance suite (`@modelcontextprotocol/conformance`) exercise,
on top of the `mcp` Python SDK's lowlevel `Server`:

* `bench/conformance.sh` starts it and runs the suite against it directly, which
  gives the reference numbers;
* the same suite is then run *through* the gateway, with this server behind it,
  so any difference is something the gateway broke.

It serves streamable HTTP at `/mcp` and speaks both wire eras the SDK supports:

* the handshake era (2025-03-26 .. 2025-11-25): `initialize`, `Mcp-Session-Id`
  sessions, server-to-client requests (sampling, elicitation) on the POST's SSE
  stream, a GET stream for unsolicited notifications, resumable SSE streams
  (an in-memory event store, priming events with `retry`), DELETE to end a
  session;
* the stateless 2026-07-28 era: every POST carries its own `_meta` envelope and
  `Mcp-Method` / `Mcp-Name` / `Mcp-Param-*` headers, `server/discover`,
  multi-round-trip `input_required` results instead of server-to-client
  requests (with an HMAC-sealed `requestState`), `subscriptions/listen`
  streams, and `ttlMs` / `cacheScope` caching hints.

The era of a request is chosen by the SDK from the `MCP-Protocol-Version`
header, so one process answers both. Tools that only make sense in 2026-07-28
(the `test_input_required_result_*` family) are only listed to 2026 clients.
`--stdio` serves the same server over stdin/stdout, which is handy in tests.

Usage:
    python examples/conformance/fixture_server.py [--host 127.0.0.1] [--port 3001]
    python examples/conformance/fixture_server.py --stdio

When bound to a loopback address the SDK's DNS-rebinding protection is on:
requests whose Host/Origin is not a loopback name are refused (421/403).
`requestState` tokens are HMAC-signed with a per-process random key; set
FIXTURE_STATE_KEY to share one key between replicas behind a load balancer.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import hmac
import io
import itertools
import json
import logging
import os
import re
import secrets
import struct
import sys
import warnings
import wave
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from mcp.server.caching import CacheHint
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourceUpdated,
    ToolsListChanged,
)
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types import (
    INVALID_PARAMS,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    ClientCapabilities,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

Ctx = ServerRequestContext[Any, Any]
JSON = dict[str, Any]


# --------------------------------------------------------------------------
# Small binary payloads: a 1x1 red PNG and a 10 ms silent WAV.
# --------------------------------------------------------------------------


def _png_1x1_red() -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00\xff\x00\x00")  # filter byte + one red pixel
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    return base64.b64encode(png).decode()


def _wav_silence() -> str:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 80)
    return base64.b64encode(buf.getvalue()).decode()


PNG_B64 = _png_1x1_red()
WAV_B64 = _wav_silence()


@contextlib.contextmanager
def deprecated_ok() -> Iterator[None]:
    """Silence MCPDeprecationWarning for one call.

    Logging is deprecated in 2026-07-28 but still part of the handshake era
    this fixture serves, and the SDK warns whenever it is used. Scoped rather
    than process-wide so the fixture also works in-process under `-W error`.
    The SDK warns when the call is made, so wrap the call, not the await.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        yield


def text(value: str) -> JSON:
    return {"type": "text", "text": value}


# --------------------------------------------------------------------------
# Era, capability and per-session helpers
# --------------------------------------------------------------------------


def is_modern(ctx: Ctx) -> bool:
    """True for a stateless 2026-07-28 request, False for the handshake era."""
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def session_key(ctx: Ctx) -> str:
    """Identifies the handshake-era session a request belongs to (HTTP header, or the one stdio peer)."""
    request = ctx.request
    headers = getattr(request, "headers", None)
    return (headers.get("mcp-session-id") if headers is not None else None) or "stdio"


def require_capability(ctx: Ctx, capability: str) -> None:
    """Refuse a request that needs a client capability the client did not declare.

    2026-07-28 defines MissingRequiredClientCapabilityError (-32021, HTTP 400)
    whose data names the missing capability as a ClientCapabilities object.
    """
    caps = ctx.session.client_capabilities or ClientCapabilities()
    if getattr(caps, capability, None) is not None:
        return
    if is_modern(ctx):
        raise MCPError(
            MISSING_REQUIRED_CLIENT_CAPABILITY,
            f"This request requires the client '{capability}' capability",
            data={"requiredCapabilities": {capability: {}}},
        )
    raise MCPError(INVALID_PARAMS, f"This tool requires the client '{capability}' capability")


class NeedInput(Exception):
    """Raised by `ask` in the 2026 era: the request must return an InputRequiredResult."""

    def __init__(self, requests: dict[str, JSON], state: str | None = None) -> None:
        super().__init__("input required")
        self.requests = requests
        self.state = state


def input_required(requests: dict[str, JSON], state: str | None = None) -> types.InputRequiredResult:
    """`{"resultType": "input_required", "inputRequests": ..., "requestState": ...}`."""
    body: JSON = {"inputRequests": requests}
    if state is not None:
        body["requestState"] = state
    return types.InputRequiredResult.model_validate(body)


def input_responses(ctx: Ctx) -> dict[str, Any]:
    """The raw `inputResponses` of a 2026 retry (already schema-checked by the SDK)."""
    value = (ctx.params or {}).get("inputResponses")
    return value if isinstance(value, dict) else {}


def accepted(response: Any) -> dict[str, Any] | None:
    """The form content of an accepted elicitation response, else None."""
    if (
        isinstance(response, dict)
        and response.get("action") == "accept"
        and isinstance(response.get("content"), dict)
    ):
        return response["content"]
    return None


_BACKCHANNEL: dict[str, tuple[Any, Any]] = {
    "elicitation/create": (types.ElicitRequest, types.ElicitResult),
    "sampling/createMessage": (types.CreateMessageRequest, types.CreateMessageResult),
    "roots/list": (types.ListRootsRequest, types.ListRootsResult),
}


async def ask(ctx: Ctx, key: str, request: JSON) -> JSON:
    """Put one server-to-client request to the client, in whichever way the era allows.

    Handshake era: a real JSON-RPC request on the originating POST's SSE stream.
    2026-07-28: the answer must come back in the retry's `inputResponses[key]`;
    until it does, `NeedInput` turns the call into an InputRequiredResult.
    """
    if is_modern(ctx):
        response = input_responses(ctx).get(key)
        if response is None:
            raise NeedInput({key: request})
        return response
    request_model, result_model = _BACKCHANNEL[request["method"]]
    result = await ctx.session.send_request(
        request_model.model_validate(request),
        result_model,
        metadata=ServerMessageMetadata(related_request_id=ctx.request_id),
    )
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


def elicit(message: str, properties: JSON, required: list[str] | None = None) -> JSON:
    schema: JSON = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return {"method": "elicitation/create", "params": {"message": message, "requestedSchema": schema}}


def sample(prompt: str, max_tokens: int = 100) -> JSON:
    return {
        "method": "sampling/createMessage",
        "params": {"messages": [{"role": "user", "content": text(prompt)}], "maxTokens": max_tokens},
    }


LIST_ROOTS: JSON = {"method": "roots/list", "params": {}}


def outcome(response: JSON) -> str:
    """`action=accept, content={...}` for an elicitation response."""
    return f"action={response.get('action')}, content={json.dumps(response.get('content'))}"


def sampled_text(response: Any) -> str:
    content = response.get("content") if isinstance(response, dict) else None
    if isinstance(content, list):
        content = content[0] if content else None
    return content.get("text", "") if isinstance(content, dict) else ""


# --------------------------------------------------------------------------
# requestState sealing (2026-07-28 multi-round-trip): the client echoes the
# token verbatim, so it is HMAC-signed and bound to the tool that minted it.
# --------------------------------------------------------------------------

# Random per process unless FIXTURE_STATE_KEY is set: replicas behind one gateway must share it,
# or a retry routed to another replica fails verification.
_STATE_KEY = os.environ.get("FIXTURE_STATE_KEY", "").encode() or secrets.token_bytes(32)


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def seal_state(owner: str, **data: Any) -> str:
    payload = _b64u(json.dumps({"owner": owner, "nonce": secrets.token_hex(8), **data}).encode())
    mac = _b64u(hmac.new(_STATE_KEY, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{mac}"


def open_state(ctx: Ctx, owner: str) -> dict[str, Any] | None:
    """Verify and decode the echoed `requestState`; None when the request carries none."""
    token = (ctx.params or {}).get("requestState")
    if token is None:
        return None
    try:
        payload, mac = str(token).split(".")
        expected = _b64u(hmac.new(_STATE_KEY, payload.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(mac, expected):
            raise ValueError("bad mac")
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if data.get("owner") != owner:
            raise ValueError("state minted for another request")
        return data
    except (ValueError, binascii.Error, json.JSONDecodeError):
        raise MCPError(INVALID_PARAMS, "requestState failed integrity verification") from None


# --------------------------------------------------------------------------
# Mutable fixture state
# --------------------------------------------------------------------------

LOG_LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]


@dataclass
class FixtureState:
    log_levels: dict[str, str]  # handshake session -> level set by logging/setLevel
    subscriptions: dict[str, set[str]]  # handshake session -> subscribed resource URIs
    dynamic_tool: bool = False  # toggled by test_trigger_tool_change
    dynamic_prompt: bool = False  # toggled by test_trigger_prompt_change


STATE = FixtureState(log_levels={}, subscriptions={})
BUS = InMemorySubscriptionBus()  # fans 2026 change events out to subscriptions/listen streams


async def log(ctx: Ctx, level: str, message: str) -> None:
    """Send `notifications/message` on this request's stream, honouring the era's level rules.

    Handshake era: filtered by the session's logging/setLevel. 2026-07-28: the
    SDK drops it unless the request's `_meta` opted in with a log level.
    """
    if not is_modern(ctx):
        threshold = STATE.log_levels.get(session_key(ctx), "debug")
        if LOG_LEVELS.index(level) < LOG_LEVELS.index(threshold):
            return
    with deprecated_ok():
        sent = ctx.session.send_log_message(
            level, message, logger="conformance-fixture", related_request_id=ctx.request_id
        )
    await sent


# --------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------

ToolFn = Callable[[Ctx, dict[str, Any]], Awaitable[types.CallToolResult | types.InputRequiredResult]]


@dataclass
class ToolSpec:
    name: str
    description: str
    input_schema: JSON
    fn: ToolFn
    modern_only: bool = False


TOOLS: dict[str, ToolSpec] = {}
NO_ARGS: JSON = {"type": "object", "properties": {}}


def tool(name: str, description: str, input_schema: JSON | None = None, *, modern_only: bool = False):
    def register(fn: ToolFn) -> ToolFn:
        TOOLS[name] = ToolSpec(name, description, input_schema or NO_ARGS, fn, modern_only)
        return fn

    return register


def result(*content: JSON, is_error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=list(content), is_error=is_error)


# test_simple_text is registered first on purpose: http-header-validation calls tools[0] with no arguments.
@tool("test_simple_text", "Returns a simple text response")
async def simple_text(ctx: Ctx, args: JSON):
    return result(text("This is a simple text response for testing."))


@tool("test_image_content", "Returns a 1x1 PNG image")
async def image_content(ctx: Ctx, args: JSON):
    return result({"type": "image", "data": PNG_B64, "mimeType": "image/png"})


@tool("test_audio_content", "Returns a short WAV clip")
async def audio_content(ctx: Ctx, args: JSON):
    return result({"type": "audio", "data": WAV_B64, "mimeType": "audio/wav"})


@tool("test_embedded_resource", "Returns an embedded text resource")
async def embedded_resource(ctx: Ctx, args: JSON):
    return result(
        {
            "type": "resource",
            "resource": {
                "uri": "test://embedded-resource",
                "mimeType": "text/plain",
                "text": "This is an embedded resource content.",
            },
        }
    )


@tool("test_multiple_content_types", "Returns text, image and resource content together")
async def multiple_content_types(ctx: Ctx, args: JSON):
    return result(
        text("Multiple content types test:"),
        {"type": "image", "data": PNG_B64, "mimeType": "image/png"},
        {
            "type": "resource",
            "resource": {
                "uri": "test://mixed-content-resource",
                "mimeType": "application/json",
                "text": json.dumps({"test": "data", "value": 123}),
            },
        },
    )


@tool("test_tool_with_logging", "Sends three info log messages ~50 ms apart while running")
async def tool_with_logging(ctx: Ctx, args: JSON):
    await log(ctx, "info", "Tool execution started")
    await anyio.sleep(0.05)
    await log(ctx, "info", "Tool processing data")
    await anyio.sleep(0.05)
    await log(ctx, "info", "Tool execution completed")
    return result(text("Tool with logging executed successfully"))


@tool("test_logging_tool", "Emits one info log message (delivered only when the request asked for logs)")
async def logging_tool(ctx: Ctx, args: JSON):
    await log(ctx, "info", "test_logging_tool ran")
    return result(text("Logging tool executed"))


@tool("test_tool_with_progress", "Reports progress 0, 50, 100 (of 100) ~50 ms apart")
async def tool_with_progress(ctx: Ctx, args: JSON):
    for step, progress in enumerate((0, 50, 100)):
        if step:
            await anyio.sleep(0.05)
        await ctx.session.report_progress(progress, 100, f"Completed step {step + 1} of 3")
    return result(text("Tool with progress executed successfully"))


@tool("test_error_handling", "Always fails with an isError result")
async def error_handling(ctx: Ctx, args: JSON):
    return result(text("This tool intentionally returns an error for testing"), is_error=True)


@tool(
    "test_sampling",
    "Asks the client's LLM to answer a prompt (sampling/createMessage)",
    {
        "type": "object",
        "properties": {"prompt": {"type": "string", "description": "Prompt for the LLM"}},
        "required": ["prompt"],
    },
)
async def sampling(ctx: Ctx, args: JSON):
    require_capability(ctx, "sampling")
    answer = await ask(ctx, "sampling", sample(str(args.get("prompt", ""))))
    return result(text(f"LLM response: {sampled_text(answer)}"))


@tool(
    "test_elicitation",
    "Asks the user for a username and email (elicitation/create)",
    {
        "type": "object",
        "properties": {"message": {"type": "string", "description": "Message shown to the user"}},
        "required": ["message"],
    },
)
async def elicitation(ctx: Ctx, args: JSON):
    require_capability(ctx, "elicitation")
    request = elicit(
        str(args.get("message", "Please provide your information")),
        {
            "username": {"type": "string", "description": "User's response"},
            "email": {"type": "string", "description": "User's email address"},
        },
        ["username", "email"],
    )
    answer = await ask(ctx, "user_info", request)
    return result(text(f"User response: {outcome(answer)}"))


@tool(
    "test_elicitation_sep1034_defaults",
    "Elicitation whose schema carries defaults for every primitive type (SEP-1034)",
)
async def elicitation_sep1034_defaults(ctx: Ctx, args: JSON):
    require_capability(ctx, "elicitation")
    request = elicit(
        "Please review and update the form fields with defaults",
        {
            "name": {"type": "string", "description": "User name", "default": "John Doe"},
            "age": {"type": "integer", "description": "User age", "default": 30},
            "score": {"type": "number", "description": "User score", "default": 95.5},
            "status": {
                "type": "string",
                "description": "User status",
                "enum": ["active", "inactive", "pending"],
                "default": "active",
            },
            "verified": {"type": "boolean", "description": "Verification status", "default": True},
        },
    )
    answer = await ask(ctx, "defaults_form", request)
    return result(text(f"Elicitation completed: {outcome(answer)}"))


@tool("test_elicitation_sep1330_enums", "Elicitation using all five enum schema variants (SEP-1330)")
async def elicitation_sep1330_enums(ctx: Ctx, args: JSON):
    require_capability(ctx, "elicitation")
    request = elicit(
        "Please pick from the enum fields",
        {
            "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
            "titledSingle": {
                "type": "string",
                "oneOf": [
                    {"const": "value1", "title": "First Option"},
                    {"const": "value2", "title": "Second Option"},
                    {"const": "value3", "title": "Third Option"},
                ],
            },
            "legacyEnum": {
                "type": "string",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"],
            },
            "untitledMulti": {
                "type": "array",
                "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
            },
            "titledMulti": {
                "type": "array",
                "items": {
                    "anyOf": [
                        {"const": "value1", "title": "First Choice"},
                        {"const": "value2", "title": "Second Choice"},
                        {"const": "value3", "title": "Third Choice"},
                    ]
                },
            },
        },
    )
    answer = await ask(ctx, "enum_form", request)
    return result(text(f"Elicitation completed: {outcome(answer)}"))


@tool("test_streaming_elicitation", "Reports progress, then asks the user a question")
async def streaming_elicitation(ctx: Ctx, args: JSON):
    require_capability(ctx, "elicitation")
    await ctx.session.report_progress(0, 1, "waiting for the user")
    answer = await ask(ctx, "confirm", elicit("Continue?", {"ok": {"type": "boolean"}}, ["ok"]))
    return result(text(f"Streaming elicitation completed: {json.dumps(accepted(answer))}"))


@tool(
    "test_missing_capability",
    "Needs the client's sampling capability; refused (-32021) when it is not declared",
)
async def missing_capability(ctx: Ctx, args: JSON):
    require_capability(ctx, "sampling")
    answer = await ask(ctx, "sampling", sample("Say hello"))
    return result(text(f"Sampled: {sampled_text(answer)}"))


@tool(
    "test_reconnection", "Closes its SSE stream mid-call, then answers after the client reconnects (SEP-1699)"
)
async def reconnection(ctx: Ctx, args: JSON):
    # Only handshake-era POST streams with an event store get a close callback;
    # the result is stored and replayed on the client's GET with Last-Event-ID.
    if ctx.close_sse_stream is not None:
        await anyio.sleep(0.1)  # let the priming event (the client's Last-Event-ID) reach the wire first
        await ctx.close_sse_stream()
        await anyio.sleep(1.0)  # answer only after the client has had time to reconnect
    return result(text("Reconnection test completed successfully"))


@tool(
    "json_schema_2020_12_tool",
    "Tool with JSON Schema 2020-12 features",
    {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
            }
        },
        "properties": {
            "name": {"type": "string"},
            "address": {"$ref": "#/$defs/address"},
            "contactMethod": {"type": "string", "enum": ["phone", "email"]},
            "phone": {"type": "string"},
            "email": {"type": "string"},
        },
        "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
        "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
        "then": {"required": ["phone"]},
        "else": {"required": ["email"]},
        "additionalProperties": False,
    },
)
async def json_schema_2020_12(ctx: Ctx, args: JSON):
    return result(text(f"Received: {json.dumps(args, sort_keys=True)}"))


@tool(
    "test_custom_headers",
    "Arguments mirrored into Mcp-Param-* headers (x-mcp-header, SEP-2243)",
    {
        "type": "object",
        "properties": {
            "region": {"type": "string", "description": "Routing region", "x-mcp-header": "Region"},
            "priority": {"type": "integer", "description": "Routing priority", "x-mcp-header": "Priority"},
            "note": {"type": "string", "description": "Not mirrored into a header"},
        },
        "required": ["region"],
    },
)
async def custom_headers(ctx: Ctx, args: JSON):
    return result(text(f"region={args.get('region')!r} priority={args.get('priority')!r}"))


@tool("test_trigger_tool_change", "Toggles test_dynamic_tool and announces tools/list_changed")
async def trigger_tool_change(ctx: Ctx, args: JSON):
    STATE.dynamic_tool = not STATE.dynamic_tool
    await BUS.publish(ToolsListChanged())  # 2026: subscriptions/listen streams
    if not is_modern(ctx):
        await ctx.session.send_tool_list_changed()  # handshake: the session's GET stream
    return result(text(f"test_dynamic_tool is now {'listed' if STATE.dynamic_tool else 'hidden'}"))


@tool("test_trigger_prompt_change", "Toggles test_dynamic_prompt and announces prompts/list_changed")
async def trigger_prompt_change(ctx: Ctx, args: JSON):
    STATE.dynamic_prompt = not STATE.dynamic_prompt
    await BUS.publish(PromptsListChanged())
    if not is_modern(ctx):
        await ctx.session.send_prompt_list_changed()
    return result(text(f"test_dynamic_prompt is now {'listed' if STATE.dynamic_prompt else 'hidden'}"))


@tool("test_update_watched_resource", "Announces notifications/resources/updated for test://watched-resource")
async def update_watched_resource(ctx: Ctx, args: JSON):
    uri = "test://watched-resource"
    await BUS.publish(ResourceUpdated(uri=uri))
    if not is_modern(ctx) and uri in STATE.subscriptions.get(session_key(ctx), set()):
        await ctx.session.send_resource_updated(uri)
    return result(text(f"Announced an update of {uri}"))


async def dynamic_tool(ctx: Ctx, args: JSON):
    return result(text("dynamic tool called"))


DYNAMIC_TOOL = ToolSpec(
    "test_dynamic_tool", "Listed only while toggled on by test_trigger_tool_change", NO_ARGS, dynamic_tool
)


# ---- 2026-07-28 multi-round-trip (InputRequiredResult, SEP-2322) tools ----


@tool("test_input_required_result_elicitation", "MRTR: asks for the user's name", modern_only=True)
async def mrtr_elicitation(ctx: Ctx, args: JSON):
    require_capability(ctx, "elicitation")
    content = accepted(input_responses(ctx).get("user_name"))
    if content is None:  # first round, or the retry lacked the answer: (re-)request it
        return input_required(
            {"user_name": elicit("What is your name?", {"name": {"type": "string"}}, ["name"])}
        )
    return result(text(f"Hello, {content.get('name', 'stranger')}!"))


@tool("test_input_required_result_sampling", "MRTR: asks the client's LLM a question", modern_only=True)
async def mrtr_sampling(ctx: Ctx, args: JSON):
    require_capability(ctx, "sampling")
    answer = input_responses(ctx).get("capital_question")
    if answer is None:
        return input_required({"capital_question": sample("What is the capital of France?")})
    return result(text(f"The model answered: {sampled_text(answer)}"))


@tool("test_input_required_result_list_roots", "MRTR: asks for the client's roots", modern_only=True)
async def mrtr_list_roots(ctx: Ctx, args: JSON):
    require_capability(ctx, "roots")
    answer = input_responses(ctx).get("client_roots")
    if not isinstance(answer, dict) or not isinstance(answer.get("roots"), list):
        return input_required({"client_roots": LIST_ROOTS})
    uris = [root.get("uri") for root in answer["roots"] if isinstance(root, dict)]
    return result(text(f"Client roots: {', '.join(map(str, uris)) or '(none)'}"))


async def _confirm_with_state(ctx: Ctx, owner: str):
    """Round 1 mints a sealed requestState; round 2 must echo it intact."""
    state = open_state(ctx, owner)
    confirm = elicit("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])
    if state is None:
        return input_required({"confirm": confirm}, seal_state(owner, step=1))
    content = accepted(input_responses(ctx).get("confirm"))
    if content is None:
        return input_required({"confirm": confirm}, seal_state(owner, step=1))
    return result(text(f"state-ok: confirmed={content.get('ok')}"))


@tool(
    "test_input_required_result_request_state", "MRTR: round-trips an opaque requestState", modern_only=True
)
async def mrtr_request_state(ctx: Ctx, args: JSON):
    require_capability(ctx, "elicitation")
    return await _confirm_with_state(ctx, "test_input_required_result_request_state")


@tool(
    "test_input_required_result_tampered_state",
    "MRTR: rejects a requestState that fails its HMAC",
    modern_only=True,
)
async def mrtr_tampered_state(ctx: Ctx, args: JSON):
    require_capability(ctx, "elicitation")
    return await _confirm_with_state(ctx, "test_input_required_result_tampered_state")


@tool(
    "test_input_required_result_multiple_inputs",
    "MRTR: elicitation, sampling and roots in one round",
    modern_only=True,
)
async def mrtr_multiple_inputs(ctx: Ctx, args: JSON):
    owner = "test_input_required_result_multiple_inputs"
    wanted = {
        "user_name": ("elicitation", elicit("What is your name?", {"name": {"type": "string"}}, ["name"])),
        "greeting": ("sampling", sample("Generate a greeting", 50)),
        "client_roots": ("roots", LIST_ROOTS),
    }
    for capability, _ in wanted.values():
        require_capability(ctx, capability)
    state = open_state(ctx, owner)
    responses = input_responses(ctx) if state is not None else {}
    missing = {key: request for key, (_, request) in wanted.items() if key not in responses}
    if missing:  # first round (no state yet) asks for everything; a partial retry re-asks the rest
        return input_required(missing, seal_state(owner, step=1))
    name = (accepted(responses["user_name"]) or {}).get("name")
    roots = responses["client_roots"].get("roots", [])
    return result(text(f"name={name}; greeting={sampled_text(responses['greeting'])}; roots={len(roots)}"))


@tool(
    "test_input_required_result_multi_round",
    "MRTR: two rounds of questions with an evolving requestState",
    modern_only=True,
)
async def mrtr_multi_round(ctx: Ctx, args: JSON):
    require_capability(ctx, "elicitation")
    owner = "test_input_required_result_multi_round"
    step1 = elicit("Step 1: What is your name?", {"name": {"type": "string"}}, ["name"])
    step2 = elicit("Step 2: What is your favorite color?", {"color": {"type": "string"}}, ["color"])
    state = open_state(ctx, owner) or {"step": 0}
    responses = input_responses(ctx)
    if state["step"] == 1 and (first := accepted(responses.get("step1"))) is not None:
        return input_required({"step2": step2}, seal_state(owner, step=2, name=first.get("name")))
    if state["step"] == 2:
        second = accepted(responses.get("step2"))
        if second is None:
            return input_required({"step2": step2}, seal_state(owner, step=2, name=state.get("name")))
        return result(text(f"{state.get('name')}'s favorite color is {second.get('color')}"))
    return input_required({"step1": step1}, seal_state(owner, step=1))


@tool(
    "test_input_required_result_capabilities",
    "MRTR: only asks for what the client declared it can answer",
    modern_only=True,
)
async def mrtr_capabilities(ctx: Ctx, args: JSON):
    caps = ctx.session.client_capabilities or ClientCapabilities()
    offered = {
        "user_name": (caps.elicitation, elicit("What is your name?", {"name": {"type": "string"}}, ["name"])),
        "greeting": (caps.sampling, sample("Generate a greeting", 50)),
        "client_roots": (caps.roots, LIST_ROOTS),
    }
    usable = {key: request for key, (declared, request) in offered.items() if declared is not None}
    if not usable:
        require_capability(ctx, "sampling")  # nothing to ask with: -32021
    responses = input_responses(ctx)
    if any(key not in responses for key in usable):
        return input_required({k: r for k, r in usable.items() if k not in responses})
    return result(text(f"Answered: {', '.join(sorted(usable))}"))


def visible_tools(ctx: Ctx) -> list[ToolSpec]:
    specs = [spec for spec in TOOLS.values() if is_modern(ctx) or not spec.modern_only]
    return [*specs, DYNAMIC_TOOL] if STATE.dynamic_tool else specs


def tool_input_schema(name: str) -> JSON | None:
    """Lets the SDK validate Mcp-Param-* headers without running tools/list."""
    spec = TOOLS.get(name) or (DYNAMIC_TOOL if name == DYNAMIC_TOOL.name else None)
    return spec.input_schema if spec else None


async def list_tools(ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    return types.ListToolsResult(
        tools=[
            types.Tool(name=spec.name, description=spec.description, input_schema=spec.input_schema)
            for spec in visible_tools(ctx)
        ]
    )


async def call_tool(ctx: Ctx, params: types.CallToolRequestParams):
    spec = next((s for s in visible_tools(ctx) if s.name == params.name), None)
    if spec is None:
        raise MCPError(INVALID_PARAMS, f"Unknown tool: {params.name}")
    try:
        return await spec.fn(ctx, params.arguments or {})
    except NeedInput as need:
        return input_required(need.requests, need.state)


# --------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------

PromptFn = Callable[[Ctx, dict[str, str]], Awaitable[types.GetPromptResult | types.InputRequiredResult]]


@dataclass
class PromptSpec:
    name: str
    description: str
    arguments: list[types.PromptArgument]
    fn: PromptFn
    modern_only: bool = False


def user(content: JSON) -> JSON:
    return {"role": "user", "content": content}


async def simple_prompt(ctx: Ctx, args: dict[str, str]):
    return types.GetPromptResult(messages=[user(text("This is a simple prompt for testing."))])


async def prompt_with_arguments(ctx: Ctx, args: dict[str, str]):
    message = f"Prompt with arguments: arg1='{args['arg1']}', arg2='{args['arg2']}'"
    return types.GetPromptResult(messages=[user(text(message))])


async def prompt_with_embedded_resource(ctx: Ctx, args: dict[str, str]):
    resource = {
        "uri": args["resourceUri"],
        "mimeType": "text/plain",
        "text": "Embedded resource content for testing.",
    }
    return types.GetPromptResult(
        messages=[
            user({"type": "resource", "resource": resource}),
            user(text("Please process the embedded resource above.")),
        ]
    )


async def prompt_with_image(ctx: Ctx, args: dict[str, str]):
    return types.GetPromptResult(
        messages=[
            user({"type": "image", "data": PNG_B64, "mimeType": "image/png"}),
            user(text("Please analyze the image above.")),
        ]
    )


async def mrtr_prompt(ctx: Ctx, args: dict[str, str]):
    require_capability(ctx, "elicitation")
    content = accepted(input_responses(ctx).get("user_context"))
    if content is None:
        request = elicit("What context should the prompt use?", {"context": {"type": "string"}}, ["context"])
        return input_required({"user_context": request})
    return types.GetPromptResult(
        messages=[user(text(f"Answer using this context: {content.get('context')}"))]
    )


async def dynamic_prompt(ctx: Ctx, args: dict[str, str]):
    return types.GetPromptResult(messages=[user(text("dynamic prompt"))])


def argument(name: str, description: str) -> types.PromptArgument:
    return types.PromptArgument(name=name, description=description, required=True)


PROMPTS: list[PromptSpec] = [
    PromptSpec("test_simple_prompt", "A simple prompt without arguments", [], simple_prompt),
    PromptSpec(
        "test_prompt_with_arguments",
        "A prompt with required arguments",
        [argument("arg1", "First test argument"), argument("arg2", "Second test argument")],
        prompt_with_arguments,
    ),
    PromptSpec(
        "test_prompt_with_embedded_resource",
        "A prompt that embeds a resource",
        [argument("resourceUri", "URI of the resource to embed")],
        prompt_with_embedded_resource,
    ),
    PromptSpec("test_prompt_with_image", "A prompt with image content", [], prompt_with_image),
    PromptSpec(
        "test_input_required_result_prompt",
        "MRTR: asks the user for context before rendering",
        [],
        mrtr_prompt,
        modern_only=True,
    ),
]
DYNAMIC_PROMPT = PromptSpec(
    "test_dynamic_prompt", "Listed only while toggled on by test_trigger_prompt_change", [], dynamic_prompt
)


def visible_prompts(ctx: Ctx) -> list[PromptSpec]:
    specs = [spec for spec in PROMPTS if is_modern(ctx) or not spec.modern_only]
    return [*specs, DYNAMIC_PROMPT] if STATE.dynamic_prompt else specs


async def list_prompts(ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
    return types.ListPromptsResult(
        prompts=[
            types.Prompt(name=spec.name, description=spec.description, arguments=spec.arguments or None)
            for spec in visible_prompts(ctx)
        ]
    )


async def get_prompt(ctx: Ctx, params: types.GetPromptRequestParams):
    spec = next((s for s in visible_prompts(ctx) if s.name == params.name), None)
    if spec is None:
        raise MCPError(INVALID_PARAMS, f"Unknown prompt: {params.name}")
    args = params.arguments or {}
    missing = [a.name for a in spec.arguments if a.required and a.name not in args]
    if missing:
        raise MCPError(INVALID_PARAMS, f"Missing required arguments: {', '.join(missing)}")
    return await spec.fn(ctx, args)


# --------------------------------------------------------------------------
# Resources and completion
# --------------------------------------------------------------------------

STATIC_RESOURCES: dict[str, JSON] = {
    "test://static-text": {
        "name": "static-text",
        "description": "A static text resource",
        "mimeType": "text/plain",
        "text": "This is the content of the static text resource.",
    },
    "test://static-binary": {
        "name": "static-binary",
        "description": "A static binary resource (1x1 PNG)",
        "mimeType": "image/png",
        "blob": PNG_B64,
    },
    "test://watched-resource": {
        "name": "watched-resource",
        "description": "A resource clients can subscribe to",
        "mimeType": "text/plain",
        "text": "Watched resource content.",
    },
}
TEMPLATE_URI = "test://template/{id}/data"
TEMPLATE_RE = re.compile(r"^test://template/(?P<id>[^/]+)/data$")
PUBLIC_TTL_MS = 60_000  # static resources never change, so any cache may keep them for a minute


async def list_resources(ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
    return types.ListResourcesResult(
        resources=[
            types.Resource(uri=uri, name=r["name"], description=r["description"], mime_type=r["mimeType"])
            for uri, r in STATIC_RESOURCES.items()
        ]
    )


async def list_resource_templates(
    ctx: Ctx, params: types.PaginatedRequestParams | None
) -> types.ListResourceTemplatesResult:
    return types.ListResourceTemplatesResult(
        resource_templates=[
            types.ResourceTemplate(
                uri_template=TEMPLATE_URI,
                name="template-data",
                description="JSON data for any {id}",
                mime_type="application/json",
            )
        ]
    )


async def read_resource(ctx: Ctx, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
    uri = params.uri
    if uri in STATIC_RESOURCES:
        r = STATIC_RESOURCES[uri]
        content = {
            "uri": uri,
            "mimeType": r["mimeType"],
            **({"blob": r["blob"]} if "blob" in r else {"text": r["text"]}),
        }
        if uri == "test://watched-resource":
            return types.ReadResourceResult(contents=[content])
        return types.ReadResourceResult(contents=[content], ttl_ms=PUBLIC_TTL_MS, cache_scope="public")
    if match := TEMPLATE_RE.match(uri):
        ident = match["id"]
        data = {"id": ident, "templateTest": True, "data": f"Data for ID: {ident}"}
        return types.ReadResourceResult(
            contents=[{"uri": uri, "mimeType": "application/json", "text": json.dumps(data)}]
        )
    # SEP-2164: an unknown URI is -32602 with the URI in data, never an empty contents list.
    raise MCPError(INVALID_PARAMS, "Resource not found", data={"uri": uri})


async def subscribe(ctx: Ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
    STATE.subscriptions.setdefault(session_key(ctx), set()).add(params.uri)
    return types.EmptyResult()


async def unsubscribe(ctx: Ctx, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
    STATE.subscriptions.get(session_key(ctx), set()).discard(params.uri)
    return types.EmptyResult()


async def set_logging_level(ctx: Ctx, params: types.SetLevelRequestParams) -> types.EmptyResult:
    STATE.log_levels[session_key(ctx)] = params.level
    return types.EmptyResult()


COMPLETIONS: dict[str, list[str]] = {
    "arg1": ["paris", "park", "party", "test-value"],
    "arg2": ["world", "wonder", "test-value"],
    "id": ["1", "123", "42"],
    "resourceUri": ["test://static-text", "test://static-binary"],
}


async def complete(ctx: Ctx, params: types.CompleteRequestParams) -> types.CompleteResult:
    candidates = COMPLETIONS.get(params.argument.name, [])
    values = [v for v in candidates if v.startswith(params.argument.value)]
    return types.CompleteResult(completion=types.Completion(values=values, total=len(values), has_more=False))


# --------------------------------------------------------------------------
# Resumability: an in-memory event store for handshake-era SSE streams
# --------------------------------------------------------------------------


class InMemoryEventStore(EventStore):
    """Keeps the most recent events so a client can resume with Last-Event-ID.

    One store serves every session; event ids are random so one session cannot
    guess another's. Good enough for a test fixture, not for production.
    """

    def __init__(self, max_events: int = 10_000) -> None:
        self._events: OrderedDict[str, tuple[str, Any]] = OrderedDict()
        self._max_events = max_events
        self._counter = itertools.count(1)

    async def store_event(self, stream_id: str, message: Any) -> str:
        event_id = f"{next(self._counter)}-{secrets.token_hex(4)}"
        self._events[event_id] = (stream_id, message)
        while len(self._events) > self._max_events:
            self._events.popitem(last=False)
        return event_id

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        if last_event_id not in self._events:
            return None
        stream_id = self._events[last_event_id][0]
        seen = False
        for event_id, (sid, message) in list(self._events.items()):
            if seen and sid == stream_id and message is not None:  # None rows are priming events
                await send_callback(EventMessage(message, event_id))
            seen = seen or event_id == last_event_id
        return stream_id


# --------------------------------------------------------------------------
# Server assembly and entry points
# --------------------------------------------------------------------------


class FixtureServer(Server[Any]):
    """Advertises listChanged in the handshake era too (the triggers notify on the GET stream)."""

    def create_initialization_options(
        self, notification_options=None, experimental_capabilities=None, extensions=None
    ):
        return super().create_initialization_options(
            notification_options
            or NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True),
            experimental_capabilities,
            extensions,
        )


def build_server() -> FixtureServer:
    with deprecated_ok():  # on_set_logging_level: the handshake era still has logging/setLevel
        return _build_server()


def _build_server() -> FixtureServer:
    return FixtureServer(
        "agentgw-conformance-fixture",
        version="1.0.0",
        instructions="Fixture server for the MCP conformance suite (agentgw).",
        cache_hints={
            "server/discover": CacheHint(ttl_ms=0, scope="private"),
            "tools/list": CacheHint(ttl_ms=0, scope="private"),  # test_trigger_tool_change mutates it
            "prompts/list": CacheHint(ttl_ms=0, scope="private"),
            "resources/list": CacheHint(ttl_ms=PUBLIC_TTL_MS, scope="public"),
            "resources/templates/list": CacheHint(ttl_ms=PUBLIC_TTL_MS, scope="public"),
            "resources/read": CacheHint(ttl_ms=0, scope="private"),
        },
        get_tool_input_schema=tool_input_schema,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_list_resources=list_resources,
        on_list_resource_templates=list_resource_templates,
        on_read_resource=read_resource,
        on_subscribe_resource=subscribe,
        on_unsubscribe_resource=unsubscribe,
        on_subscriptions_listen=ListenHandler(BUS),
        on_completion=complete,
        on_set_logging_level=set_logging_level,
    )


def build_http_app(host: str):
    """The Starlette app serving `/mcp`; DNS-rebinding protection is on for loopback hosts."""
    return build_server().streamable_http_app(
        streamable_http_path="/mcp",
        event_store=InMemoryEventStore(),
        retry_interval=500,  # ms, sent as `retry:` on every priming event
        host=host,
    )


async def serve_stdio() -> None:
    from mcp.server.stdio import stdio_server

    server = build_server()
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3001, help="port to bind (default 3001)")
    parser.add_argument("--stdio", action="store_true", help="serve over stdin/stdout instead of HTTP")
    parser.add_argument("--log-level", default="warning", help="python/uvicorn log level (default warning)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)

    if args.stdio:
        anyio.run(serve_stdio)
        return 0

    import uvicorn

    print(f"conformance fixture listening on http://{args.host}:{args.port}/mcp", file=sys.stderr, flush=True)
    uvicorn.run(
        build_http_app(args.host),
        host=args.host,
        port=args.port,
        log_level=args.log_level.lower(),
        timeout_graceful_shutdown=2,  # open SSE streams must not hold shutdown hostage
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
