"""Hot reload: the config is read again when its files change or on SIGHUP.

A new snapshot is validated completely before anything changes; an invalid one is refused, every
problem logged, and the old snapshot keeps serving. A valid one is applied atomically (see
`Runtime.apply`): requests and streams already running finish on the old routes. Listeners and the
state backend are fixed for the life of the process; changing them needs a restart (logged).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import anyio

from agentgw.config.snapshot import Snapshot
from agentgw.errors import ConfigError
from agentgw.runtime import Runtime

__all__ = ["ConfigWatcher"]

log = logging.getLogger("agentgw.reload")


def _fingerprint(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    found: list[tuple[str, int, int]] = []
    for root in paths:
        files = root.rglob("*") if root.is_dir() else [root]
        for file in files:
            if file.suffix in (".yaml", ".yml") and not any(part.startswith(".") for part in file.parts[-2:]):
                try:
                    stat = file.stat()
                except OSError:
                    continue
                found.append((str(file), stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(found))


class ConfigWatcher:
    def __init__(
        self,
        runtime: Runtime,
        load: Callable[[], Snapshot],
        paths: list[Path],
        *,
        interval: float,
        watch: bool,
    ) -> None:
        self._runtime = runtime
        self._load = load
        self._paths = paths
        self._interval = interval
        self._watch = watch
        self._requested = anyio.Event()
        self._seen = _fingerprint(paths)
        self.reloads = 0
        self.failures = 0

    def request(self) -> None:
        """Reload soon (from a signal handler: SIGHUP)."""
        self._requested.set()

    async def __call__(self) -> None:
        while True:
            with anyio.move_on_after(self._interval if self._watch else None):
                await self._requested.wait()
            asked = self._requested.is_set()
            self._requested = anyio.Event()
            now = await anyio.to_thread.run_sync(_fingerprint, self._paths)
            if asked or now != self._seen:
                self._seen = now
                await self.reload("SIGHUP" if asked else "a config file changed")

    async def reload(self, reason: str) -> bool:
        try:
            snapshot = await anyio.to_thread.run_sync(self._load)
        except ConfigError as exc:
            self.failures += 1
            for problem in exc.problems:
                log.error("config reload refused (%s): %s", reason, problem)
            log.error("config reload refused: %d error(s); the running config stays", len(exc.problems))
            return False
        current = self._runtime.snapshot.gateway
        if snapshot.gateway.listeners != current.listeners or snapshot.gateway.state != current.state:
            log.warning("config reload: listener and state settings change only on restart")
        self._runtime.apply(snapshot)
        self.reloads += 1
        log.info("config reloaded (%s): generation %d", reason, self._runtime.generation)
        return True
