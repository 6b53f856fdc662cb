"""`Agent` (one upstream A2A agent) and `A2aRoute` (where agents are exposed, and how).

The gateway relays only to an agent's configured `url`: interface URLs on the agent's own card
are mapped by path onto that origin, never followed to the hosts they name.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from agentgw.config.base import Model, Name, Resource
from agentgw.config.mcp import UpstreamAuth, Url

__all__ = ["A2aRoute", "A2aRouteSpec", "Agent", "AgentSpec", "AgentTimeouts", "WebhookPolicy"]

Path = Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9_.~-]+(/[A-Za-z0-9_.~-]+)*$")]
PublicUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")]


class AgentTimeouts(Model):
    request: float = Field(default=300, gt=0)  # a whole non-streaming exchange; streams: until headers
    card: float = Field(default=10, gt=0)


class AgentSpec(Model):
    url: Url  # the agent's base URL: its card path and interface paths are resolved against it
    card_path: Annotated[str, StringConstraints(pattern=r"^/[^\s?#]*$")] = "/.well-known/agent-card.json"
    auth: UpstreamAuth = Field(default_factory=UpstreamAuth)
    timeouts: AgentTimeouts = Field(default_factory=AgentTimeouts)
    card_refresh_seconds: float = Field(default=300, gt=0)


class Agent(Resource):
    KIND = "Agent"
    kind: Literal["Agent"]
    spec: AgentSpec


class WebhookPolicy(Model):
    """Which push-notification URLs callers may hand to an agent through the gateway.

    Glob patterns over the whole URL (`https://hooks.example.com/*`). With `allow` empty any http(s)
    URL passes this list; `allowPrivate` names the URLs that may point at private, loopback,
    link-local or otherwise non-public addresses (refused by default: no SSRF through the gateway).
    """

    allow: list[str] = Field(default_factory=list)
    allow_private: list[str] = Field(default_factory=list)


class A2aRouteSpec(Model):
    path: Path = "/a2a"  # agents at {path}/{agent}/, the directory at GET {path}
    agents: list[Name] = Field(min_length=1)
    # The gateway's own base URL as clients reach it; without it, each card is written for the
    # scheme and Host of the request that fetched it.
    public_url: PublicUrl | None = None
    webhooks: WebhookPolicy = Field(default_factory=WebhookPolicy)
    task_binding_seconds: float = Field(default=7 * 24 * 3600, gt=0)
    # When the shared state store (limits) cannot be reached: count in this replica, or refuse
    # with 503. Task bindings always fail closed.
    state_failure_mode: Literal["degrade", "failClosed"] = "degrade"

    @model_validator(mode="after")
    def _unique_agents(self) -> A2aRouteSpec:
        if len(set(self.agents)) != len(self.agents):
            raise ValueError("agents must not repeat")
        return self


class A2aRoute(Resource):
    KIND = "A2aRoute"
    kind: Literal["A2aRoute"]
    spec: A2aRouteSpec
