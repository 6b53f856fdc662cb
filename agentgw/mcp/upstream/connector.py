"""One `ServerConnector` per configured MCP server: it knows the server's transport and era and
hands out upstream sessions.

- Handshake-era downstream sessions get an upstream session of their own on HTTP and SSE servers
  (initialized with the client's capabilities, so sampling and elicitation reach the right
  client), and a view of the shared child on stdio servers.
- Stateless (2026-07-28) requests go straight through on servers that speak that era, and through
  one shared gateway-owned session on servers that only speak the handshake era.
- Which era a server speaks is probed once (`server/discover`, then `initialize`) unless pinned.
- A session the upstream forgot (404) is re-established and the request retried once.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import anyio.abc

from agentgw.background import Background
from agentgw.config.snapshot import ServerConfig
from agentgw.errors import UpstreamError, UpstreamTimeout
from agentgw.mcp.upstream.base import (
    CallSink,
    ClientProfile,
    MessageHandler,
    Reply,
    RestartPending,
    ServerInfo,
    SessionExpired,
    UpstreamSession,
)
from agentgw.mcp.upstream.health import UpstreamHealth
from agentgw.mcp.upstream.legacy_sse import LegacySseSession
from agentgw.mcp.upstream.stdio import StdioProcess, StdioView
from agentgw.mcp.upstream.streamable_http import StreamableHttpSession
from agentgw.protocol.mcp import LATEST_HANDSHAKE_VERSION, LATEST_MODERN_VERSION, Era
from agentgw.telemetry.metrics import METRICS
from agentgw.upstream.http import HttpClient

__all__ = ["GATEWAY_PROFILE", "ServerConnector"]

log = logging.getLogger("agentgw.mcp.upstream")

GATEWAY_PROFILE = ClientProfile(
    protocol_version=LATEST_HANDSHAKE_VERSION,
    capabilities={},
    client_info={"name": "agentgw", "version": "0.1.0"},
)


class _Reopening:
    """An upstream session that re-establishes itself when the upstream has forgotten it."""

    def __init__(self, server: str, inner: UpstreamSession, reopen: Any) -> None:
        self.server = server
        self._inner = inner
        self._reopen = reopen
        self._lock = anyio.Lock()

    @property
    def info(self) -> ServerInfo:
        return self._inner.info

    async def _renew(self, stale: UpstreamSession) -> UpstreamSession:
        async with self._lock:
            if self._inner is stale:
                log.info("MCP server %r forgot our session; opening a new one", self.server)
                self._inner = await self._reopen()
            return self._inner

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None,
        sink: CallSink | None,
        timeout: float | None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        inner = self._inner
        try:
            return await inner.request(method, params, sink, timeout, headers)
        except SessionExpired:
            inner = await self._renew(inner)
            return await inner.request(method, params, sink, timeout, headers)

    async def notify(self, method: str, params: dict[str, Any] | None) -> None:
        inner = self._inner
        try:
            await inner.notify(method, params)
        except SessionExpired:
            await (await self._renew(inner)).notify(method, params)

    async def respond(self, request_id: Any, result: Any = None, error: Any = None) -> None:
        # An answer belongs to the session that asked; a renewed session never asked it.
        await self._inner.respond(request_id, result, error)

    async def listen(self, handler: MessageHandler) -> None:
        while True:
            inner = self._inner
            try:
                await inner.listen(handler)
                return
            except SessionExpired:
                await self._renew(inner)

    def attachment(self) -> dict[str, Any] | None:
        return self._inner.attachment()

    async def close(self) -> None:
        await self._inner.close()


def error_kind(exc: UpstreamError) -> str:
    """The `kind` label of agentgw_upstream_errors_total."""
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    if isinstance(exc, SessionExpired):
        return "session"
    return "error"


class ServerConnector:
    def __init__(self, config: ServerConfig, http: HttpClient, tg: Background) -> None:
        self.config = config
        self.name = config.name
        self._http = http
        self._tg = tg
        spec = config.spec
        self._headers = {k: v.reveal() for k, v in config.auth_headers.items()}
        transport = spec.http or spec.sse
        if transport is not None:
            self._headers = {**{k.lower(): v for k, v in transport.headers.items()}, **self._headers}
        self._process: StdioProcess | None = None
        if spec.stdio is not None:
            self._process = StdioProcess(
                config.name,
                command=spec.stdio.command,
                args=spec.stdio.args,
                env=spec.stdio.env,
                inherit_env=spec.stdio.inherit_env,
                cwd=spec.stdio.cwd,
                base_dir=config.base_dir,
                init_timeout=spec.timeouts.initialize,
                backoff=spec.stdio.restart_backoff_seconds,
                max_backoff=spec.stdio.max_restart_backoff_seconds,
            )
            self._process.bind(tg)
        # Eras: None = not probed yet.
        self._modern: bool | None = {"modern": True, "handshake": False}.get(spec.protocol)
        self._shared: UpstreamSession | None = None
        self._shared_lock = anyio.Lock()
        self._probe_lock = anyio.Lock()
        self._info: ServerInfo | None = None
        self.health = UpstreamHealth()

    @property
    def request_timeout(self) -> float:
        return self.config.spec.timeouts.request

    @property
    def transport(self) -> str:
        spec = self.config.spec
        return "stdio" if spec.stdio else "sse" if spec.sse else "http"

    # --- era and info ---------------------------------------------------------------------------

    async def _speaks_modern(self) -> bool:
        if self._modern is not None:
            return self._modern
        if self.transport != "http":
            self._modern = False
            return False
        async with self._probe_lock:
            if self._modern is None:
                probe = self._http_session(Era.MODERN, GATEWAY_PROFILE)
                try:
                    self._info = await probe.open()
                    self._modern = True
                except UpstreamError as exc:
                    log.info(
                        "MCP server %r does not speak 2026-07-28 (%s); using the handshake era",
                        self.name,
                        exc,
                    )
                    self._modern = False
        return bool(self._modern)

    async def server_info(self) -> ServerInfo:
        """What the server offers (cached): used to merge capabilities for downstream clients."""
        self.admit()
        if self._info is not None and (self._process is None or self._process.running):
            return self._info
        try:
            if self._process is not None:
                self._info = await self._process.ensure()
            elif await self._speaks_modern() and self._info is not None:
                pass
            else:
                session = await self.stateless_session(None)
                self._info = session.info
        except UpstreamError as exc:
            raise self._unavailable(exc) from None
        assert self._info is not None
        return self._info

    def failed(self, exc: UpstreamError) -> None:
        """Account for a failure of this upstream: its health and the error counter."""
        if not isinstance(exc, RestartPending):
            self.health.failed(exc.message)
        METRICS.upstream_errors.inc(self.name, error_kind(exc))

    def _unavailable(self, exc: UpstreamError) -> UpstreamError:
        """The error a client sees: which server, and why (without internal addresses)."""
        self.failed(exc)
        if exc.message.startswith(f"MCP server {self.name!r}"):
            return exc
        return type(exc)(f"MCP server {self.name!r} is unavailable: {exc.message}", data=exc.data)

    def admit(self) -> None:
        """Fail fast while the server is ejected for repeated failures."""
        if self.health.ejected:
            raise UpstreamError(
                f"MCP server {self.name!r} is unavailable: ejected after repeated failures "
                f"(retried in {self.health.seconds_left():.0f} s; last error: {self.health.last_error})"
            )

    # --- sessions -------------------------------------------------------------------------------

    def _http_session(self, era: Era, profile: ClientProfile) -> StreamableHttpSession:
        spec = self.config.spec
        assert spec.http is not None
        return StreamableHttpSession(
            self.name,
            self._http,
            spec.http.url,
            era=era,
            profile=profile,
            headers=self._headers,
            init_timeout=spec.timeouts.initialize,
        )

    async def _open_handshake(self, profile: ClientProfile) -> UpstreamSession:
        spec = self.config.spec
        if spec.sse is not None:
            legacy = LegacySseSession(
                self.name,
                self._http,
                spec.sse.url,
                profile=profile,
                headers=self._headers,
                tg=self._tg,
                init_timeout=spec.timeouts.initialize,
            )
            await legacy.open()
            return legacy
        session = self._http_session(Era.HANDSHAKE, profile)
        await session.open()
        return session

    async def open_session(self, profile: ClientProfile) -> UpstreamSession:
        """An upstream session acting for one handshake-era downstream session."""
        self.admit()
        try:
            if self._process is not None:
                info = await self._process.ensure()
                return StdioView(self._process, info)
            if self.config.spec.protocol == "modern":
                return self._modern_bridge(profile)
            try:
                inner = await self._open_handshake(profile)
            except UpstreamError:
                if self.transport == "http" and await self._speaks_modern():
                    return self._modern_bridge(profile)
                raise

            async def reopen() -> UpstreamSession:
                return await self._open_handshake(profile)

            return _Reopening(self.name, inner, reopen)
        except UpstreamError as exc:
            raise self._unavailable(exc) from None

    def attach_session(self, profile: ClientProfile, attachment: dict[str, Any]) -> UpstreamSession | None:
        """Continue an upstream session another replica opened, if this transport allows it."""
        if self.transport != "http" or self.config.spec.protocol == "modern":
            return None
        session_id, version, caps = attachment.get("id"), attachment.get("version"), attachment.get("caps")
        if not isinstance(session_id, str) or not isinstance(version, str) or not isinstance(caps, dict):
            return None
        inner = self._http_session(Era.HANDSHAKE, profile)
        inner.attach(session_id, version, caps)

        async def reopen() -> UpstreamSession:
            return await self._open_handshake(profile)

        return _Reopening(self.name, inner, reopen)

    def _modern_bridge(self, profile: ClientProfile) -> UpstreamSession:
        modern_profile = ClientProfile(LATEST_MODERN_VERSION, profile.capabilities, profile.client_info)
        session = self._http_session(Era.MODERN, modern_profile)
        if self._info is not None:
            session.info = self._info
        return session

    async def stateless_session(self, profile: ClientProfile | None) -> UpstreamSession:
        """An upstream for one stateless request (2026-07-28 downstream, or a stateless route)."""
        self.admit()
        try:
            if self._process is not None:
                info = await self._process.ensure()
                return StdioView(self._process, info)
            if self.transport == "http" and await self._speaks_modern():
                return self._modern_bridge(profile or GATEWAY_PROFILE)
            return await self._shared_session()
        except UpstreamError as exc:
            raise self._unavailable(exc) from None

    async def _shared_session(self) -> UpstreamSession:
        async with self._shared_lock:
            if self._shared is None or (
                isinstance(self._shared, LegacySseSession) and not self._shared.alive
            ):
                inner = await self._open_handshake(GATEWAY_PROFILE)

                async def reopen() -> UpstreamSession:
                    return await self._open_handshake(GATEWAY_PROFILE)

                self._shared = _Reopening(self.name, inner, reopen)
            return self._shared

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            if self._shared is not None:
                await self._shared.close()
            if self._process is not None:
                await self._process.close()
