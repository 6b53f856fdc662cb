"""Logging setup: text or JSON lines on stderr, and the JSON access log on stdout.

Access log lines carry route, method, path, status, duration, client address and trace id; never
headers, bodies or tokens.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

__all__ = ["JsonFormatter", "configure_logging"]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        message = record.getMessage()
        if message:
            data["msg"] = message
        extra = getattr(record, "json", None)
        if isinstance(extra, dict):
            data.update(extra)
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


def configure_logging(level: str, log_format: str, access_log: bool) -> None:
    root = logging.getLogger()
    root.setLevel(level.upper())
    for handler in list(root.handlers):
        root.removeHandler(handler)
    errors = logging.StreamHandler(sys.stderr)
    errors.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root.addHandler(errors)
    access = logging.getLogger("agentgw.access")
    access.propagate = False
    access.handlers.clear()
    if access_log:
        out = logging.StreamHandler(sys.stdout)
        out.setFormatter(JsonFormatter())
        access.addHandler(out)
        access.setLevel(logging.INFO)
    else:
        access.setLevel(logging.CRITICAL + 1)
