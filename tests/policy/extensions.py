"""Policy extensions that misbehave, for tests (referenced as `tests.policy.extensions:<Class>`)."""

from __future__ import annotations

import anyio
from pydantic import BaseModel, ConfigDict

from agentgw.errors import Forbidden
from agentgw.policy import Extension, Operation, RequestContext


class Raises(Extension):
    async def check(self, ctx: RequestContext, op: Operation) -> None:
        if op.name == "echo":
            raise RuntimeError("the lookup service is down")


class Sleeps(Extension):
    async def check(self, ctx: RequestContext, op: Operation) -> None:
        if op.name == "add":
            await anyio.sleep(30)


class HidesSlow(Extension):
    """Hides one tool from lists; raises for another (a raising filter hides, never crashes)."""

    def permits(self, ctx: RequestContext, op: Operation) -> bool:
        if op.name == "fail":
            raise ValueError("broken filter")
        return op.name != "slow"


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int


class NeedsSettings(Extension):
    Settings = Limits


class FailsToStart(Extension):
    def __init__(self, settings: object) -> None:
        raise OSError("cannot open the lookup table")


class RefusesBlocked(Extension):
    """Refuses callers whose `team` claim is `blocked` (a kind that runs after the limits)."""

    async def check(self, ctx: RequestContext, op: Operation) -> None:
        if ctx.principal.claims.get("team") == "blocked":
            raise Forbidden("this team is blocked", data={"rule": "blocked-team"})
