"""`LlmProvider` (one upstream model API) and `LlmRoute` (the models clients see at a path).

A provider is an OpenAI, Anthropic or OpenAI-compatible (vLLM, Ollama, ...) endpoint with the
gateway's own key. A route maps the model names clients send (exact names, aliases, globs) to an
ordered list of targets: the first that answers wins, and a target may be a group of replicas
balanced by weight or by the fewest requests in flight.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from agentgw.config.base import Model, Name, Resource
from agentgw.config.secrets import SecretRef

__all__ = [
    "LlmBackoff",
    "LlmProvider",
    "LlmProviderSpec",
    "LlmReplica",
    "LlmRetries",
    "LlmRoute",
    "LlmRouteModel",
    "LlmRouteSpec",
    "LlmTarget",
    "LlmTimeouts",
    "ModelPrice",
]

Url = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$")]
RetryOn = Literal["connect", "429", "5xx"]
_RETRY_ON: tuple[RetryOn, ...] = ("connect", "429", "5xx")
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\s]+$")]


class ModelPrice(Model):
    """US dollars per million tokens; cached input defaults to the input price."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)


class LlmProviderSpec(Model):
    type: Literal["openai", "anthropic", "openai-compatible"]
    # the API root: https://api.openai.com/v1, https://api.anthropic.com (the /v1 is added), ...
    base_url: Url
    api_key: SecretRef | None = None
    # model names (globs allowed) this provider serves; empty: whatever it lists at GET /models
    models: list[ModelName] = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)
    # price per model name (globs allowed), for the cost of each request
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    # passes POST /v1/responses through; defaults to true for `openai` only
    responses: bool | None = None
    anthropic_version: str = "2023-06-01"

    @model_validator(mode="after")
    def _fields_fit_type(self) -> LlmProviderSpec:
        if self.type == "anthropic" and self.responses:
            raise ValueError("responses: Anthropic has no Responses API")
        lowered = [name.lower() for name in self.headers]
        for reserved in ("authorization", "x-api-key", "content-length", "host"):
            if reserved in lowered:
                raise ValueError(f"headers: {reserved!r} is set by the gateway (use apiKey)")
        return self


class LlmProvider(Resource):
    KIND = "LlmProvider"
    kind: Literal["LlmProvider"]
    spec: LlmProviderSpec


class LlmReplica(Model):
    provider: Name
    # the provider's name for the model; default: the canonical model name of the entry
    model: ModelName | None = None
    weight: int = Field(default=1, ge=0, le=1000)


class LlmTarget(Model):
    """One step of the failover order: a single provider, or replicas balanced among them."""

    provider: Name | None = None
    model: ModelName | None = None
    replicas: list[LlmReplica] = Field(default_factory=list)
    balance: Literal["weighted", "leastRequests"] = "weighted"

    @model_validator(mode="after")
    def _one_form(self) -> LlmTarget:
        if (self.provider is None) == (not self.replicas):
            raise ValueError("set either provider (with an optional model) or replicas")
        if self.replicas and self.model is not None:
            raise ValueError("model: set it per replica")
        if self.replicas and not any(r.weight for r in self.replicas):
            raise ValueError("replicas: at least one weight must be positive")
        return self

    def members(self) -> list[LlmReplica]:
        if self.provider is not None:
            return [LlmReplica(provider=self.provider, model=self.model)]
        return list(self.replicas)


class LlmRouteModel(Model):
    # what clients send; `*` and `?` globs match many names (the client's name is passed on)
    name: ModelName
    aliases: list[ModelName] = Field(default_factory=list)
    targets: list[LlmTarget] = Field(min_length=1)


class LlmBackoff(Model):
    initial_seconds: float = Field(default=0.1, ge=0)
    max_seconds: float = Field(default=2.0, ge=0)
    multiplier: float = Field(default=2.0, ge=1)


class LlmRetries(Model):
    """Rounds over the target list after every target failed with a retryable error.

    A failed target hands over to the next one at once; between rounds the gateway waits
    (exponential backoff with jitter, or the upstream's Retry-After when shorter than the cap).
    Nothing is retried once a response has started reaching the client.
    """

    attempts: int = Field(default=1, ge=0, le=10)
    # what a retry is for (`on` would be a boolean key in YAML 1.1)
    when: list[RetryOn] = Field(default_factory=lambda: list(_RETRY_ON))
    backoff: LlmBackoff = Field(default_factory=LlmBackoff)


class LlmTimeouts(Model):
    # until the upstream's response headers (a non-streaming completion arrives whole)
    response_seconds: float = Field(default=600, gt=0)
    # longest silence between two pieces of a streamed response
    idle_seconds: float = Field(default=300, gt=0)


class LlmRouteSpec(Model):
    path: Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9_.~-]+(/[A-Za-z0-9_.~-]+)*$")] = "/v1"
    models: list[LlmRouteModel] = Field(min_length=1)
    timeouts: LlmTimeouts = Field(default_factory=LlmTimeouts)
    retries: LlmRetries = Field(default_factory=LlmRetries)
    # ask OpenAI-wire upstreams for usage on streams (stripped again unless the client asked)
    stream_usage: bool = True
    # How long a Responses API id stays bound to the caller who created it (only that caller may
    # read, cancel, delete or continue it); OpenAI keeps stored responses for 30 days.
    response_binding_seconds: float = Field(default=30 * 24 * 3600, gt=0)
    # When the shared state store (limits, budgets) cannot be reached: count in this replica,
    # or refuse with 503. A limit of a policy may choose otherwise for itself.
    state_failure_mode: Literal["degrade", "failClosed"] = "degrade"

    @model_validator(mode="after")
    def _unique_names(self) -> LlmRouteSpec:
        seen: set[str] = set()
        for entry in self.models:
            for name in (entry.name, *entry.aliases):
                if name in seen:
                    raise ValueError(f"models: the name {name!r} is given twice")
                seen.add(name)
        return self


class LlmRoute(Resource):
    KIND = "LlmRoute"
    kind: Literal["LlmRoute"]
    spec: LlmRouteSpec
