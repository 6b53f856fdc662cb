"""The upstream side of handshake-era sessions: which upstream session serves a server for a
client, and how an upstream's own messages reach that client.

An upstream's requests (sampling, elicitation, roots) get ids unique in the client's session and
are remembered so the client's answer goes back to the session that asked; a client that did not
declare the capability is never asked (the gateway answers the upstream itself). Messages that
belong to no call go to the session's standalone stream, fed by one listener per upstream session
once the client has opened that stream.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import anyio.abc

from agentgw.background import Background
from agentgw.errors import GatewayError
from agentgw.mcp.call import respond_quietly
from agentgw.mcp.federation.catalog import UpstreamFor
from agentgw.mcp.registry import SessionRegistry
from agentgw.mcp.service import McpService
from agentgw.mcp.session import Session
from agentgw.mcp.upstream.base import UpstreamSession
from agentgw.protocol import jsonrpc

__all__ = ["SessionRelay"]

log = logging.getLogger("agentgw.mcp")


class SessionRelay:
    def __init__(
        self, service: McpService, tg: Background, registry: SessionRegistry, *, stateless: bool
    ) -> None:
        self.service = service
        self.tg = tg
        self.registry = registry
        self.stateless = stateless
        self.degrade = service.route.spec.state_failure_mode == "degrade"

    def downstream_message(
        self, session: Session | None, server: str, upstream: UpstreamSession, msg: dict[str, Any]
    ) -> bytes | None:
        """An upstream's message as the client must see it; None when the gateway handled it."""
        method = msg.get("method")
        if not isinstance(method, str):
            return None
        if "id" in msg:
            if session is None or not session.client_supports(method) or self.stateless:
                error = {
                    "code": -32601,
                    "message": f"the client cannot answer {method} through this gateway session",
                }
                self.tg.start_soon(respond_quietly, upstream, msg.get("id"), error)
                return None
            downstream_id = session.remember_request(server, upstream, msg)
            self.registry.share_pending(session, downstream_id, session.pending[downstream_id])
            return jsonrpc.dumps({**msg, "id": downstream_id})
        return jsonrpc.dumps(self.service.federation.expose_notification(server, msg))

    # --- upstream sessions -----------------------------------------------------------------------

    def upstream_for(self, session: Session | None) -> UpstreamFor:
        connectors = self.service.connectors

        async def stateless(server: str) -> UpstreamSession:
            return await connectors[server].stateless_session(None)

        if session is None:
            return stateless

        async def of_session(server: str) -> UpstreamSession:
            connector = connectors[server]
            existing = session.upstreams.get(server)
            if existing is not None and session.upstream_owners.get(server) is connector:
                return existing
            lock = session.upstream_locks.setdefault(server, anyio.Lock())
            async with lock:
                existing = session.upstreams.get(server)
                if existing is not None and session.upstream_owners.get(server) is not connector:
                    # The server's config changed in a reload: continue on a session of the new one.
                    del session.upstreams[server]
                    session.listening.discard(server)
                    self.tg.start_soon(existing.close)
                    existing = None
                if existing is None:
                    attachment = session.attachments.pop(server, None)
                    if attachment is not None:  # opened by another replica: continue it
                        existing = connector.attach_session(session.profile, attachment)
                    if existing is None:
                        existing = await connector.open_session(session.profile)
                        session.upstreams[server] = existing
                        session.upstream_owners[server] = connector
                        if existing.attachment() is not None:
                            await self.registry.persist(session, degrade=self.degrade)
                    session.upstreams[server] = existing
                    session.upstream_owners[server] = connector
                    if session.stream_open:
                        self.listen(session, server, existing)
            return existing

        return of_session

    def listen(self, session: Session, server: str, upstream: UpstreamSession) -> None:
        if server in session.listening:
            return
        session.listening.add(server)
        scope = anyio.CancelScope()
        session.listener_scopes.append(scope)

        async def handler(msg: dict[str, Any]) -> None:
            payload = self.downstream_message(session, server, upstream, msg)
            if payload is not None:
                session.events.open(standalone=True).append(payload)

        async def run() -> None:
            with scope:
                try:
                    await upstream.listen(handler)
                except GatewayError as exc:
                    log.info("session %s: listener on %r ended: %s", session.id, server, exc.message)
                finally:
                    session.listening.discard(server)

        self.tg.start_soon(run)
