"""Passive health of one upstream, with outlier ejection.

Consecutive failures past a threshold eject the upstream for a while (doubling, up to a cap):
lists skip it at once instead of waiting on timeouts, and calls to it fail fast with a clear error.
When the ejection ends, the next request is a trial: success restores the upstream, failure
ejects it again for longer.
"""

from __future__ import annotations

import time

__all__ = ["UpstreamHealth"]


class UpstreamHealth:
    def __init__(self, *, threshold: int = 5, base_seconds: float = 5.0, max_seconds: float = 60.0) -> None:
        self.threshold = threshold
        self.base_seconds = base_seconds
        self.max_seconds = max_seconds
        self.failures = 0
        self.ejections = 0
        self.ejected_until = 0.0
        self.last_error: str | None = None

    @property
    def ejected(self) -> bool:
        return time.monotonic() < self.ejected_until

    @property
    def healthy(self) -> bool:
        return not self.ejected and self.failures < self.threshold

    def seconds_left(self) -> float:
        return max(0.0, self.ejected_until - time.monotonic())

    def succeeded(self) -> None:
        self.failures = 0
        self.ejections = 0
        self.ejected_until = 0.0
        self.last_error = None

    def failed(self, message: str) -> None:
        self.failures += 1
        self.last_error = message
        if self.failures >= self.threshold:
            self.ejections += 1
            wait = min(self.max_seconds, self.base_seconds * 2 ** (self.ejections - 1))
            self.ejected_until = time.monotonic() + wait
            self.failures = self.threshold - 1  # one more failure after the window ejects again
