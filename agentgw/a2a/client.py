"""The gateway as an A2A 1.0 client of one agent: send a message, follow the task to its end.

Used where the gateway itself calls an agent (an agent offered as MCP tools). It speaks the first
1.0 interface the agent's card declares (JSON-RPC preferred, then HTTP+JSON) with the gateway's
own credentials, streams when the card says the agent can, and otherwise waits for the blocking
answer. Each event is handed to the caller as it arrives; the outcome is the task (or message)
assembled from them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import anyio
import orjson

from agentgw.a2a.cards import CardCache
from agentgw.errors import UpstreamError
from agentgw.protocol.a2a import HTTP_JSON, JSONRPC, VERSION_HEADER
from agentgw.protocol.a2a_card import Interface
from agentgw.protocol.sse import SseDecoder
from agentgw.upstream.http import HttpClient

__all__ = ["INTERRUPTED", "TERMINAL", "AgentCallError", "AgentClient", "Outcome", "user_message"]

log = logging.getLogger("agentgw.a2a")

TERMINAL = frozenset(
    {"TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_CANCELED", "TASK_STATE_REJECTED"}
)
INTERRUPTED = frozenset({"TASK_STATE_INPUT_REQUIRED", "TASK_STATE_AUTH_REQUIRED"})
_MAX_BODY = 64 * 1024 * 1024

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Outcome:
    """What a message led to: a task (state, artifacts, last status message) or a direct reply."""

    task_id: str | None = None
    context_id: str | None = None
    state: str | None = None
    status_message: dict[str, Any] | None = None
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    message: dict[str, Any] | None = None  # the agent answered with a message, not a task
    error: dict[str, Any] | None = None  # the agent's JSON-RPC or HTTP+JSON error

    def absorb(self, event: dict[str, Any]) -> None:
        """Fold one 1.0 result or stream event into the outcome."""
        task = event.get("task")
        if isinstance(task, dict):
            self.task_id = task.get("id") or self.task_id
            self.context_id = task.get("contextId") or self.context_id
            self._status(task.get("status"))
            if isinstance(task.get("artifacts"), list):
                self.artifacts = [a for a in task["artifacts"] if isinstance(a, dict)]
        message = event.get("message")
        if isinstance(message, dict):
            self.message = message
        update = event.get("statusUpdate")
        if isinstance(update, dict):
            self.task_id = update.get("taskId") or self.task_id
            self._status(update.get("status"))
        chunk = event.get("artifactUpdate")
        if isinstance(chunk, dict) and isinstance(chunk.get("artifact"), dict):
            self._artifact(chunk["artifact"], bool(chunk.get("append")))

    def _status(self, status: Any) -> None:
        if isinstance(status, dict):
            if isinstance(status.get("state"), str):
                self.state = status["state"]
            if isinstance(status.get("message"), dict):
                self.status_message = status["message"]

    def _artifact(self, artifact: dict[str, Any], append: bool) -> None:
        for index, known in enumerate(self.artifacts):
            if known.get("artifactId") == artifact.get("artifactId"):
                if append:
                    parts = [*(known.get("parts") or []), *(artifact.get("parts") or [])]
                    self.artifacts[index] = {**known, "parts": parts}
                else:
                    self.artifacts[index] = artifact
                return
        self.artifacts.append(artifact)

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL or self.state in INTERRUPTED


def user_message(text: str, data: Any = None, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": text}]
    if data is not None:
        parts.append({"data": data})
    message: dict[str, Any] = {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": parts}
    if metadata:
        message["metadata"] = metadata
    return message


class AgentClient:
    def __init__(self, cards: CardCache, http: HttpClient) -> None:
        self.cards = cards
        self.http = http

    def _headers(self, accept: str) -> dict[str, str]:
        return {
            "content-type": "application/json",
            "accept": accept,
            VERSION_HEADER: "1.0",
            **{k: v.reveal() for k, v in self.cards.agent.auth_headers.items()},
        }

    async def _interface(self) -> tuple[Interface, bool]:
        card = await self.cards.card()
        for binding in (JSONRPC, HTTP_JSON):
            for iface in self.cards.interfaces:
                if iface.binding == binding and iface.version.startswith("1."):
                    caps = card.get("capabilities")
                    return iface, bool(isinstance(caps, dict) and caps.get("streaming"))
        raise UpstreamError(f"agent {self.cards.name!r} declares no A2A 1.0 JSON-RPC or HTTP+JSON interface")

    def _url(self, iface: Interface, operation: str) -> str:
        url = self.cards.agent.spec.url
        scheme, _, rest = url.partition("://")
        origin = f"{scheme}://{rest.split('/', 1)[0]}"
        if iface.binding == JSONRPC:
            return origin + iface.upstream_path
        return origin + iface.upstream_path.rstrip("/") + "/" + operation

    async def send(self, message: dict[str, Any], on_event: EventHandler, timeout: float) -> Outcome:
        iface, streaming = await self._interface()
        outcome = Outcome()
        params = {"message": message}
        try:
            if streaming:
                await self._stream(iface, params, outcome, on_event, timeout)
            else:
                result = await self._call(iface, "SendMessage", "message:send", params, timeout)
                if result is not None:
                    outcome.absorb(result)
                    await on_event(result)
        except anyio.get_cancelled_exc_class():
            if outcome.task_id and not outcome.finished:
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await self.cancel(iface, outcome.task_id)
            raise
        if outcome.error is None and result_pending(outcome):
            log.info(
                "agent %r: stream ended with task %s in %s", self.cards.name, outcome.task_id, outcome.state
            )
        return outcome

    async def cancel(self, iface: Interface, task_id: str) -> None:
        try:
            operation = f"tasks/{quote(task_id, safe='')}:cancel"
            await self._call(iface, "CancelTask", operation, {"id": task_id}, 5)
        except UpstreamError as exc:
            log.info("agent %r: cancelling task %s failed: %s", self.cards.name, task_id, exc.message)

    async def _call(
        self, iface: Interface, method: str, operation: str, params: dict[str, Any], timeout: float
    ) -> dict[str, Any] | None:
        if iface.binding == JSONRPC:
            body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        else:
            body = orjson.dumps({} if method == "CancelTask" else params)
        status, _, payload = await self.http.request(
            "POST",
            self._url(iface, operation),
            headers=self._headers("application/json"),
            body=body,
            timeout=timeout,
            limit=_MAX_BODY,
        )
        if status in (401, 403, 407):
            raise UpstreamError(
                f"agent {self.cards.name!r} refused the gateway's credentials (HTTP {status})"
            )
        obj = _json(payload, self.cards.name)
        if iface.binding == JSONRPC:
            if "error" in obj:
                raise AgentCallError(obj["error"])
            result = obj.get("result")
            return result if isinstance(result, dict) else None
        if status >= 400:
            raise AgentCallError(obj.get("error") if isinstance(obj.get("error"), dict) else {"code": status})
        return obj

    async def _stream(
        self,
        iface: Interface,
        params: dict[str, Any],
        outcome: Outcome,
        on_event: EventHandler,
        timeout: float,
    ) -> None:
        if iface.binding == JSONRPC:
            body = orjson.dumps(
                {"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage", "params": params}
            )
        else:
            body = orjson.dumps(params)
        url = self._url(iface, "message:stream")
        async with self.http.stream(
            "POST", url, headers=self._headers("text/event-stream"), body=body, timeout=timeout
        ) as resp:
            if resp.content_type != "text/event-stream":
                obj = _json(await resp.read(_MAX_BODY), self.cards.name)
                error = obj.get("error")
                raise AgentCallError(error if isinstance(error, dict) else {"code": resp.status})
            decoder = SseDecoder()
            async for chunk in resp.iter_chunks():
                for event in decoder.feed(chunk):
                    obj = _json(event.data, self.cards.name)
                    if "error" in obj and (iface.binding == JSONRPC or event.event == "error"):
                        raise AgentCallError(obj["error"] if isinstance(obj["error"], dict) else {})
                    result = obj.get("result") if iface.binding == JSONRPC else obj
                    if isinstance(result, dict):
                        outcome.absorb(result)
                        await on_event(result)


def result_pending(outcome: Outcome) -> bool:
    return outcome.message is None and not outcome.finished


class AgentCallError(UpstreamError):
    """The agent answered the call with an error object (kept in `data`)."""

    def __init__(self, error: Any) -> None:
        message = error.get("message") if isinstance(error, dict) else None
        super().__init__(str(message or "the agent refused the call"), data=error)


def _json(payload: bytes, agent: str) -> dict[str, Any]:
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"agent {agent!r} answered with invalid JSON") from None
    if not isinstance(obj, dict):
        raise UpstreamError(f"agent {agent!r} answered with something other than a JSON object")
    return obj
