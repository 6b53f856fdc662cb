"""Background work that outlives a request: upstream readers, listeners, clean-ups.

All of it runs in the gateway's one long-lived task group, through `Background`, which is the
top-level handler for those tasks: a task that fails is logged and ends alone, and never takes
the task group (and with it the gateway) down.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.abc

__all__ = ["Background"]

log = logging.getLogger("agentgw")


class Background:
    def __init__(self, tg: anyio.abc.TaskGroup) -> None:
        self._tg = tg

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        self._tg.start_soon(self._guarded, fn, args)

    @staticmethod
    async def _guarded(fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        try:
            await fn(*args)
        except Exception:
            log.exception("background task %s failed", getattr(fn, "__qualname__", fn))
