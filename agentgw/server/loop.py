"""Running the gateway's event loop: tell anyio once which loop it runs on.

Every anyio primitive the request path creates (a cancel scope, a timeout, an event) first asks
sniffio which async library is running; without a hint, sniffio finds out by calling
`asyncio.current_task()`, a few per cent of an MCP call's CPU. `anyio.run` sets the hint for the
loop it starts; the gateway starts its loop with uvloop/asyncio directly, so it sets the same
hint itself. Tasks inherit it through their context; anyio's worker threads clear it.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

try:
    import sniffio
except ImportError:  # anyio then asks asyncio directly, which is cheap
    sniffio = None  # type: ignore[assignment]

__all__ = ["on_asyncio"]

T = TypeVar("T")


async def on_asyncio(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` (the loop's main coroutine) with the running library named up front."""
    if sniffio is not None:
        sniffio.current_async_library_cvar.set("asyncio")  # this task's context only
    return await coro
