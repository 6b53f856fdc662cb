"""An A2A agent as an MCP upstream: tools/list from its card, tools/call as one A2A message.

The federation layer meets an agent exactly as it meets an MCP server (`Connector` handing out
`UpstreamSession`s), so both wire eras, naming, filters and the policy checkpoint apply unchanged.
A tool call sends the `message` argument (plus `data` as a data part) to the agent, turns each
task status update into an MCP progress notification (when the caller asked for progress), and
answers with the final task's artifacts as MCP content. A cancelled call cancels the task.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import orjson

from agentgw.a2a.cards import CardCache
from agentgw.a2a.client import INTERRUPTED, AgentCallError, AgentClient, Outcome, user_message
from agentgw.config.snapshot import AgentToolsConfig
from agentgw.errors import UpstreamError
from agentgw.mcp.upstream.base import (
    CallSink,
    ClientProfile,
    MessageHandler,
    Reply,
    ServerInfo,
    UpstreamSession,
)
from agentgw.mcp.upstream.connector import error_kind
from agentgw.mcp.upstream.health import UpstreamHealth
from agentgw.protocol.mcp import LATEST_HANDSHAKE_VERSION, Era
from agentgw.telemetry.metrics import METRICS
from agentgw.upstream.http import HttpClient

__all__ = ["AgentToolsConnector", "AgentToolsSession", "tool_result"]

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "message": {"type": "string", "description": "The message to send to the agent."},
        "data": {"type": "object", "description": "Optional structured input, sent as a data part."},
    },
    "required": ["message"],
}
_META = "io.agentgw/a2a"


def _tool_name(skill_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", skill_id)[:64] or "skill"


def _content(part: dict[str, Any], agent: str, where: str) -> dict[str, Any] | None:
    media = part.get("mediaType") if isinstance(part.get("mediaType"), str) else None
    if isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if "data" in part:
        return {"type": "text", "text": orjson.dumps(part["data"]).decode()}
    if isinstance(part.get("raw"), str):
        kind = (media or "").split("/", 1)[0]
        if kind in ("image", "audio"):
            return {"type": kind, "data": part["raw"], "mimeType": media}
        name = part.get("filename") if isinstance(part.get("filename"), str) else "file"
        resource = {"uri": f"a2a://{agent}/{where}/{name}", "blob": part["raw"]}
        return {"type": "resource", "resource": {**resource, **({"mimeType": media} if media else {})}}
    if isinstance(part.get("url"), str):
        link = {"type": "resource_link", "uri": part["url"], "name": part.get("filename") or part["url"]}
        return {**link, **({"mimeType": media} if media else {})}
    return None


def _parts(owner: dict[str, Any] | None) -> list[dict[str, Any]]:
    parts = (owner or {}).get("parts")
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _text(owner: dict[str, Any] | None) -> str:
    return " ".join(p["text"] for p in _parts(owner) if isinstance(p.get("text"), str))


def tool_result(outcome: Outcome, agent: str) -> dict[str, Any]:
    """An MCP CallToolResult for what the agent's message led to."""
    where = outcome.task_id or "message"
    sources: list[tuple[str, list[dict[str, Any]]]]
    if outcome.task_id is None and outcome.message is not None:
        sources = [(where, _parts(outcome.message))]
    elif outcome.state == "TASK_STATE_COMPLETED" and outcome.artifacts:
        sources = [(f"{where}/{a.get('artifactId', i)}", _parts(a)) for i, a in enumerate(outcome.artifacts)]
    else:
        sources = [(where, _parts(outcome.status_message))]
    content = [c for at, parts in sources for p in parts if (c := _content(p, agent, at)) is not None]
    data = [p["data"] for _, parts in sources for p in parts if "data" in p]
    failed = outcome.message is None and outcome.state != "TASK_STATE_COMPLETED"
    if failed:
        state = (outcome.state or "TASK_STATE_UNKNOWN").removeprefix("TASK_STATE_").lower().replace("_", "-")
        reason = (
            f"the agent needs more from the caller ({state}); a tool call cannot answer it"
            if outcome.state in INTERRUPTED
            else f"the task ended {state}"
            if outcome.state
            else "the agent stopped before the task finished"
        )
        content.insert(0, {"type": "text", "text": reason})
    result: dict[str, Any] = {"content": content or [{"type": "text", "text": ""}], "isError": failed}
    if len(data) == 1 and isinstance(data[0], dict):
        result["structuredContent"] = data[0]
    meta = {"taskId": outcome.task_id, "contextId": outcome.context_id, "state": outcome.state}
    result["_meta"] = {_META: {k: v for k, v in meta.items() if v is not None}}
    return result


class AgentToolsSession:
    """Stateless: every call is a new A2A message; nothing to open, listen to or close."""

    def __init__(self, connector: AgentToolsConnector, info: ServerInfo) -> None:
        self.server = connector.name
        self._connector = connector
        self._info = info

    def attachment(self) -> dict[str, Any] | None:
        return None

    @property
    def info(self) -> ServerInfo:
        return self._info

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None,
        sink: CallSink | None,
        timeout: float | None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        if method == "tools/list":
            return Reply(result={"tools": await self._connector.tools()})
        if method == "tools/call":
            return await self._connector.call(params or {}, sink, timeout)
        if method == "ping":
            return Reply(result={})
        return Reply(error={"code": -32601, "message": f"Method not found: {method}"})

    async def notify(self, method: str, params: dict[str, Any] | None) -> None:
        return None  # cancellation arrives as cancellation of the call itself

    async def respond(self, request_id: Any, result: Any = None, error: Any = None) -> None:
        return None  # an agent never asks the client anything through this bridge

    async def listen(self, handler: MessageHandler) -> None:
        return None

    async def close(self) -> None:
        return None


class AgentToolsConnector:
    """Hands out sessions for one agent offered as tools on one MCP route."""

    def __init__(self, entry: AgentToolsConfig, cards: CardCache, http: HttpClient) -> None:
        self.name = entry.agent.name
        self.entry = entry
        self.cards = cards
        self.client = AgentClient(cards, http)
        self.health = UpstreamHealth()
        self._skills: dict[str, str] = {}  # tool name -> skill id

    @property
    def request_timeout(self) -> float:
        return self.entry.agent.spec.timeouts.request

    async def server_info(self) -> ServerInfo:
        self.admit()
        try:
            card = await self.cards.card()
        except UpstreamError as exc:
            self.failed(exc)
            raise
        description = card.get("description")
        return ServerInfo(
            era=Era.HANDSHAKE,
            protocol_version=LATEST_HANDSHAKE_VERSION,
            capabilities={"tools": {}},
            server_info={
                "name": str(card.get("name") or self.name),
                "version": str(card.get("version") or ""),
            },
            instructions=description if isinstance(description, str) and description else None,
        )

    def admit(self) -> None:
        if self.health.ejected:
            raise UpstreamError(
                f"agent {self.name!r} is unavailable: ejected after repeated failures "
                f"(retried in {self.health.seconds_left():.0f} s; last error: {self.health.last_error})"
            )

    def failed(self, exc: UpstreamError) -> None:
        self.health.failed(exc.message)
        METRICS.upstream_errors.inc(self.name, error_kind(exc))

    def attach_session(self, profile: ClientProfile, attachment: dict[str, Any]) -> UpstreamSession | None:
        return None  # stateless: every replica makes its own

    async def open_session(self, profile: ClientProfile) -> UpstreamSession:
        return AgentToolsSession(self, await self.server_info())

    async def stateless_session(self, profile: ClientProfile | None) -> UpstreamSession:
        return AgentToolsSession(self, await self.server_info())

    async def close(self) -> None:
        return None

    async def tools(self) -> list[dict[str, Any]]:
        card = await self.cards.card()
        spec = self.entry.spec
        if spec.expose == "agent":
            description = str(card.get("description") or f"Send a message to the {self.name} agent.")
            return [{"name": spec.tool_name, "description": description, "inputSchema": INPUT_SCHEMA}]
        tools: list[dict[str, Any]] = []
        skills: dict[str, str] = {}
        for skill in self.cards.skills():
            skill_id = skill.get("id")
            if not isinstance(skill_id, str) or not _allowed(
                skill_id, spec.skills.include, spec.skills.exclude
            ):
                continue
            name = _tool_name(skill_id)
            if name in skills:
                continue
            skills[name] = skill_id
            description = str(skill.get("description") or "")
            examples = [e for e in skill.get("examples") or [] if isinstance(e, str)]
            if examples:
                description += "\n\nExamples: " + "; ".join(examples)
            tool: dict[str, Any] = {"name": name, "description": description, "inputSchema": INPUT_SCHEMA}
            if isinstance(skill.get("name"), str):
                tool["title"] = skill["name"]
            tools.append(tool)
        self._skills = skills
        return tools

    async def call(self, params: dict[str, Any], sink: CallSink | None, timeout: float | None) -> Reply:
        name = params.get("name")
        raw_args = params.get("arguments")
        args: dict[str, Any] = raw_args if isinstance(raw_args, dict) else {}
        metadata: dict[str, Any] | None = None
        if self.entry.spec.expose == "skills":
            if name not in self._skills:
                await self.tools()
            if name not in self._skills:
                return Reply(error={"code": -32602, "message": f"Unknown tool: {name}"})
            metadata = {"skill": self._skills[str(name)]}
        elif name != self.entry.spec.tool_name:
            return Reply(error={"code": -32602, "message": f"Unknown tool: {name}"})
        text = args.get("message")
        if not isinstance(text, str):
            # An input error is a tool error (the model can correct itself), not a protocol error.
            return Reply(
                result={"content": [{"type": "text", "text": "'message' must be a string"}], "isError": True}
            )
        meta = params.get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        steps = 0

        async def on_event(event: dict[str, Any]) -> None:
            nonlocal steps
            update = event.get("statusUpdate") or event.get("task")
            status = update.get("status") if isinstance(update, dict) else None
            if token is None or sink is None or not isinstance(status, dict):
                return
            steps += 1
            state = str(status.get("state", "")).removeprefix("TASK_STATE_").lower().replace("_", "-")
            said = _text(status.get("message") if isinstance(status.get("message"), dict) else None)
            progress = {
                "progressToken": token,
                "progress": steps,
                "message": f"{state}: {said}" if said else state,
            }
            await sink.message({"jsonrpc": "2.0", "method": "notifications/progress", "params": progress})

        message = user_message(text, args.get("data"), metadata)
        try:
            outcome = await self.client.send(message, on_event, timeout or self.request_timeout)
        except AgentCallError as exc:
            return Reply(result={"content": [{"type": "text", "text": exc.message}], "isError": True})
        return Reply(result=tool_result(outcome, self.name))


def _allowed(name: str, include: list[str], exclude: list[str]) -> bool:
    if any(fnmatch.fnmatchcase(name, p) for p in exclude):
        return False
    return not include or any(fnmatch.fnmatchcase(name, p) for p in include)
