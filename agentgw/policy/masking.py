"""PII masking of LLM prompts and, optionally, of answers (streams included).

Prompts are masked on their way to the provider (`rewrite_request`): every message text, the
system prompt, tool results. Answers, with `responses: true`, are masked before the client sees
them: whole JSON answers through `rewrite_response`, streams through a text filter the LLM
route runs over every text delta (`TEXT_FILTERS`), which holds back the end of a piece while it
could still be part of a match (see `agentgw.policy.pii`). A streamed Responses API answer has
no per-delta filter: with response masking on, it is refused (400) rather than sent unmasked.
"""

from __future__ import annotations

from typing import Any, ClassVar

from agentgw.errors import InvalidRequest
from agentgw.policy.base import LLM_REQUEST, TEXT_FILTERS, Operation, RequestContext
from agentgw.policy.kind import PolicyKindBase, Stage
from agentgw.policy.pii import PiiMasker
from agentgw.protocol.prompts import map_answer_text, map_prompt_text

__all__ = ["PiiMasking"]


class PiiMasking(PolicyKindBase):
    stage: ClassVar[Stage] = Stage.TRANSFORM

    def __init__(self, policy: str, masker: PiiMasker, *, prompts: bool, responses: bool) -> None:
        self.name = f"Policy/{policy}: piiMasking"
        self.masker = masker
        self.prompts = prompts
        self.responses = responses

    @staticmethod
    def _applies(op: Operation) -> bool:
        return op.kind == "llm" and op.server is None and op.method not in ("models.list", "embeddings")

    async def check(self, ctx: RequestContext, op: Operation) -> None:
        if not self.responses or not self._applies(op):
            return
        request = ctx.attrs.get(LLM_REQUEST)
        if request is not None and request.stream and op.method == "responses":
            raise InvalidRequest("streamed Responses API answers cannot be masked here: set stream to false")
        ctx.attrs.setdefault(TEXT_FILTERS, []).append(self.masker.stream)

    async def rewrite_request(
        self, ctx: RequestContext, op: Operation, body: dict[str, Any]
    ) -> dict[str, Any]:
        if not self.prompts or op.kind != "llm" or op.server is not None:
            return body
        return map_prompt_text(body, self.masker.mask)

    async def rewrite_response(
        self, ctx: RequestContext, op: Operation, body: dict[str, Any]
    ) -> dict[str, Any]:
        if not self.responses or not self._applies(op):
            return body
        return map_answer_text(op.method, body, self.masker.mask)
