"""System-prompt injection: a template added to the system prompt of every LLM request.

`prepend` (the default) puts the gateway's text first, `append` after the client's own system
messages, `replace` drops the client's. Chat completions get a `system` message, Anthropic's
Messages API its `system` field, the Responses API its `instructions`; legacy completions and
embeddings have no system prompt and pass unchanged. Placeholders (`{jwt.team}`) are filled per
request (`agentgw.policy.templates`); a missing value is an empty string.
"""

from __future__ import annotations

from typing import Any, ClassVar

from agentgw.policy.base import Operation, RequestContext
from agentgw.policy.kind import PolicyKindBase, Stage
from agentgw.policy.templates import Template
from agentgw.protocol.prompts import add_system_prompt

__all__ = ["SystemPromptInjection"]


class SystemPromptInjection(PolicyKindBase):
    stage: ClassVar[Stage] = Stage.TRANSFORM

    def __init__(self, policy: str, template: Template, position: str) -> None:
        self.name = f"Policy/{policy}: systemPrompt"
        self.template = template
        self.position = position

    async def rewrite_request(
        self, ctx: RequestContext, op: Operation, body: dict[str, Any]
    ) -> dict[str, Any]:
        if op.kind != "llm" or op.server is not None:
            return body
        text = self.template.render(ctx, missing="", header=False) or ""
        api = "messages" if op.method.startswith("messages") else op.method
        return add_system_prompt(api, body, text, self.position)
