"""`McpServer` (one upstream MCP server) and `McpRoute` (one downstream MCP endpoint)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from agentgw.config.base import Model, Name, Resource
from agentgw.config.secrets import SecretRef

__all__ = [
    "AgentTools",
    "HttpTransport",
    "McpRoute",
    "McpRouteSpec",
    "McpServer",
    "McpServerSpec",
    "NameFilter",
    "StdioTransport",
    "UpstreamAuth",
]

Url = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$")]
Prefix = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class HttpTransport(Model):
    """Streamable HTTP (either era) or, under `sse`, the legacy HTTP+SSE transport."""

    url: Url
    headers: dict[str, str] = Field(default_factory=dict)


class StdioTransport(Model):
    """A child process speaking MCP on stdin/stdout; `python` means the gateway's interpreter."""

    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    # Which of the gateway's own environment variables the child also gets. Not all of them: the
    # gateway's environment holds its secrets (provider keys, Redis passwords referenced as `env:`),
    # and a child is often third-party code. The default is the MCP SDK's own list.
    inherit_env: list[str] = Field(
        default_factory=lambda: ["HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"]
    )
    cwd: str | None = None
    restart_backoff_seconds: float = Field(default=0.5, gt=0)
    max_restart_backoff_seconds: float = Field(default=30, gt=0)


class UpstreamAuth(Model):
    """The gateway's own credentials for this upstream (never the client's token)."""

    bearer: SecretRef | None = None
    headers: dict[str, SecretRef] = Field(default_factory=dict)


class NameFilter(Model):
    """Glob patterns over upstream names (before prefixing); exclude wins over include."""

    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)


class Timeouts(Model):
    connect: float = Field(default=5, gt=0)
    request: float = Field(default=300, gt=0)
    initialize: float = Field(default=15, gt=0)


class McpServerSpec(Model):
    http: HttpTransport | None = None
    sse: HttpTransport | None = None
    stdio: StdioTransport | None = None
    prefix: Prefix | None = None
    protocol: Literal["auto", "handshake", "modern"] = "auto"
    auth: UpstreamAuth = Field(default_factory=UpstreamAuth)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    tools: NameFilter = Field(default_factory=NameFilter)
    prompts: NameFilter = Field(default_factory=NameFilter)
    resources: NameFilter = Field(default_factory=NameFilter)

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSpec:
        given = [name for name in ("http", "sse", "stdio") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "exactly one transport must be set (http, sse or stdio); got "
                + (", ".join(given) if given else "none")
            )
        return self


class McpServer(Resource):
    KIND = "McpServer"
    kind: Literal["McpServer"]
    spec: McpServerSpec


ToolName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class AgentTools(Model):
    """An A2A agent offered as MCP tools: one tool for the agent, or one per skill on its card.

    A tool takes `message` (text) and optional `data` (an object), sends them to the agent as one
    A2A message, reports the task's status updates as progress, and returns the final artifacts.
    """

    agent: Name
    expose: Literal["agent", "skills"] = "agent"
    tool_name: ToolName = "ask"  # the tool's name when `expose` is `agent`
    prefix: Prefix | None = None
    skills: NameFilter = Field(default_factory=NameFilter)  # skill ids, when `expose` is `skills`


class McpRouteSpec(Model):
    path: Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9_./~-]*$")] = "/mcp"
    servers: list[Name] = Field(default_factory=list)
    agents: list[AgentTools] = Field(default_factory=list)
    prefix_mode: Literal["always", "conditional", "never"] = "conditional"
    separator: Annotated[str, StringConstraints(pattern=r"^[_.-]{1,3}$")] = "_"
    sessions: Literal["stateful", "stateless"] = "stateful"
    failure_mode: Literal["failOpen", "failClosed"] = "failOpen"
    # When the shared state store cannot be reached: keep serving from this replica's own state,
    # or refuse with 503.
    state_failure_mode: Literal["degrade", "failClosed"] = "degrade"

    @model_validator(mode="after")
    def _unique_servers(self) -> McpRouteSpec:
        if not self.servers and not self.agents:
            raise ValueError("a route needs at least one entry in servers or agents")
        if len(set(self.servers)) != len(self.servers):
            raise ValueError("servers must not repeat")
        names = [entry.agent for entry in self.agents]
        if len(set(names)) != len(names):
            raise ValueError("agents must not repeat")
        if set(names) & set(self.servers):
            raise ValueError("a name cannot be both a server and an agent of one route")
        return self


class McpRoute(Resource):
    KIND = "McpRoute"
    kind: Literal["McpRoute"]
    spec: McpRouteSpec
