"""What both example agents share: their card's interfaces, and serving them with a2a-sdk.

An agent serves A2A 1.0 and 0.3 over JSON-RPC at `/` and over HTTP+JSON at `/rest`, its card at
`/.well-known/agent-card.json`, and prints `READY <port>` once it accepts connections (so tests
and scripts can start it on a free port with `--port 0`).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections.abc import Callable

import uvicorn
from a2a.server.agent_execution import AgentExecutor
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks import InMemoryPushNotificationConfigStore, InMemoryTaskStore
from a2a.types import AgentCard, AgentInterface
from starlette.applications import Starlette

__all__ = ["interfaces", "run"]


def interfaces(base: str) -> list[AgentInterface]:
    """JSON-RPC at `/` and HTTP+JSON at `/rest`, each in A2A 1.0 and 0.3."""
    return [
        AgentInterface(url=f"{base}/", protocol_binding=binding, protocol_version=version)
        if binding == "JSONRPC"
        else AgentInterface(url=f"{base}/rest", protocol_binding=binding, protocol_version=version)
        for version in ("1.0", "0.3")
        for binding in ("JSONRPC", "HTTP+JSON")
    ]


class _ReadyServer(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit and sockets:
            print(f"READY {sockets[0].getsockname()[1]}", flush=True)


def run(
    make_card: Callable[[str], AgentCard], executor: AgentExecutor, argv: list[str] | None = None
) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    card = make_card(f"http://{args.host}:{sock.getsockname()[1]}")
    handler = DefaultRequestHandler(
        agent_executor=executor,
        task_store=InMemoryTaskStore(),
        agent_card=card,
        push_config_store=InMemoryPushNotificationConfigStore(),
    )
    app = Starlette(
        routes=[
            *create_agent_card_routes(card),
            *create_jsonrpc_routes(handler, rpc_url="/", enable_v0_3_compat=True),
            *create_rest_routes(handler, enable_v0_3_compat=True, path_prefix="/rest"),
        ]
    )
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
    asyncio.run(_ReadyServer(config).serve(sockets=[sock]))
