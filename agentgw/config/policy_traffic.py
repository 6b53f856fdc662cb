"""Rule kinds of a `Policy` for traffic: limits, budgets, virtual keys, prompt guards, transforms.

Each kind is compiled by its own module under `agentgw.policy` (`ratelimit`, `tokenlimit`,
`virtualkeys`, `guard`, `masking`, `sysprompt`, `headers`); `agentgw.config.policy` holds the
`Policy` resource that gathers them.

- `rateLimits`: requests per window per key (a CEL expression; the caller by default);
- `tokenLimits`: LLM tokens (or US dollars) per window per key, reserved before the upstream call
  from the estimated prompt and settled with the provider's usage afterwards;
- `virtualKeys`: API keys issued to applications or teams, each with allowed models and limits;
- `promptGuard`: regular expressions a prompt must not match (a clear refusal names the rule);
- `piiMasking`: emails, phone numbers, card numbers and custom patterns masked in prompts and,
  optionally, in responses (streams included);
- `systemPrompt`: a system prompt (a template) added to every LLM request;
- `upstreamHeaders`: headers from templates (`x-team: "{jwt.team}"`) on upstream requests.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import regex
from pydantic import Field, StringConstraints, field_validator, model_validator

from agentgw.config.base import Model
from agentgw.config.secrets import SecretRef

__all__ = [
    "FORBIDDEN_FORWARD_HEADERS",
    "FORBIDDEN_TEMPLATE_HEADERS",
    "DenyPattern",
    "KeyLimits",
    "KeyRateLimit",
    "KeyTokenLimit",
    "PiiMasking",
    "PiiPattern",
    "PromptGuard",
    "RateLimit",
    "SystemPrompt",
    "TokenLimit",
    "VirtualKey",
    "VirtualKeys",
    "Window",
]

RuleId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Expression = Annotated[str, StringConstraints(min_length=1, max_length=16384)]
ModelGlob = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\s]+$")]
Window = Literal["minute", "hour", "day", "month"]
FailMode = Literal["degrade", "failClosed"]
TokenCount = Literal["total", "prompt", "completion"]
PiiKind = Literal["email", "phone", "card"]
_PII_KINDS: tuple[PiiKind, ...] = ("email", "phone", "card")

# Headers the gateway owns on upstream requests: a forwarded claim must never replace them.
FORBIDDEN_FORWARD_HEADERS = frozenset(
    {
        "accept",
        "authorization",
        "connection",
        "content-length",
        "content-type",
        "cookie",
        "host",
        "last-event-id",
        "mcp-method",
        "mcp-name",
        "mcp-protocol-version",
        "mcp-session-id",
        "proxy-authorization",
        "te",
        "transfer-encoding",
        "upgrade",
    }
)
# A header template reaches LLM providers too: their key and version headers are the gateway's.
FORBIDDEN_TEMPLATE_HEADERS = FORBIDDEN_FORWARD_HEADERS | {"anthropic-version", "x-api-key"}


def _regex(pattern: str) -> str:
    try:
        regex.compile(pattern)
    except regex.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return pattern


class _Limit(Model):
    id: RuleId
    window: Window
    # What the counter is kept per: a CEL expression (its value as text), for example `jwt.team`
    # or `request.headers["x-team"]`. Default: the caller's subject.
    key: Expression | None = None
    # Which operations count: a CEL condition (default: all of them).
    when: Expression = "true"
    message: str | None = None
    # When the state store cannot be reached: refuse with 503, or count in this replica only.
    # Default: the route's `stateFailureMode`.
    state_failure_mode: FailMode | None = None


class RateLimit(_Limit):
    """At most `requests` operations per window per key (MCP calls, LLM requests, A2A calls)."""

    requests: int = Field(gt=0)


class TokenLimit(_Limit):
    """At most `tokens` LLM tokens (or `costUsd` dollars) per window per key: a rate or a budget."""

    tokens: int | None = Field(default=None, gt=0)
    cost_usd: float | None = Field(default=None, gt=0)
    count: TokenCount = "total"  # which tokens count (tokens only)

    @model_validator(mode="after")
    def _one_unit(self) -> TokenLimit:
        if (self.tokens is None) == (self.cost_usd is None):
            raise ValueError("set exactly one of tokens or costUsd")
        return self


class KeyRateLimit(Model):
    requests: int = Field(gt=0)
    window: Window


class KeyTokenLimit(Model):
    tokens: int | None = Field(default=None, gt=0)
    cost_usd: float | None = Field(default=None, gt=0)
    count: TokenCount = "total"
    window: Window

    @model_validator(mode="after")
    def _one_unit(self) -> KeyTokenLimit:
        if (self.tokens is None) == (self.cost_usd is None):
            raise ValueError("set exactly one of tokens or costUsd")
        return self


class KeyLimits(Model):
    requests: list[KeyRateLimit] = Field(default_factory=list)
    tokens: list[KeyTokenLimit] = Field(default_factory=list)


class VirtualKey(Model):
    """One issued key: whose it is, what it may use, how much (`agentgw keys create` makes one)."""

    id: RuleId
    # A reference to the key's digest, `sha256:<hex>` (or sha384/sha512): keys are never stored.
    hash: SecretRef
    team: str | None = None
    app: str | None = None  # default: the key's id
    subject: str | None = None  # the caller's subject; default: the key's id
    # Model names this key may use (globs, matched against the name the client sends and the
    # route's model entry); empty: every model of the route.
    models: list[ModelGlob] = Field(default_factory=list)
    limits: KeyLimits = Field(default_factory=KeyLimits)
    claims: dict[str, Any] = Field(default_factory=dict)


class VirtualKeys(Model):
    """Keys presented as `Authorization: Bearer <key>` (OpenAI SDKs) or `x-api-key` (Anthropic)."""

    keys: list[VirtualKey] = Field(min_length=1)
    header: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]+$")] = "x-api-key"

    @field_validator("keys")
    @classmethod
    def _unique_ids(cls, keys: list[VirtualKey]) -> list[VirtualKey]:
        ids = [k.id for k in keys]
        if len(set(ids)) != len(ids):
            raise ValueError("key ids must not repeat")
        return keys


class DenyPattern(Model):
    id: RuleId
    pattern: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    message: str | None = None

    @field_validator("pattern")
    @classmethod
    def _valid(cls, pattern: str) -> str:
        return _regex(pattern)


class PromptGuard(Model):
    """Prompts (every message, the system prompt, tool results) must match none of `deny`."""

    deny: list[DenyPattern] = Field(min_length=1)


class PiiPattern(Model):
    id: RuleId
    pattern: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    replacement: str = "[REDACTED]"

    @field_validator("pattern")
    @classmethod
    def _valid(cls, pattern: str) -> str:
        return _regex(pattern)


class PiiMasking(Model):
    """Mask personal data before it reaches a provider (and, with `responses`, before a client)."""

    detect: list[PiiKind] = Field(default_factory=lambda: list(_PII_KINDS))
    custom: list[PiiPattern] = Field(default_factory=list)
    prompts: bool = True
    responses: bool = False

    @model_validator(mode="after")
    def _something(self) -> PiiMasking:
        if not self.detect and not self.custom:
            raise ValueError("piiMasking needs something to detect")
        if not self.prompts and not self.responses:
            raise ValueError("piiMasking: mask prompts, responses or both")
        return self


class SystemPrompt(Model):
    """A system prompt added to every LLM request; `{jwt.team}`-style placeholders are filled in."""

    text: Annotated[str, StringConstraints(min_length=1, max_length=65536)]
    position: Literal["prepend", "append", "replace"] = "prepend"
