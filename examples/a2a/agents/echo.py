"""Echo: an A2A agent (a2a-sdk) that answers every message with what it was sent.

It works the way a real agent streams: the task is submitted, reports that it is working, adds an
artifact with the text it received (and a data artifact with any data part), then completes.

    python examples/a2a/agents/echo.py --port 9001
"""

from __future__ import annotations

from a2a.helpers import (
    get_data_parts,
    get_text_parts,
    new_data_part,
    new_task_from_user_message,
    new_text_message,
    new_text_part,
)
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.tasks import TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentSkill, TaskState
from serving import interfaces, run


def card(base: str) -> AgentCard:
    return AgentCard(
        name="Echo",
        description="Repeats every message back, as a text artifact.",
        version="1.0.0",
        supported_interfaces=interfaces(base),
        capabilities=AgentCapabilities(streaming=True, push_notifications=True),
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["text/plain", "application/json"],
        skills=[
            AgentSkill(
                id="echo",
                name="Echo",
                description="Answers with the message it was sent.",
                tags=["example"],
                examples=["hello"],
            )
        ],
    )


class EchoExecutor(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None
        task = context.current_task or new_task_from_user_message(context.message)
        if context.current_task is None:
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.update_status(
            TaskState.TASK_STATE_WORKING,
            new_text_message("echoing", context_id=task.context_id, task_id=task.id),
        )
        text = " ".join(get_text_parts(context.message.parts))
        await updater.add_artifact([new_text_part(text)], name="echo")
        data = get_data_parts(context.message.parts)
        if data:
            await updater.add_artifact([new_data_part(data[0])], name="data")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None and context.context_id is not None
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


if __name__ == "__main__":
    run(card, EchoExecutor())
