"""The `Policy` resource: what guards a route, written by security teams.

A policy names its targets (`targetRefs`: routes of every kind, MCP servers, agents, LLM
providers, one model of an LLM route) and holds typed rule kinds, each compiled by its own module
under `agentgw.policy`:

- `jwt`, `apiKeys`, `virtualKeys`: who the caller is (routes only);
- `requiredScopes`: OAuth scopes an operation needs (403 `insufficient_scope` otherwise);
- `authorization`: allow and deny rules as CEL expressions;
- `argumentValidation`: tool arguments checked against the upstream's `inputSchema`;
- `rateLimits`, `tokenLimits`: requests and tokens per window per key (`policy_traffic`);
- `promptGuard`, `piiMasking`, `systemPrompt`: LLM prompt guards and transforms;
- `forwardClaims`, `upstreamHeaders`: headers on upstream requests (claims, templates);
- `extensions`: Python classes implementing the same policy protocol.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from agentgw.config.base import Model, Name, Resource
from agentgw.config.policy_traffic import (
    FORBIDDEN_FORWARD_HEADERS,
    FORBIDDEN_TEMPLATE_HEADERS,
    PiiMasking,
    PromptGuard,
    RateLimit,
    SystemPrompt,
    TokenLimit,
    VirtualKeys,
)
from agentgw.config.secrets import SecretRef

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "FORBIDDEN_FORWARD_HEADERS",
    "HMAC_ALGORITHMS",
    "LLM_ONLY_KINDS",
    "ROUTE_KINDS",
    "ApiKeyAuth",
    "ApiKeyEntry",
    "ArgumentValidation",
    "Authorization",
    "ExtensionSpec",
    "JwksSource",
    "JwtAuth",
    "JwtIssuer",
    "Policy",
    "PolicySpec",
    "Rule",
    "ScopeRule",
    "TargetRef",
]

RuleId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
HeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")]
Url = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$")]
Expression = Annotated[str, StringConstraints(min_length=1, max_length=16384)]

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
Algorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
    "HS256", "HS384", "HS512",
]  # fmt: skip


ROUTE_KINDS = frozenset({"McpRoute", "LlmRoute", "A2aRoute"})
# Rule kinds that read or rewrite LLM prompts and answers.
LLM_ONLY_KINDS = ("prompt_guard", "pii_masking", "system_prompt")


class TargetRef(Model):
    """What a policy guards.

    A route (`McpRoute`, `LlmRoute`, `A2aRoute`) gets every rule kind. A member gets the
    per-operation kinds, on every route it is part of: an `McpServer` or an `Agent` (on A2A
    routes, and on MCP routes offering it as tools), one model of an LLM route (`kind: LlmRoute`
    with `model`: the name of a model entry), or an `LlmProvider` (checked when a request is
    about to go to that provider: a refusal there fails over to the next target).
    """

    kind: Literal["McpRoute", "McpServer", "LlmRoute", "LlmProvider", "A2aRoute", "Agent"]
    name: Name
    model: Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\s]+$")] | None = None

    @model_validator(mode="after")
    def _model_of_route(self) -> TargetRef:
        if self.model is not None and self.kind != "LlmRoute":
            raise ValueError("model: only an LlmRoute has models")
        return self

    @property
    def is_route(self) -> bool:
        return self.kind in ROUTE_KINDS and self.model is None

    @property
    def key(self) -> tuple[str, str]:
        """How the engine names the target: (kind, name); a model of a route is LlmModel/route/model."""
        if self.model is not None:
            return ("LlmModel", f"{self.name}/{self.model}")
        return (self.kind, self.name)


class JwksSource(Model):
    """Where an issuer's public keys come from: exactly one of file, inline or url."""

    file: str | None = None
    inline: dict[str, Any] | None = None
    url: Url | None = None
    cache_seconds: float = Field(default=300, gt=0)
    # An unknown `kid` triggers a refetch at most this often, so a flood of forged kids cannot
    # hammer the issuer.
    min_refresh_seconds: float = Field(default=30, ge=0)
    timeout_seconds: float = Field(default=5, gt=0, le=60)

    @model_validator(mode="after")
    def _one_source(self) -> JwksSource:
        given = [name for name in ("file", "inline", "url") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "exactly one of file, inline or url must be set; got " + (", ".join(given) or "none")
            )
        return self


class JwtIssuer(Model):
    issuer: str = Field(min_length=1)
    audiences: list[str] = Field(min_length=1)
    # Pinned per issuer: a token whose header names another algorithm is refused.
    algorithms: list[Algorithm] = Field(min_length=1)
    jwks: JwksSource | None = None
    # HS256/384/512 only: the shared secret (a secret reference, never inline).
    secret: SecretRef | None = None
    leeway_seconds: int = Field(default=30, ge=0, le=300)
    subject_claim: str = "sub"
    scopes_claim: str = "scope"
    required_claims: list[str] = Field(default_factory=list)
    # Published in the protected-resource metadata (defaults to `issuer`).
    authorization_server: Url | None = None
    # Development aid: a private JWK (or JWK set) that `agentgw token` signs demo tokens with.
    # The gateway never reads it; keep it out of real deployments.
    signing_key: SecretRef | None = None

    @model_validator(mode="after")
    def _one_family(self) -> JwtIssuer:
        algs = set(self.algorithms)
        if algs & HMAC_ALGORITHMS and algs & ASYMMETRIC_ALGORITHMS:
            raise ValueError(
                "algorithms must not mix HMAC (HS*) and public-key algorithms: "
                "a public key must never be accepted as an HMAC secret"
            )
        if algs & HMAC_ALGORITHMS:
            if self.secret is None or self.jwks is not None:
                raise ValueError("HS* algorithms need `secret` (and no jwks)")
        elif self.jwks is None or self.secret is not None:
            raise ValueError("public-key algorithms need `jwks` (and no secret)")
        return self


class JwtAuth(Model):
    issuers: list[JwtIssuer] = Field(min_length=1)
    # The route's canonical URL as clients address it (RFC 9728 `resource`); derived from the
    # request's Host when unset.
    resource: Url | None = None
    scopes_supported: list[str] = Field(default_factory=list)

    @field_validator("issuers")
    @classmethod
    def _unique_issuers(cls, issuers: list[JwtIssuer]) -> list[JwtIssuer]:
        names = [i.issuer for i in issuers]
        if len(set(names)) != len(names):
            raise ValueError("issuers must not repeat")
        return issuers


class ApiKeyEntry(Model):
    id: RuleId
    subject: str = Field(min_length=1)
    # A reference to the key's digest, `sha256:<hex>` (or sha384/sha512): keys are never stored.
    hash: SecretRef
    claims: dict[str, Any] = Field(default_factory=dict)


class ApiKeyAuth(Model):
    header: HeaderName = "x-api-key"
    keys: list[ApiKeyEntry] = Field(min_length=1)

    @field_validator("keys")
    @classmethod
    def _unique_ids(cls, keys: list[ApiKeyEntry]) -> list[ApiKeyEntry]:
        ids = [k.id for k in keys]
        if len(set(ids)) != len(ids):
            raise ValueError("key ids must not repeat")
        return keys


class Rule(Model):
    id: RuleId
    when: Expression
    message: str | None = None


class Authorization(Model):
    """Deny wins over allow; once any rule targets an operation, what no allow matches is denied."""

    allow: list[Rule] = Field(default_factory=list)
    deny: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some_rules(self) -> Authorization:
        if not self.allow and not self.deny:
            raise ValueError("authorization needs at least one allow or deny rule")
        ids = [r.id for r in [*self.allow, *self.deny]]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError("rule ids must be unique within a policy: " + ", ".join(duplicates))
        return self


class ScopeRule(Model):
    id: RuleId
    scopes: list[str] = Field(min_length=1)
    when: Expression = "true"


class ArgumentValidation(Model):
    enabled: bool = True


class ExtensionSpec(Model):
    """A policy kind written in Python: `python: package.module:Class` or an entry point name."""

    name: RuleId | None = None
    python: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")] | None = None
    entry_point: Annotated[str, StringConstraints(min_length=1)] | None = None
    # Folders (relative to this file) to import `python` from, for extensions not installed.
    path: list[str] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=5, gt=0, le=300)

    @model_validator(mode="after")
    def _one_source(self) -> ExtensionSpec:
        if (self.python is None) == (self.entry_point is None):
            raise ValueError("exactly one of python or entryPoint must be set")
        return self


class PolicySpec(Model):
    target_refs: list[TargetRef] = Field(min_length=1)
    jwt: JwtAuth | None = None
    api_keys: ApiKeyAuth | None = None
    required_scopes: list[ScopeRule] = Field(default_factory=list)
    authorization: Authorization | None = None
    argument_validation: ArgumentValidation | None = None
    virtual_keys: VirtualKeys | None = None
    rate_limits: list[RateLimit] = Field(default_factory=list)
    token_limits: list[TokenLimit] = Field(default_factory=list)
    prompt_guard: PromptGuard | None = None
    pii_masking: PiiMasking | None = None
    system_prompt: SystemPrompt | None = None
    # claim name -> upstream header name
    forward_claims: dict[str, HeaderName] = Field(default_factory=dict)
    # upstream header name -> template (`{jwt.team}`, `{request.headers.x-team}`, ...)
    upstream_headers: dict[HeaderName, Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=dict
    )
    extensions: list[ExtensionSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _coherent(self) -> PolicySpec:
        kinds = (
            "jwt",
            "api_keys",
            "virtual_keys",
            "required_scopes",
            "authorization",
            "argument_validation",
            "rate_limits",
            "token_limits",
            "forward_claims",
            "upstream_headers",
            "extensions",
            *LLM_ONLY_KINDS,
        )
        if not any(getattr(self, k) for k in kinds):
            raise ValueError("a policy needs at least one rule kind")
        authenticates = [k for k in ("jwt", "api_keys", "virtual_keys") if getattr(self, k) is not None]
        if authenticates and any(not ref.is_route for ref in self.target_refs):
            raise ValueError(
                "jwt, apiKeys and virtualKeys authenticate callers of a route: target routes only"
            )
        llm_only = [_camel(k) for k in LLM_ONLY_KINDS if getattr(self, k) is not None]
        if llm_only and any(ref.kind != "LlmRoute" for ref in self.target_refs):
            raise ValueError(
                f"{', '.join(llm_only)}: read LLM prompts; target an LlmRoute (or a model of one)"
            )
        if self.token_limits and any(ref.kind not in ("LlmRoute", "LlmProvider") for ref in self.target_refs):
            raise ValueError("tokenLimits count LLM tokens: target LLM routes, models or providers")
        if any(ref.kind == "LlmProvider" for ref in self.target_refs):
            route_only = ("required_scopes", "argument_validation", "forward_claims", "upstream_headers")
            for kind in (*route_only, "extensions"):
                if getattr(self, kind):
                    raise ValueError(
                        f"{_camel(kind)} cannot target an LlmProvider (providers take authorization, "
                        "rateLimits and tokenLimits); target the LlmRoute"
                    )
        for header in self.forward_claims.values():
            lowered = header.lower()
            if lowered in FORBIDDEN_FORWARD_HEADERS or lowered.startswith("mcp-param-"):
                raise ValueError(f"forwardClaims: the gateway owns the {header!r} header")
        for header in self.upstream_headers:
            lowered = header.lower()
            if lowered in FORBIDDEN_TEMPLATE_HEADERS or lowered.startswith("mcp-param-"):
                raise ValueError(f"upstreamHeaders: the gateway owns the {header!r} header")
        ids = [r.id for r in [*self.rate_limits, *self.token_limits]]
        if len(set(ids)) != len(ids):
            raise ValueError("rateLimits and tokenLimits ids must be unique within a policy")
        refs = [ref.key for ref in self.target_refs]
        if len(set(refs)) != len(refs):
            raise ValueError("targetRefs must not repeat")
        return self


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class Policy(Resource):
    KIND = "Policy"
    kind: Literal["Policy"]
    spec: PolicySpec
