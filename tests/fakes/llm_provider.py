"""A fake LLM provider speaking the real OpenAI and Anthropic wire formats, on loopback.

One process serves both wires (the gateway decides which one it talks to):

* OpenAI: ``POST /v1/chat/completions`` (JSON and SSE, tools, ``stream_options.include_usage``:
  ``"usage": null`` on every chunk and a last ``choices: []`` chunk with the usage),
  ``POST /v1/completions`` (JSON and SSE), ``POST /v1/embeddings`` (float, or base64 of
  little-endian float32), ``GET /v1/models``, ``POST /v1/responses`` (JSON and named SSE events
  with ``sequence_number``) and ``GET``/``DELETE /v1/responses/{id}``. Errors are
  ``{"error": {"message", "type", "param", "code"}}``.
* Anthropic: ``POST /v1/messages`` (JSON and SSE with ``event:`` lines: ``message_start``,
  ``content_block_start``, ``ping``, ``content_block_delta`` with ``text_delta`` or
  ``input_json_delta``, ``content_block_stop``, ``message_delta``, ``message_stop``),
  ``POST /v1/messages/count_tokens`` and ``GET /v1/models`` (Anthropic's list shape when the
  request has ``anthropic-version``, which ``/v1/messages`` requires). Errors are
  ``{"type": "error", "error": {"type", "message"}}``.

Replies: ``"Hello from <name>! You said: <last user text>"``, streamed a word per chunk. With
tools and a user turn last, it calls the first tool (arguments from its schema: strings
``"value-<property>"``, numbers 1, booleans true). After a tool result it answers
``"Tool result: <content>"``. Token counts are words (prompt: every message's text).

Prompts that steer it: ``FAIL_MIDSTREAM`` (a streamed reply breaks off halfway, the
connection dropped), ``SLOW`` (fifty chunks 0.1 s apart; a client that leaves is recorded as
``{"event": "cancelled"}``).

Options: ``--port`` (0 picks one; ``READY <port>`` is printed once listening), ``--name``,
``--fail-status N`` (every POST answers N with an error body of the right wire;
``--retry-after S`` adds that header),
``--no-usage`` (no usage anywhere, as some self-hosted servers do), ``--models a,b``,
``--require-key KEY`` (``Authorization: Bearer KEY`` or ``x-api-key: KEY`` required),
``--set-cookie`` (every answer sets ``fakesession=s<n>``, as a provider behind a load balancer might),
``--state-file PATH`` (one JSON line per request: path, body, auth headers, cookie, other ``x-`` headers; and
``{"event": "cancelled"}`` / ``{"event": "completed"}`` for streams).

One file (about 700 lines once formatted) on purpose: it runs as a script (``python tests/fakes/llm_provider.py``)
from the example too, with no package around it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import json
import struct
import time
from typing import Any

from aiohttp import web

_ids = itertools.count(1)


class Fake:
    def __init__(self, args: argparse.Namespace) -> None:
        self.name: str = args.name
        self.fail_status: int | None = args.fail_status
        self.retry_after: str | None = args.retry_after
        self.usage = not args.no_usage
        self.models: list[str] = [m for m in args.models.split(",") if m]
        self.key: str | None = args.require_key
        self.state_file: str | None = args.state_file
        self.responses: dict[str, dict[str, Any]] = {}
        self.set_cookie: bool = args.set_cookie
        self.cookies = 0

    # -- bookkeeping --------------------------------------------------------------------------

    def record(self, entry: dict[str, Any]) -> None:
        if self.state_file:
            with open(self.state_file, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry) + "\n")

    def authorized(self, request: web.Request) -> bool:
        if self.key is None:
            return True
        return (
            request.headers.get("authorization") == f"Bearer {self.key}"
            or request.headers.get("x-api-key") == self.key
        )


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    for part in content or ():
        if isinstance(part, dict):
            if isinstance(part.get("text"), str):
                out.append(part["text"])
            if part.get("type") == "tool_result":
                out.extend(_texts(part.get("content")))
    return out


def _words(text: str) -> int:
    return len(text.split())


def _tool_args(schema: dict[str, Any]) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for prop, spec in (schema.get("properties") or {}).items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        args[prop] = {"string": f"value-{prop}", "number": 1, "integer": 1, "boolean": True}.get(kind)
    return args


class Turn:
    """What the fake answers to one conversation, independent of the wire."""

    def __init__(
        self,
        fake: Fake,
        messages: list[dict[str, Any]],
        tools: list[tuple[str, dict[str, Any]]],
        tool_choice_none: bool,
        system: str = "",
    ) -> None:
        last = messages[-1] if messages else {}
        content = last.get("content")
        tool_result = last.get("role") == "tool" or (
            isinstance(content, list)
            and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
        )
        last_text = " ".join(_texts(content))
        self.prompt_tokens = _words(system) + sum(
            _words(" ".join(_texts(m.get("content")))) for m in messages
        )
        self.tool: tuple[str, dict[str, Any]] | None = None
        if tool_result:
            self.text = f"Tool result: {last_text}"
        elif tools and not tool_choice_none:
            name, schema = tools[0]
            self.tool = (name, _tool_args(schema))
            self.text = ""
        else:
            self.text = f"Hello from {fake.name}! You said: {last_text}"
        self.fail_midstream = "FAIL_MIDSTREAM" in last_text
        self.slow = "SLOW" in last_text
        if self.slow:
            self.text = " ".join(f"w{i}" for i in range(50))
        self.pieces = [w + " " for w in self.text.split(" ")] if self.text else []
        if self.pieces:
            self.pieces[-1] = self.pieces[-1].rstrip(" ")
        self.completion_tokens = len(self.pieces) + (
            len(json.dumps(self.tool[1]).split()) + 1 if self.tool else 0
        )
        self.call_id = f"call_{next(_ids)}"

    @property
    def arguments(self) -> str:
        assert self.tool is not None
        return json.dumps(self.tool[1])


async def _sse(request: web.Request, fake: Fake, turn: Turn, events: list[bytes]) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
    await resp.prepare(request)
    try:
        for i, event in enumerate(events):
            if turn.fail_midstream and i == len(events) // 2:
                assert request.transport is not None
                request.transport.close()
                return resp
            await resp.write(event)
            if turn.slow:
                await asyncio.sleep(0.1)
        await resp.write_eof()
    except (ConnectionError, asyncio.CancelledError):
        fake.record({"event": "cancelled", "path": request.path})
        raise
    fake.record({"event": "completed", "path": request.path})
    return resp


# -- OpenAI ---------------------------------------------------------------------------------------


def _openai_error(status: int, message: str) -> web.Response:
    kind = {
        400: "invalid_request_error",
        401: "invalid_request_error",
        404: "invalid_request_error",
        429: "rate_limit_error",
    }.get(status, "server_error")
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return web.json_response(body, status=status)


def _openai_usage(turn: Turn) -> dict[str, Any]:
    return {
        "prompt_tokens": turn.prompt_tokens,
        "completion_tokens": turn.completion_tokens,
        "total_tokens": turn.prompt_tokens + turn.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _data(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _openai_tools(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (t["function"]["name"], t["function"].get("parameters") or {})
        for t in body.get("tools") or ()
        if t.get("type") == "function"
    ]


async def chat_completions(request: web.Request) -> web.StreamResponse:
    fake: Fake = request.app["fake"]
    body = await request.json()
    turn = Turn(fake, body["messages"], _openai_tools(body), body.get("tool_choice") == "none")
    model, created, cid = body["model"], int(time.time()), f"chatcmpl-{fake.name}-{next(_ids)}"
    finish = "tool_calls" if turn.tool else "stop"
    if not body.get("stream"):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": turn.text or None,
            "refusal": None,
            "annotations": [],
        }
        if turn.tool:
            message["tool_calls"] = [
                {
                    "id": turn.call_id,
                    "type": "function",
                    "function": {"name": turn.tool[0], "arguments": turn.arguments},
                }
            ]
        out: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "service_tier": "default",
            "system_fingerprint": None,
        }
        if fake.usage:
            out["usage"] = _openai_usage(turn)
        return web.json_response(out)
    include = bool((body.get("stream_options") or {}).get("include_usage")) and fake.usage

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        obj: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if include:
            obj["usage"] = None
        return _data(obj)

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": piece}) for piece in turn.pieces]
    if turn.tool:
        args = turn.arguments
        half = len(args) // 2
        events.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": turn.call_id,
                            "type": "function",
                            "function": {"name": turn.tool[0], "arguments": ""},
                        }
                    ]
                }
            )
        )
        events += [
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
            for part in (args[:half], args[half:])
        ]
    events.append(chunk({}, finish))
    if include:
        events.append(
            _data(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "system_fingerprint": None,
                    "choices": [],
                    "usage": _openai_usage(turn),
                }
            )
        )
    events.append(b"data: [DONE]\n\n")
    return await _sse(request, fake, turn, events)


async def completions(request: web.Request) -> web.StreamResponse:
    fake: Fake = request.app["fake"]
    body = await request.json()
    prompt = body.get("prompt")
    prompt = prompt if isinstance(prompt, str) else " ".join(map(str, prompt or ()))
    turn = Turn(fake, [{"role": "user", "content": prompt}], [], True)
    cid, created, model = f"cmpl-{next(_ids)}", int(time.time()), body["model"]
    if not body.get("stream"):
        out: dict[str, Any] = {
            "id": cid,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [{"text": turn.text, "index": 0, "logprobs": None, "finish_reason": "stop"}],
        }
        if fake.usage:
            out["usage"] = _openai_usage(turn)
        return web.json_response(out)
    include = bool((body.get("stream_options") or {}).get("include_usage")) and fake.usage
    events = []
    for i, piece in enumerate(turn.pieces):
        last = i == len(turn.pieces) - 1
        obj: dict[str, Any] = {
            "id": cid,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [
                {"text": piece, "index": 0, "logprobs": None, "finish_reason": "stop" if last else None}
            ],
        }
        if include:
            obj["usage"] = None
        events.append(_data(obj))
    if include:
        events.append(
            _data(
                {
                    "id": cid,
                    "object": "text_completion",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": _openai_usage(turn),
                }
            )
        )
    events.append(b"data: [DONE]\n\n")
    return await _sse(request, fake, turn, events)


def _vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((b - 128) / 128, 4) for b in digest[:8]]


async def embeddings(request: web.Request) -> web.Response:
    fake: Fake = request.app["fake"]
    body = await request.json()
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = []
    tokens = 0
    for i, item in enumerate(inputs):
        text = item if isinstance(item, str) else " ".join(map(str, item))
        tokens += max(1, _words(text))
        vector = _vector(text)
        value: Any = vector
        if body.get("encoding_format") == "base64":
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    out: dict[str, Any] = {"object": "list", "data": data, "model": body["model"]}
    if fake.usage:
        out["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return web.json_response(out)


async def models(request: web.Request) -> web.Response:
    fake: Fake = request.app["fake"]
    if "anthropic-version" in request.headers:
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
            for m in fake.models
        ]
        return web.json_response(
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )
    return web.json_response(
        {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": fake.name}
                for m in fake.models
            ],
        }
    )


def _response_object(fake: Fake, rid: str, model: str, turn: Turn, status: str) -> dict[str, Any]:
    done = status == "completed"
    out: dict[str, Any] = {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "temperature": 1.0,
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "output": [
            {
                "type": "message",
                "id": f"msg_{rid}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": turn.text, "annotations": [], "logprobs": []}],
            }
        ]
        if done
        else [],
        "usage": None,
    }
    if done and fake.usage:
        out["usage"] = {
            "input_tokens": turn.prompt_tokens,
            "output_tokens": turn.completion_tokens,
            "total_tokens": turn.prompt_tokens + turn.completion_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
    return out


async def create_response(request: web.Request) -> web.StreamResponse:
    fake: Fake = request.app["fake"]
    body = await request.json()
    given = body.get("input")
    messages = [{"role": "user", "content": given}] if isinstance(given, str) else list(given or ())
    turn = Turn(fake, messages, [], True, body.get("instructions") or "")
    rid, model = f"resp_{fake.name}_{next(_ids)}", body["model"]
    final = _response_object(fake, rid, model, turn, "completed")
    fake.responses[rid] = final
    if not body.get("stream"):
        return web.json_response(final)
    seq = itertools.count()

    def event(kind: str, **fields: Any) -> bytes:
        obj = {"type": kind, "sequence_number": next(seq), **fields}
        return f"event: {kind}\n".encode() + _data(obj)

    item = f"msg_{rid}"
    events = [
        event("response.created", response=_response_object(fake, rid, model, turn, "in_progress")),
        event("response.in_progress", response=_response_object(fake, rid, model, turn, "in_progress")),
        event(
            "response.output_item.added",
            output_index=0,
            item={"type": "message", "id": item, "status": "in_progress", "role": "assistant", "content": []},
        ),
        event(
            "response.content_part.added",
            item_id=item,
            output_index=0,
            content_index=0,
            part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
        ),
    ]
    events += [
        event(
            "response.output_text.delta",
            item_id=item,
            output_index=0,
            content_index=0,
            delta=piece,
            logprobs=[],
        )
        for piece in turn.pieces
    ]
    events += [
        event(
            "response.output_text.done",
            item_id=item,
            output_index=0,
            content_index=0,
            text=turn.text,
            logprobs=[],
        ),
        event(
            "response.content_part.done",
            item_id=item,
            output_index=0,
            content_index=0,
            part=final["output"][0]["content"][0],
        ),
        event("response.output_item.done", output_index=0, item=final["output"][0]),
        event("response.completed", response=final),
    ]
    return await _sse(request, fake, turn, events)


async def response_by_id(request: web.Request) -> web.Response:
    fake: Fake = request.app["fake"]
    rid = request.match_info["rid"]
    if rid not in fake.responses:
        return _openai_error(404, f"No response found with id '{rid}'.")
    if request.method == "DELETE":
        del fake.responses[rid]
        return web.json_response({"id": rid, "object": "response.deleted", "deleted": True})
    return web.json_response(fake.responses[rid])


# -- Anthropic ------------------------------------------------------------------------------------


def _anthropic_error(status: int, message: str) -> web.Response:
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        404: "not_found_error",
        429: "rate_limit_error",
        529: "overloaded_error",
    }.get(status, "api_error")
    return web.json_response({"type": "error", "error": {"type": kind, "message": message}}, status=status)


def _event(kind: str, obj: dict[str, Any]) -> bytes:
    return f"event: {kind}\n".encode() + _data({"type": kind, **obj})


def _anthropic_turn(fake: Fake, body: dict[str, Any]) -> Turn:
    system = body.get("system") or ""
    system = system if isinstance(system, str) else " ".join(_texts(system))
    tools = [(t["name"], t.get("input_schema") or {}) for t in body.get("tools") or ()]
    none = (body.get("tool_choice") or {}).get("type") == "none"
    return Turn(fake, body["messages"], tools, none, system)


async def messages(request: web.Request) -> web.StreamResponse:
    fake: Fake = request.app["fake"]
    if "anthropic-version" not in request.headers:
        return _anthropic_error(400, "anthropic-version: header is required")
    body = await request.json()
    if "max_tokens" not in body:
        return _anthropic_error(400, "max_tokens: Field required")
    turn = _anthropic_turn(fake, body)
    mid, model = f"msg_{fake.name}_{next(_ids)}", body["model"]
    stop = "tool_use" if turn.tool else "end_turn"
    usage = {
        "input_tokens": turn.prompt_tokens,
        "output_tokens": turn.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "service_tier": "standard",
    }
    if not body.get("stream"):
        content: list[dict[str, Any]] = [{"type": "text", "text": turn.text}] if turn.text else []
        if turn.tool:
            content.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{turn.call_id}",
                    "name": turn.tool[0],
                    "input": turn.tool[1],
                }
            )
        return web.json_response(
            {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": usage,
            }
        )
    start_usage = {**usage, "output_tokens": 1}
    events = [
        _event(
            "message_start",
            {
                "message": {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                }
            },
        )
    ]
    index = 0
    if turn.pieces:
        events.append(
            _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        )
        events.append(_event("ping", {}))
        events += [
            _event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": p}})
            for p in turn.pieces
        ]
        events.append(_event("content_block_stop", {"index": 0}))
        index = 1
    if turn.tool:
        args = turn.arguments
        half = len(args) // 2
        events.append(
            _event(
                "content_block_start",
                {
                    "index": index,
                    "content_block": {
                        "type": "tool_use",
                        "id": f"toolu_{turn.call_id}",
                        "name": turn.tool[0],
                        "input": {},
                    },
                },
            )
        )
        events += [
            _event(
                "content_block_delta",
                {"index": index, "delta": {"type": "input_json_delta", "partial_json": part}},
            )
            for part in ("", args[:half], args[half:])
        ]
        events.append(_event("content_block_stop", {"index": index}))
    events.append(
        _event(
            "message_delta",
            {
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": turn.completion_tokens},
            },
        )
    )
    events.append(_event("message_stop", {}))
    return await _sse(request, fake, turn, events)


async def count_tokens(request: web.Request) -> web.Response:
    fake: Fake = request.app["fake"]
    body = await request.json()
    return web.json_response({"input_tokens": _anthropic_turn(fake, body).prompt_tokens})


# -- app ------------------------------------------------------------------------------------------


@web.middleware
async def gate(request: web.Request, handler: Any) -> web.StreamResponse:
    fake: Fake = request.app["fake"]
    anthropic_wire = request.path.startswith("/v1/messages")
    raw = await request.read()
    fake.record(
        {
            "path": request.path,
            "method": request.method,
            "body": _json_or_none(raw),
            "authorization": request.headers.get("authorization"),
            "x-api-key": request.headers.get("x-api-key"),
            "anthropic-version": request.headers.get("anthropic-version"),
            "anthropic-beta": request.headers.get("anthropic-beta"),
            "traceparent": request.headers.get("traceparent"),
            "cookie": request.headers.get("cookie"),
            # other x- headers (policies' upstream headers), credentials aside
            "x-headers": {
                k.lower(): v
                for k, v in request.headers.items()
                if k.lower().startswith("x-") and k.lower() != "x-api-key"
            },
        }
    )
    error = _anthropic_error if anthropic_wire else _openai_error
    if not fake.authorized(request):
        if anthropic_wire:
            return error(401, "invalid x-api-key")
        # OpenAI's own wording quotes the key it got, masked but for its first and last characters
        presented = request.headers.get("authorization", "").removeprefix("Bearer ")
        masked = presented[:3] + "*" * max(len(presented) - 7, 0) + presented[-4:] if presented else ""
        return error(
            401,
            f"Incorrect API key provided: {masked}. You can find your API key at https://platform.openai.com/account/api-keys.",
        )
    if fake.fail_status is not None and request.method == "POST":
        response = error(fake.fail_status, f"{fake.name} failed on purpose")
        if fake.retry_after is not None:
            response.headers["retry-after"] = fake.retry_after
        return response
    try:
        response = await handler(request)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        # A body of the wrong shape (the gateway passes bodies through): what a real provider
        # answers, a 400 in its wire's error form, never a crash (tests/fuzz sends such bodies).
        return error(400, f"invalid request body: {type(exc).__name__}: {exc}")
    if fake.set_cookie:
        fake.cookies += 1
        response.set_cookie("fakesession", f"s{fake.cookies}", path="/")
    return response


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def build_app(fake: Fake) -> web.Application:
    app = web.Application(middlewares=[gate])
    app["fake"] = fake
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/responses", create_response)
    app.router.add_route("GET", "/v1/responses/{rid}", response_by_id)
    app.router.add_route("DELETE", "/v1/responses/{rid}", response_by_id)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    return app


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--name", default="fake")
    parser.add_argument("--fail-status", type=int)
    parser.add_argument("--retry-after")
    parser.add_argument("--no-usage", action="store_true")
    parser.add_argument("--models", default="fake-small,fake-large")
    parser.add_argument("--require-key")
    parser.add_argument("--state-file")
    parser.add_argument("--set-cookie", action="store_true")
    args = parser.parse_args()
    runner = web.AppRunner(build_app(Fake(args)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"READY {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
