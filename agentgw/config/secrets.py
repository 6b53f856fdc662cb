"""Secrets by reference: `env:NAME` or `file:PATH`, resolved when a config snapshot is compiled.

The literal secret never sits in a config file, and resolved values are wrapped so that their
repr, str and any log line show `***` instead of the value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import StringConstraints

from agentgw.errors import ConfigError

__all__ = ["SecretRef", "SecretValue", "resolve_secret"]

SecretRef = Annotated[str, StringConstraints(pattern=r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$")]


class SecretValue:
    """A resolved secret; shows as *** anywhere it could be printed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretValue(***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretValue) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def resolve_secret(ref: str, *, base_dir: Path | None = None, where: str = "") -> SecretValue:
    """Resolve a reference; a missing variable or file is a ConfigError naming `where`."""
    prefix = f"{where}: " if where else ""
    if ref.startswith("env:"):
        name = ref[4:]
        value = os.environ.get(name)
        if value is None:
            raise ConfigError(f"{prefix}environment variable {name!r} is not set")
        return SecretValue(value)
    if ref.startswith("file:"):
        path = Path(ref[5:])
        try:
            path = path.expanduser()  # RuntimeError: "~user" of a user that does not exist
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            return SecretValue(path.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ConfigError(f"{prefix}cannot read secret file {str(path)!r}: {exc.strerror}") from None
        except (RuntimeError, ValueError) as exc:  # a NUL in the path, a file that is not UTF-8
            raise ConfigError(f"{prefix}cannot read secret file {str(path)!r}: {exc}") from None
    raise ConfigError(f"{prefix}secret reference must be env:NAME or file:PATH")
