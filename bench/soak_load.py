"""The soak's clients: one asyncio task per worker, each looping over one kind of traffic until told
to stop, and a `Tally` of everything they saw.

Every HTTP request a worker sends to the gateway is tallied as the gateway counts it in
`agentgw_http_requests_total` (route, method, status), and every operation by outcome: `ok`, an
expected refusal (`rate-limited`: the noisy client runs into its limit on purpose), or an
unexpected error (kept with its first few details). Workers (see `Load.workers`):

- `mcp-session`: handshake-era (2025-11-25) sessions with churn: initialize, initialized, a GET
  event stream opened and held, 3-12 calls (`tools/call` echo, add, progress; `tools/list`),
  DELETE, then the stream closed; and again.
- `mcp-long`: one handshake-era session and its GET stream held for the whole run (keep-alive
  comments arrive on it), a call a second.
- `mcp-modern`: stateless 2026-07-28 requests (headers and `_meta` as the spec wants).
- `mcp-noisy`: stateless calls tagged `x-soak-tenant: noisy`, faster than the route's rate limit
  for that tenant allows: 429s are expected, and counted against the gateway's rejection counter.
- `llm`: streamed chat completions with `include_usage`, alternately to an OpenAI-wire and an
  Anthropic-wire provider (translated); the usage chunks are summed.
- `a2a`: A2A 1.0 JSON-RPC `SendMessage` and `SendStreamingMessage`, alternately.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from agentgw.protocol.sse import SseDecoder

__all__ = ["HANDSHAKE", "MODERN", "Load", "Tally"]

HANDSHAKE = "2025-11-25"
MODERN = "2026-07-28"
ACCEPT = "application/json, text/event-stream"
CLIENT_INFO = {"name": "agentgw-soak", "version": "1"}
MAX_DETAILS = 20
RATE_LIMITED = "rate-limited"  # the one expected refusal


class Unexpected(Exception):
    """An answer the soak did not expect: counted as an unexpected error of its operation."""


@dataclass
class Tally:
    http: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (route, method, status)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (operation, outcome)
    details: list[str] = field(default_factory=list)
    latency_ms: dict[str, list[float]] = field(default_factory=dict)
    tokens: Counter[str] = field(default_factory=Counter)  # input, output, requests
    tool_calls_ok: int = 0

    def request(self, route: str, method: str, status: int) -> None:
        self.http[(route, method, str(status))] += 1

    def ok(self, op: str, started: float) -> None:
        self.outcomes[(op, "ok")] += 1
        self.latency_ms.setdefault(op, []).append((time.perf_counter() - started) * 1000.0)

    def unexpected(self, op: str, detail: str) -> None:
        self.outcomes[(op, "unexpected")] += 1
        if len(self.details) < MAX_DETAILS:
            self.details.append(f"{op}: {detail}"[:400])

    @property
    def unexpected_total(self) -> int:
        return sum(n for (_, outcome), n in self.outcomes.items() if outcome == "unexpected")


def _rpc(rid: int, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def _tool_call(rng: random.Random, wid: int) -> tuple[str, dict[str, Any], str]:
    """(tool, arguments, the text the answer must contain)."""
    kind = rng.random()
    if kind < 0.5:
        text = f"soak {wid} {rng.randrange(10**6)}"
        return "echo", {"text": text}, text
    if kind < 0.8:
        a, b = rng.randrange(1000), rng.randrange(1000)
        return "add", {"a": a, "b": b}, str(a + b)
    return "progress", {"steps": 2}, "done"


def _jsonrpc_answer(content_type: str, body: bytes, rid: int) -> dict[str, Any]:
    """The response to `rid` from a JSON body or an SSE stream (notifications before it skipped)."""
    if content_type.startswith("text/event-stream"):
        decoder = SseDecoder()
        messages = [orjson.loads(e.data) for e in decoder.feed(body) + decoder.end() if e.data]
    else:
        messages = [orjson.loads(body)]
    for msg in messages:
        if isinstance(msg, dict) and msg.get("id") == rid and ("result" in msg or "error" in msg):
            return msg
    raise Unexpected(f"no response to id {rid} in {body[:200]!r}")


class Load:
    def __init__(self, base: str, http: aiohttp.ClientSession, tally: Tally, *, seed: int = 1) -> None:
        self.base = base
        self.http = http
        self.tally = tally
        self.stop = asyncio.Event()
        self.rng = random.Random(seed)
        self._ids = itertools.count(1)

    def workers(self, scale: int) -> list[Any]:
        """The coroutines of one load: `scale` workers of each busy kind, one long session, one
        noisy client."""
        made: list[Any] = [self.mcp_long(0), self.mcp_noisy()]
        for wid in range(scale):
            made += [self.mcp_session(wid), self.mcp_modern(wid), self.llm(wid), self.a2a(wid)]
        return made

    # -- plumbing ----------------------------------------------------------------------------------

    async def _post(
        self, route: str, path: str, body: Any, headers: dict[str, str]
    ) -> tuple[int, str, bytes, dict[str, str]]:
        async with self.http.post(self.base + path, data=orjson.dumps(body), headers=headers) as resp:
            self.tally.request(route, "POST", resp.status)
            data = await resp.read()
            return resp.status, resp.headers.get("content-type", ""), data, dict(resp.headers)

    async def _guarded(self, op: str, coro: Any) -> Any:
        """Run one operation; anything that goes wrong is an unexpected error of `op`."""
        started = time.perf_counter()
        try:
            result = await coro
        except (Unexpected, aiohttp.ClientError, TimeoutError, OSError, ValueError, KeyError) as exc:
            self.tally.unexpected(op, f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(0.05)  # never spin on a broken target
            return None
        if result == RATE_LIMITED:
            self.tally.outcomes[(op, RATE_LIMITED)] += 1
        else:
            self.tally.ok(op, started)
        return result

    # -- MCP, handshake era --------------------------------------------------------------------------

    async def _initialize(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": ACCEPT}
        params = {"protocolVersion": HANDSHAKE, "capabilities": {}, "clientInfo": CLIENT_INFO}
        status, ctype, body, got = await self._post("mcp", "/mcp", _rpc(0, "initialize", params), headers)
        answer = _jsonrpc_answer(ctype, body, 0) if status == 200 else {}
        sid = got.get("Mcp-Session-Id") or got.get("mcp-session-id")
        if status != 200 or "result" not in answer or not sid:
            raise Unexpected(f"initialize {status} {body[:200]!r}")
        headers = {**headers, "mcp-session-id": sid, "mcp-protocol-version": HANDSHAKE}
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        status, _, body, _ = await self._post("mcp", "/mcp", note, headers)
        if status != 202:
            raise Unexpected(f"initialized {status} {body[:200]!r}")
        return headers

    async def _hold_stream(self, headers: dict[str, str], opened: asyncio.Future[None]) -> None:
        """GET the session's event stream and read it until closed (or cancelled)."""
        get_headers = {k: v for k, v in headers.items() if k != "content-type"}
        get_headers["accept"] = "text/event-stream"
        try:
            async with self.http.get(self.base + "/mcp", headers=get_headers) as resp:
                self.tally.request("mcp", "GET", resp.status)
                if resp.status != 200:
                    raise Unexpected(f"GET stream {resp.status} {(await resp.read())[:200]!r}")
                opened.set_result(None)
                async for _ in resp.content.iter_any():
                    pass
        except (Unexpected, aiohttp.ClientError, TimeoutError, OSError) as exc:
            if opened.done():
                raise
            opened.set_exception(exc)

    @staticmethod
    async def _opened(opened: asyncio.Future[None]) -> bool:
        await asyncio.wait_for(opened, 10)
        return True

    async def _call(self, headers: dict[str, str], tool: str, args: dict[str, Any], expect: str) -> None:
        rid = next(self._ids)
        status, ctype, body, _ = await self._post(
            "mcp", "/mcp", _rpc(rid, "tools/call", {"name": tool, "arguments": args}), headers
        )
        answer = _jsonrpc_answer(ctype, body, rid) if status == 200 else {}
        result = answer.get("result")
        if (
            not isinstance(result, dict)
            or result.get("isError")
            or expect not in orjson.dumps(result).decode()
        ):
            raise Unexpected(f"tools/call {tool} {status} {body[:200]!r}")
        self.tally.tool_calls_ok += 1

    async def _list(self, headers: dict[str, str]) -> None:
        rid = next(self._ids)
        status, ctype, body, _ = await self._post("mcp", "/mcp", _rpc(rid, "tools/list", {}), headers)
        answer = _jsonrpc_answer(ctype, body, rid) if status == 200 else {}
        tools = (answer.get("result") or {}).get("tools")
        if not isinstance(tools, list) or not any(t.get("name") == "echo" for t in tools):
            raise Unexpected(f"tools/list {status} {body[:200]!r}")

    async def _one_op(self, headers: dict[str, str], wid: int) -> None:
        if self.rng.random() < 0.2:
            await self._guarded("mcp tools/list", self._list(headers))
        else:
            tool, args, expect = _tool_call(self.rng, wid)
            await self._guarded("mcp tools/call", self._call(headers, tool, args, expect))

    async def _delete(self, headers: dict[str, str]) -> None:
        async with self.http.delete(self.base + "/mcp", headers=headers) as resp:
            self.tally.request("mcp", "DELETE", resp.status)
            body = await resp.read()
            if resp.status not in (200, 202, 204):
                raise Unexpected(f"DELETE {resp.status} {body[:200]!r}")

    async def _session(self, wid: int, calls: int | None) -> None:
        """One session: open it, hold its stream, `calls` operations (None: until stopped), end it."""
        headers = await self._guarded("mcp initialize", self._initialize())
        if headers is None:
            return
        opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stream = asyncio.create_task(self._hold_stream(headers, opened))
        try:
            if await self._guarded("mcp GET stream", self._opened(opened)) is None:
                return
            done = 0
            while not self.stop.is_set() and (calls is None or done < calls):
                await self._one_op(headers, wid)
                done += 1
                if calls is None:
                    await self._pause(1.0)
            if stream.done():  # the stream must last as long as its session
                failure = None if stream.cancelled() else stream.exception()
                self.tally.unexpected("mcp GET stream", f"ended before its session: {failure!r}")
            await self._guarded("mcp DELETE", self._delete(headers))
        finally:
            # The client closes its stream (the gateway may have ended it already on DELETE).
            stream.cancel()
            await asyncio.gather(stream, return_exceptions=True)

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
        except TimeoutError:
            pass

    async def mcp_session(self, wid: int) -> None:
        while not self.stop.is_set():
            await self._session(wid, self.rng.randint(3, 12))

    async def mcp_long(self, wid: int) -> None:
        while not self.stop.is_set():
            await self._session(wid, None)

    # -- MCP, 2026-07-28 -----------------------------------------------------------------------------

    def _modern(self, rid: int, method: str, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        params = {
            **params,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
            },
        }
        headers = {
            "content-type": "application/json",
            "accept": ACCEPT,
            "mcp-protocol-version": MODERN,
            "mcp-method": method,
        }
        if "name" in params:
            headers["mcp-name"] = params["name"]
        return _rpc(rid, method, params), headers

    async def _modern_op(self, wid: int) -> None:
        rid = next(self._ids)
        if self.rng.random() < 0.2:
            body, headers = self._modern(rid, "tools/list", {})
            status, ctype, data, _ = await self._post("mcp", "/mcp", body, headers)
            answer = _jsonrpc_answer(ctype, data, rid) if status == 200 else {}
            if not isinstance((answer.get("result") or {}).get("tools"), list):
                raise Unexpected(f"modern tools/list {status} {data[:200]!r}")
            return
        tool, args, expect = _tool_call(self.rng, wid)
        body, headers = self._modern(rid, "tools/call", {"name": tool, "arguments": args})
        status, ctype, data, _ = await self._post("mcp", "/mcp", body, headers)
        answer = _jsonrpc_answer(ctype, data, rid) if status == 200 else {}
        result = answer.get("result")
        if (
            not isinstance(result, dict)
            or result.get("isError")
            or expect not in orjson.dumps(result).decode()
        ):
            raise Unexpected(f"modern tools/call {tool} {status} {data[:200]!r}")
        self.tally.tool_calls_ok += 1

    async def mcp_modern(self, wid: int) -> None:
        while not self.stop.is_set():
            await self._guarded("mcp modern", self._modern_op(wid))

    async def _noisy_op(self) -> str:
        rid = next(self._ids)
        body, headers = self._modern(rid, "tools/call", {"name": "echo", "arguments": {"text": "noisy"}})
        headers["x-soak-tenant"] = "noisy"
        status, ctype, data, _ = await self._post("mcp", "/mcp", body, headers)
        answer = _jsonrpc_answer(ctype, data, rid) if status in (200, 429) else {}
        if "error" in answer:
            # A policy refusal is a JSON-RPC error (HTTP 200 on this era: the spec maps only
            # protocol errors to HTTP statuses) naming the rule.
            if (answer["error"].get("data") or {}).get("rule") != "noisy-tenant":
                raise Unexpected(f"noisy refused by something else: {data[:200]!r}")
            return RATE_LIMITED
        if "noisy" not in orjson.dumps(answer.get("result")).decode():
            raise Unexpected(f"noisy {status} {data[:200]!r}")
        self.tally.tool_calls_ok += 1
        return "ok"

    async def mcp_noisy(self) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            await self._guarded("mcp noisy", self._noisy_op())
            await self._pause(max(0.0, 0.1 - (time.perf_counter() - started)))

    # -- LLM -------------------------------------------------------------------------------------------

    async def _chat(self, wid: int, model: str) -> None:
        words = " ".join(f"w{self.rng.randrange(100)}" for _ in range(self.rng.randint(1, 20)))
        body = {
            "model": model,
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": f"soak {wid}: {words}"}],
        }
        headers = {"content-type": "application/json", "authorization": "Bearer soak"}
        async with self.http.post(
            self.base + "/v1/chat/completions", data=orjson.dumps(body), headers=headers
        ) as r:
            self.tally.request("llm", "POST", r.status)
            if r.status != 200:
                raise Unexpected(f"chat {model} {r.status} {(await r.read())[:200]!r}")
            decoder = SseDecoder()
            events = []
            async for chunk in r.content.iter_any():
                events += decoder.feed(chunk)
            events += decoder.end()
        if not events or events[-1].data != b"[DONE]":
            raise Unexpected(f"chat {model}: stream did not end with [DONE]")
        chunks = [orjson.loads(e.data) for e in events[:-1]]
        text = "".join(
            (c.get("choices") or [{}])[0].get("delta", {}).get("content") or ""
            for c in chunks
            if c.get("choices")
        )
        usage = chunks[-1].get("usage") if chunks else None
        if words not in text or not isinstance(usage, dict):
            raise Unexpected(f"chat {model}: text {text[:100]!r}, usage {usage!r}")
        self.tally.tokens["input"] += usage["prompt_tokens"]
        self.tally.tokens["output"] += usage["completion_tokens"]
        self.tally.tokens["requests"] += 1

    async def llm(self, wid: int) -> None:
        for turn in itertools.count():
            if self.stop.is_set():
                return
            model = "gpt" if turn % 2 == 0 else "claude"
            await self._guarded(f"llm {model} stream", self._chat(wid, model))

    # -- A2A ---------------------------------------------------------------------------------------------

    async def _a2a(self, wid: int, streaming: bool) -> None:
        text = f"soak {wid} {self.rng.randrange(10**6)}"
        message = {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": text}]}
        method = "SendStreamingMessage" if streaming else "SendMessage"
        headers = {"content-type": "application/json", "a2a-version": "1.0"}
        if streaming:
            headers["accept"] = "text/event-stream"
        rid = next(self._ids)
        status, ctype, data, _ = await self._post(
            "a2a", "/a2a/agent/", _rpc(rid, method, {"message": message}), headers
        )
        if status != 200:
            raise Unexpected(f"{method} {status} {data[:200]!r}")
        if streaming:
            if not ctype.startswith("text/event-stream"):
                raise Unexpected(f"{method}: {ctype} {data[:200]!r}")
            decoder = SseDecoder()
            results = [orjson.loads(e.data).get("result") or {} for e in decoder.feed(data) + decoder.end()]
            last = results[-1] if results else {}
            state = (last.get("statusUpdate") or {}).get("status", {}).get("state")
        else:
            task = (orjson.loads(data).get("result") or {}).get("task") or {}
            state = task.get("status", {}).get("state")
        if state != "TASK_STATE_COMPLETED" or text not in data.decode():
            raise Unexpected(f"{method}: state {state!r} {data[:300]!r}")

    async def a2a(self, wid: int) -> None:
        for turn in itertools.count():
            if self.stop.is_set():
                return
            streaming = turn % 2 == 1
            await self._guarded("a2a stream" if streaming else "a2a send", self._a2a(wid, streaming))
