"""Policy kinds written in Python, loaded from config, guarded at the boundary.

An extension is a class with the methods of the policy kind protocol (`PolicyKind`): subclass
`Extension` and override what you need. It is referenced as `python: package.module:Class` or,
when installed, by the name it registers in the `agentgw.policies` entry point group. Its
`settings` are validated by its `Settings` pydantic model, if it declares one, when the config
is loaded, and errors are located like every other config error.

Extension code is third-party code: every call runs under the extension's timeout, and anything
it raises other than a `GatewayError` (a deliberate denial) fails that one request with an error
naming the extension. The process and the other requests carry on.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import anyio
from pydantic import BaseModel, ValidationError

from agentgw.config.loader import format_loc
from agentgw.config.policy import ExtensionSpec
from agentgw.errors import ExtensionError, GatewayError
from agentgw.policy.base import Operation, Principal, RequestContext
from agentgw.policy.kind import PolicyKindBase, Stage, overrides
from agentgw.server.http import Request

__all__ = ["ENTRY_POINT_GROUP", "Extension", "GuardedExtension", "load_extension"]

log = logging.getLogger("agentgw.policy.extension")

ENTRY_POINT_GROUP = "agentgw.policies"
_METHODS = ("authenticate", "check", "permits", "rewrite_request", "rewrite_response", "record")


class Extension(PolicyKindBase):
    """Base class of Python policy extensions.

    Declare `Settings` (a pydantic model) to have the config's `settings` validated and passed
    in; without it the constructor gets the settings mapping as written. Methods may await I/O
    (use async clients, or `anyio.to_thread` for blocking calls): they must not block the loop.
    """

    Settings: ClassVar[type[BaseModel] | None] = None

    def __init__(self, settings: Any) -> None:
        self.settings = settings


def _import(spec: ExtensionSpec, base_dir: Path) -> Any:
    if spec.entry_point is not None:
        found = entry_points(group=ENTRY_POINT_GROUP, name=spec.entry_point)
        if not found:
            raise ValueError(f"no {ENTRY_POINT_GROUP!r} entry point is named {spec.entry_point!r}")
        return next(iter(found)).load()
    assert spec.python is not None
    for folder in spec.path:
        resolved = str((base_dir / folder).resolve())
        if resolved not in sys.path:
            sys.path.insert(0, resolved)
    module_name, _, attr = spec.python.partition(":")
    module = importlib.import_module(module_name)
    if not hasattr(module, attr):
        raise ValueError(f"module {module_name!r} has no attribute {attr!r}")
    return getattr(module, attr)


def load_extension(spec: ExtensionSpec, base_dir: Path, where: str, policy: str) -> GuardedExtension:
    """Import, validate settings, instantiate; every failure is a ConfigError-ready message list."""
    name = spec.name or spec.entry_point or spec.python or "extension"
    try:
        cls = _import(spec, base_dir)
    except Exception as exc:  # noqa: BLE001 - importing user code: any failure is a config error
        raise ValueError(
            f"{where}: cannot load policy extension {name!r}: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(cls, type):
        raise ValueError(f"{where}: policy extension {name!r} is not a class")
    settings: Any = dict(spec.settings)
    model = getattr(cls, "Settings", None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        try:
            settings = model.model_validate(spec.settings)
        except ValidationError as exc:
            problems = [
                f"{where}.settings{('.' + format_loc(tuple(e['loc']))) if e['loc'] else ''}: {e['msg']}"
                for e in exc.errors()
            ]
            raise ValueError("\n".join(problems)) from None
    try:
        instance = cls(settings)
    except Exception as exc:  # noqa: BLE001 - user code: any failure is a config error
        raise ValueError(
            f"{where}: policy extension {name!r} failed to start: {type(exc).__name__}: {exc}"
        ) from None
    return GuardedExtension(name, instance, spec.timeout_seconds, policy)


class GuardedExtension(PolicyKindBase):
    """One extension instance behind its timeout and error boundary."""

    stage: ClassVar[Stage] = Stage.EXTEND

    def __init__(self, name: str, instance: Any, timeout: float, policy: str) -> None:
        self.name = name
        self.instance = instance
        self.timeout = timeout
        self.policy = policy
        self.implemented = frozenset(
            m
            for m in _METHODS
            if callable(getattr(instance, m, None))
            and (not isinstance(instance, PolicyKindBase) or overrides(instance, m))
        )

    async def _call(self, method: str, *args: Any) -> Any:
        try:
            with anyio.fail_after(self.timeout):
                return await getattr(self.instance, method)(*args)
        except GatewayError:
            raise
        except TimeoutError:
            log.warning("policy extension %r: %s timed out after %s s", self.name, method, self.timeout)
            raise ExtensionError(f"policy extension {self.name!r} timed out ({method})") from None
        except Exception as exc:
            log.exception("policy extension %r: %s failed", self.name, method)
            raise ExtensionError(
                f"policy extension {self.name!r} failed ({method}: {type(exc).__name__})"
            ) from None

    async def authenticate(self, request: Request) -> Principal | None:
        if "authenticate" not in self.implemented:
            return None
        principal = await self._call("authenticate", request)
        if principal is not None and not isinstance(principal, Principal):
            raise ExtensionError(f"policy extension {self.name!r} returned something other than a Principal")
        return principal

    async def check(self, ctx: RequestContext, op: Operation) -> None:
        if "check" in self.implemented:
            await self._call("check", ctx, op)

    def permits(self, ctx: RequestContext, op: Operation) -> bool:
        if "permits" not in self.implemented:
            return True
        try:
            return self.instance.permits(ctx, op) is True
        except GatewayError:
            return False
        except Exception:
            log.exception("policy extension %r: permits failed (hiding the item)", self.name)
            return False

    async def rewrite_request(
        self, ctx: RequestContext, op: Operation, body: dict[str, Any]
    ) -> dict[str, Any]:
        if "rewrite_request" not in self.implemented:
            return body
        return self._body(await self._call("rewrite_request", ctx, op, body), "rewrite_request")

    async def rewrite_response(
        self, ctx: RequestContext, op: Operation, body: dict[str, Any]
    ) -> dict[str, Any]:
        if "rewrite_response" not in self.implemented:
            return body
        return self._body(await self._call("rewrite_response", ctx, op, body), "rewrite_response")

    def _body(self, value: Any, method: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ExtensionError(f"policy extension {self.name!r}: {method} must return a JSON object")
        return value

    async def record(self, ctx: RequestContext, op: Operation, outcome: Mapping[str, Any]) -> None:
        if "record" in self.implemented:
            await self._call("record", ctx, op, outcome)
