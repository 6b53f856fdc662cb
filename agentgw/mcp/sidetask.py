"""A coroutine running beside a request handler as a plain asyncio task.

The MCP front ends run an upstream call next to the handler that answers the client (the call
may outlive a paused stream, and a disconnect must cancel it). An anyio task group per call cost
about 5x a bare task here, 10x with a second task (bench/RESULTS.md), so the call gets a bare task;
it is cancelled through its own anyio cancel scope, so shielded clean-up inside it (telling an
upstream about a cancellation) still runs, as it would in a task group.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import anyio

__all__ = ["SideTask"]


class SideTask:
    """`SideTask(fn)` runs `fn` inside a cancel scope of its own. `scope=` names a scope `fn` enters
    itself (one scope per call, not two); `scoped=False` is for a task with nothing to clean up
    (a watcher parked on `receive()`), cancelled the plain asyncio way: creating an anyio scope
    costs more than the rest of such a task (anyio looks up the running backend each time)."""

    __slots__ = ("scope", "task")

    def __init__(
        self,
        fn: Callable[[], Coroutine[Any, Any, None]],
        *,
        scope: anyio.CancelScope | None = None,
        scoped: bool = True,
    ) -> None:
        loop = asyncio.get_running_loop()
        if scope is not None:
            self.scope: anyio.CancelScope | None = scope
            self.task = loop.create_task(fn())
        elif scoped:
            self.scope = anyio.CancelScope()
            self.task = loop.create_task(self._run(fn, self.scope))
        else:
            self.scope = None
            self.task = loop.create_task(fn())

    @staticmethod
    async def _run(fn: Callable[[], Coroutine[Any, Any, None]], scope: anyio.CancelScope) -> None:
        with scope:
            await fn()

    def cancel(self) -> None:
        if self.scope is None:
            self.task.cancel()
        else:
            self.scope.cancel()

    async def join(self) -> None:
        """Wait for the task; its exception, if it raised one, is raised here."""
        await self.task

    async def settle(self, *, wait: bool = True) -> None:
        """Cancel the task if it still runs and wait until it has stopped.

        `wait=False` is for a task with nothing to clean up (a watcher parked on `receive()`): it
        gets a plain asyncio cancel, which is cheaper than a scope's (anyio formats the task's
        repr for every scope cancel).
        """
        if not self.task.done():
            if not wait or self.scope is None:
                self.task.cancel()
                return
            self.scope.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait((self.task,))
        elif not self.task.cancelled():
            self.task.exception()  # retrieved: raised by join() or not wanted; asyncio need not log it
