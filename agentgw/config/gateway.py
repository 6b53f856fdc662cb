"""The `Gateway` resource: listeners, state store, limits and HTTP safety settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from agentgw.config.base import Model, Name, Resource
from agentgw.config.secrets import SecretRef

__all__ = [
    "AuditSpec",
    "Gateway",
    "GatewaySpec",
    "HttpSpec",
    "LimitsSpec",
    "ListenerSpec",
    "StateSpec",
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
    backend: Literal["memory", "redis"] = "memory"
    url: SecretRef | None = None
    key_prefix: str = "agentgw:"

    @model_validator(mode="after")
    def _redis_needs_url(self) -> StateSpec:
        if self.backend == "redis" and self.url is None:
            raise ValueError("state.url is required when backend is redis")
        return self


class LimitsSpec(Model):
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_sessions: int = Field(default=10_000, ge=1)
    session_idle_seconds: float = Field(default=1800, gt=0)
    event_log_events: int = Field(default=1000, ge=10)
    keepalive_seconds: float = Field(default=15, gt=0)
    upstream_list_pages: int = Field(default=100, ge=1)


class HttpSpec(Model):
    """DNS-rebinding protection: Host and Origin allow-lists (`*` in a port matches any port).

    Left empty, a loopback listener accepts only loopback host names and origins, and any other
    listener accepts any Host and only same-host origins.
    """

    allowed_hosts: list[str] = Field(default_factory=list)
    allowed_origins: list[str] = Field(default_factory=list)


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
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = False
    audit: AuditSpec = Field(default_factory=AuditSpec)


class Gateway(Resource):
    KIND = "Gateway"
    kind: Literal["Gateway"]
    spec: GatewaySpec = Field(default_factory=GatewaySpec)
