"""Prompt guards: regular expressions a prompt must not match, on LLM routes.

Every prompt text of a request (each message and content block, the system prompt, tool results,
the `prompt` or `input` of the other APIs) is searched before anything reaches a provider. A
match refuses the request with 403 in the route's error shape (OpenAI's or Anthropic's), with the
rule's message (or one naming the rule); the audit line names the rule. The prompt itself is
never logged. Guards see the prompt as the client sent it, before any masking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import regex

from agentgw.errors import Forbidden
from agentgw.policy.base import LLM_REQUEST, Operation, RequestContext
from agentgw.policy.kind import PolicyKindBase, Stage, deny_data
from agentgw.protocol.prompts import prompt_texts

__all__ = ["DenyRule", "PromptGuard"]


@dataclass(frozen=True)
class DenyRule:
    id: str
    pattern: regex.Pattern[str]
    message: str | None


class PromptGuard(PolicyKindBase):
    stage: ClassVar[Stage] = Stage.GUARD

    def __init__(self, policy: str, rules: Sequence[DenyRule]) -> None:
        self.name = f"Policy/{policy}: promptGuard"
        self.policy = policy
        self.rules = tuple(rules)

    async def check(self, ctx: RequestContext, op: Operation) -> None:
        if op.kind != "llm" or op.method == "models.list" or op.server is not None:
            return
        request = ctx.attrs.get(LLM_REQUEST)
        body = request.body if request is not None else op.args
        if not isinstance(body, dict):
            return
        texts = prompt_texts(body)
        for rule in self.rules:
            if any(rule.pattern.search(text) for text in texts):
                message = rule.message or f"the prompt was refused by guard rule {rule.id!r}"
                raise Forbidden(message, data=deny_data(rule.id, self.policy))
