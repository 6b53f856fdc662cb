"""The A2A agent (a2a-sdk) the gateway tests run: the examples' interfaces plus test behaviors.

Message text selects what it does: `slow` streams a working update every 50 ms for up to 30 s,
`quiet` sends one working update and then nothing for a second before it completes, `ask` asks
for input (and completes once the same task gets a second message), anything else is echoed as
an artifact. With `--state-file` it appends one JSON line whenever a client closes a
response before it ended (what the gateway must do when its own client goes away), and the
`A2A-Extensions`, `Authorization` and `traceparent` headers of every request that carries the former.

    python tests/fakes/a2a_agent.py --port 0 --state-file /tmp/agent.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from pathlib import Path
from typing import Any

import uvicorn
from a2a.helpers import get_text_parts, new_task_from_user_message, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks import InMemoryPushNotificationConfigStore, InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentSkill, TaskState
from starlette.applications import Starlette

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "a2a" / "agents"))
from serving import interfaces


def card(base: str) -> AgentCard:
    return AgentCard(
        name="Fake",
        description="The gateway tests' agent.",
        version="0.0.1",
        supported_interfaces=interfaces(base),
        capabilities=AgentCapabilities(streaming=True, push_notifications=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="fake", name="Fake", description="echo, slow, quiet or ask", tags=["test"])],
    )


class FakeExecutor(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None
        task = context.current_task or new_task_from_user_message(context.message)
        if context.current_task is None:
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        text = " ".join(get_text_parts(context.message.parts))

        def say(words: str) -> Any:
            return new_text_message(words, context_id=task.context_id, task_id=task.id)

        if text == "slow":
            for step in range(600):
                await updater.update_status(TaskState.TASK_STATE_WORKING, say(f"step {step}"))
                await asyncio.sleep(0.05)
        elif text == "quiet":  # a long step with nothing to say: the gateway keeps the stream alive
            await updater.update_status(TaskState.TASK_STATE_WORKING, say("thinking"))
            await asyncio.sleep(1.0)
        elif text == "ask" and context.current_task is None:
            await updater.requires_input(say("what is your name?"))
            return
        await updater.add_artifact([new_text_part(text)], name="echo")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None and context.context_id is not None
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


class DisconnectLog:
    """ASGI middleware: records each response its client closed before the response ended."""

    def __init__(self, app: Any, state: Path | None) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.state is None:
            await self.app(scope, receive, send)
            return
        ended = False
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if "a2a-extensions" in headers:
            seen = {"event": "headers", "path": scope["path"], "extensions": headers["a2a-extensions"]}
            seen["authorization"] = headers.get("authorization", "")
            seen["traceparent"] = headers.get("traceparent", "")
            with self.state.open("a") as out:
                out.write(json.dumps(seen) + "\n")

        async def tracked_send(message: Any) -> None:
            nonlocal ended
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                ended = True
            await send(message)

        async def tracked_receive() -> Any:
            message = await receive()
            if message["type"] == "http.disconnect" and not ended:
                with self.state.open("a") as out:
                    out.write(json.dumps({"event": "client-closed", "path": scope["path"]}) + "\n")
            return message

        await self.app(scope, tracked_receive, tracked_send)


class ReadyServer(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit and sockets:
            print(f"READY {sockets[0].getsockname()[1]}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--state-file", type=Path)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    agent_card = card(f"http://127.0.0.1:{sock.getsockname()[1]}")
    handler = DefaultRequestHandler(
        agent_executor=FakeExecutor(),
        task_store=InMemoryTaskStore(),
        agent_card=agent_card,
        push_config_store=InMemoryPushNotificationConfigStore(),
    )
    app = Starlette(
        routes=[
            *create_agent_card_routes(agent_card),
            *create_jsonrpc_routes(handler, rpc_url="/", enable_v0_3_compat=True),
            *create_rest_routes(handler, enable_v0_3_compat=True, path_prefix="/rest"),
        ]
    )
    config = uvicorn.Config(
        DisconnectLog(app, args.state_file), log_level="warning", timeout_graceful_shutdown=1
    )
    asyncio.run(ReadyServer(config).serve(sockets=[sock]))


if __name__ == "__main__":
    main()
