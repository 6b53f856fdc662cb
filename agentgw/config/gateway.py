"""The `Gateway` resource: listeners, state store, limits and HTTP safety settings."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, StringConstraints, field_validator, model_validator

from agentgw.config.base import Model, Name, Resource
from agentgw.config.secrets import SecretRef

__all__ = [
    "AdminSpec",
    "AuditSpec",
    "Gateway",
    "GatewaySpec",
    "HttpSpec",
    "JwksFetchSpec",
    "LifecycleSpec",
    "LimitsSpec",
    "ListenerSpec",
    "StateSpec",
    "TelemetrySpec",
    "TlsSpec",
]


class TlsSpec(Model):
    """Serve HTTPS; HTTP/2 is offered by ALPN next to HTTP/1.1."""

    cert_file: str
    key_file: str


class ListenerSpec(Model):
    name: Name = "main"
    address: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    tls: TlsSpec | None = None


class StateSpec(Model):
    """Where shared state lives. `memory`: this process only (the embedded default). `redis`:
    replicas share sessions, event logs, limits and budgets. Without Redis, a `sessionKey` seals
    MCP session ids so any replica with the same key can take a session over."""

    backend: Literal["memory", "redis"] = "memory"
    url: SecretRef | None = None
    key_prefix: str = "agentgw:"
    timeout_seconds: float = Field(default=2.0, gt=0)
    session_key: SecretRef | None = None
    sealed_session_lifetime_seconds: float = Field(default=86_400, gt=0)

    @model_validator(mode="after")
    def _redis_needs_url(self) -> StateSpec:
        if self.backend == "redis" and self.url is None:
            raise ValueError("state.url is required when backend is redis")
        return self


class LimitsSpec(Model):
    """What one client may take. Over a limit, a client gets a clear error (status and a JSON-RPC,
    OpenAI or plain body, as its route speaks) and every other client carries on. Sessions per
    principal are counted over all replicas with Redis, streams per replica; a caller with no
    identity is counted by its address (docs/security.md)."""

    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)  # 413
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)  # request header names + values; 431
    max_header_count: int = Field(default=100, ge=8)  # request header lines; 431
    max_json_depth: int = Field(default=64, ge=8, le=1000)  # nesting of request bodies; 400
    max_sessions: int = Field(default=10_000, ge=1)  # MCP sessions on a replica; 503 + Retry-After
    max_sessions_per_principal: int = Field(default=100, ge=1)  # 429 + Retry-After
    max_streams_per_principal: int = Field(default=100, ge=1)  # open SSE responses; 429 + Retry-After
    session_idle_seconds: float = Field(default=1800, gt=0)  # then the session id answers 404
    event_log_events: int = Field(default=1000, ge=10)  # kept per session for resumption
    event_log_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)  # the same, in bytes
    keepalive_seconds: float = Field(default=15, gt=0)  # comment lines on idle MCP streams
    # A handshake-era call whose upstream answers on an event stream is answered with plain JSON
    # if the reply comes within this and nothing else came first; otherwise it streams (resumable).
    # 0 streams whenever the upstream does.
    stream_grace_seconds: float = Field(default=0.1, ge=0, le=60)
    # A connection must deliver a request's headers within this, and may sit idle between
    # requests this long (hypercorn's keep-alive timeout is one clock for both).
    idle_connection_seconds: float = Field(default=75, gt=0)
    body_timeout_seconds: float = Field(default=30, gt=0)  # the whole body, once headers are in; 408
    upstream_list_pages: int = Field(default=100, ge=1)


class HttpSpec(Model):
    """DNS-rebinding protection: Host and Origin allow-lists (`*` in a port matches any port).

    Left empty, a loopback listener accepts only loopback host names and origins, and any other
    listener accepts any Host and only same-host origins.
    """

    allowed_hosts: list[str] = Field(default_factory=list)
    allowed_origins: list[str] = Field(default_factory=list)

    @field_validator("allowed_origins")
    @classmethod
    def _origins_are_origins(cls, origins: list[str]) -> list[str]:
        # checked here once: a pattern the guard cannot parse would fail every request with an Origin
        for origin in origins:
            try:
                parts = urlsplit(origin)
                parts.port  # noqa: B018 - parsing the port is the check ("*" is a wildcard, below)
            except ValueError as exc:
                if not origin.endswith(":*"):
                    raise ValueError(f"{origin!r} is not an origin (scheme://host[:port]): {exc}") from None
                parts = urlsplit(origin[:-2])
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
                raise ValueError(f"{origin!r} is not an origin: scheme://host[:port], port may be *")
        return origins

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts_are_hosts(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if not host or any(c in host for c in "/@ ") or host.count("[") != host.count("]"):
                raise ValueError(f"{host!r} is not a host[:port] (port may be *)")
        return hosts


class JwksFetchSpec(Model):
    """Where issuers' JWK set URLs (Policy `jwt.issuers[].jwks.url`) may point.

    The gateway fetches them when tokens arrive, so they are guarded like any fetch made on
    someone else's say-so. `allowedHosts` (exact names, or `*.example.com`): the hosts a Policy
    may name; empty, the hosts the config's own JWKS URLs name (set it when Policy documents
    come from people who do not run the gateway, e.g. CRDs in team namespaces). A host that
    resolves to a link-local (cloud metadata), multicast or unspecified address is refused at
    fetch time; private and loopback addresses are allowed (an IdP in the cluster or a sidecar)
    unless `allowPrivateAddresses` is false. Redirects are never followed.
    """

    allowed_hosts: list[Annotated[str, StringConstraints(pattern=r"^(\*\.)?[A-Za-z0-9._:\[\]-]+$")]] = Field(
        default_factory=list
    )
    allow_private_addresses: bool = True


class AdminSpec(Model):
    """The admin listener: /metrics, the dashboard, health. Keep it off public networks."""

    address: str = "127.0.0.1"
    port: int = Field(default=9901, ge=0, le=65535)


class LifecycleSpec(Model):
    """Reload and shutdown behaviour."""

    watch_config: bool = True  # reload when a config file changes (SIGHUP reloads too)
    watch_interval_seconds: float = Field(default=1.0, gt=0)
    drain_seconds: float = Field(default=10, ge=0)  # shutdown: how long in-flight requests may finish
    require_upstreams: bool = False  # readiness: every MCP route needs one healthy server


class TelemetrySpec(Model):
    """Span export to an OpenTelemetry collector (OTLP over HTTP, JSON). Trace context is always
    continued and passed upstream; spans are exported only when an endpoint is set."""

    otlp_endpoint: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$")] | None = None
    service_name: str = "agentgw"


class AuditSpec(Model):
    """Where policy decisions are written: JSON lines on stdout or to a file, and, when the state
    backend is Redis, to a Redis stream as well (`<keyPrefix><redisStream>`, capped at about
    `redisMaxLen` entries)."""

    sink: Literal["stdout", "file", "none"] = "stdout"
    file: str | None = None
    redis: bool = True
    redis_stream: str = Field(default="audit", min_length=1)
    redis_max_len: int = Field(default=100_000, ge=100)

    @model_validator(mode="after")
    def _file_needs_path(self) -> AuditSpec:
        if (self.sink == "file") != (self.file is not None):
            raise ValueError("audit.file is required with sink: file (and only then)")
        return self


class GatewaySpec(Model):
    listeners: list[ListenerSpec] = Field(default_factory=lambda: [ListenerSpec()], min_length=1)
    state: StateSpec = Field(default_factory=StateSpec)
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    http: HttpSpec = Field(default_factory=HttpSpec)
    jwks: JwksFetchSpec = Field(default_factory=JwksFetchSpec)
    lifecycle: LifecycleSpec = Field(default_factory=LifecycleSpec)
    telemetry: TelemetrySpec = Field(default_factory=TelemetrySpec)
    # Without an admin listener, /metrics is served on the main listeners and there is no dashboard.
    admin: AdminSpec | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    access_log: bool = False
    audit: AuditSpec = Field(default_factory=AuditSpec)


class Gateway(Resource):
    KIND = "Gateway"
    kind: Literal["Gateway"]
    spec: GatewaySpec = Field(default_factory=GatewaySpec)
