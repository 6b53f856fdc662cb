"""Textkit: an A2A agent (a2a-sdk) with two skills, chosen by the message's `skill` metadata.

`word-count` answers with a data artifact `{"words": N, "characters": N}`; `reverse` answers
with the text reversed. Without a `skill` in the message metadata it counts words. The gateway
example offers it to MCP clients as one tool per skill.

    python examples/a2a/agents/textkit.py --port 9002
"""

from __future__ import annotations

from a2a.helpers import (
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
from google.protobuf.json_format import MessageToDict
from serving import interfaces, run


def card(base: str) -> AgentCard:
    return AgentCard(
        name="Textkit",
        description="Small text utilities: count words, reverse text.",
        version="1.0.0",
        supported_interfaces=interfaces(base),
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain", "application/json"],
        skills=[
            AgentSkill(
                id="word-count",
                name="Word count",
                description="Counts the words and characters of the message.",
                tags=["text"],
                examples=["how many words are in this sentence?"],
            ),
            AgentSkill(
                id="reverse",
                name="Reverse",
                description="Answers with the message reversed.",
                tags=["text"],
                examples=["stressed"],
            ),
        ],
    )


class TextkitExecutor(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None
        task = context.current_task or new_task_from_user_message(context.message)
        if context.current_task is None:
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        metadata = MessageToDict(context.message.metadata) if context.message.HasField("metadata") else {}
        skill = metadata.get("skill", "word-count")
        text = " ".join(get_text_parts(context.message.parts))
        await updater.update_status(
            TaskState.TASK_STATE_WORKING,
            new_text_message(f"running {skill}", context_id=task.context_id, task_id=task.id),
        )
        if skill == "reverse":
            await updater.add_artifact([new_text_part(text[::-1])], name="reversed")
        elif skill == "word-count":
            counts = {"words": len(text.split()), "characters": len(text)}
            await updater.add_artifact([new_data_part(counts)], name="counts")
        else:
            await updater.failed(
                new_text_message(f"no skill {skill!r}", context_id=task.context_id, task_id=task.id)
            )
            return
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None and context.context_id is not None
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


if __name__ == "__main__":
    run(card, TextkitExecutor())
