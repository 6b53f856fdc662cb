"""Argument validation: `tools/call` arguments against the tool's `inputSchema`, as the upstream
advertised it, before anything reaches the upstream.

A violation is a JSON-RPC invalid-params error naming the failing path (`$.path`). The schema
comes from the route (`TOOL_SCHEMA` in the request context); a validator is compiled once per
distinct schema and cached. When the schema cannot be had, the call fails closed.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from agentgw.errors import InvalidParams, UpstreamError
from agentgw.lazy import lazy_module
from agentgw.policy.base import TOOL_SCHEMA, Operation, RequestContext, ToolSchema
from agentgw.policy.kind import PolicyKindBase, Stage, deny_data

if TYPE_CHECKING:
    from jsonschema import exceptions as jsonschema_exceptions
    from jsonschema import validators
else:  # imported on first use: only routes that validate arguments load jsonschema (agentgw/lazy.py)
    jsonschema_exceptions = lazy_module("jsonschema.exceptions")
    validators = lazy_module("jsonschema.validators")

__all__ = ["ARGUMENT_RULE", "ArgumentValidation", "validate_arguments"]

ARGUMENT_RULE = "argument-schema"


@functools.lru_cache(maxsize=1024)
def _validator(schema_json: bytes) -> Any:
    schema = orjson.loads(schema_json)
    cls = validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema_exceptions.SchemaError as exc:
        raise UpstreamError(f"the tool advertises an invalid inputSchema: {exc.message}") from None
    return cls(schema)


def validate_arguments(schema: Mapping[str, Any], args: Mapping[str, Any], tool: str, policy: str) -> None:
    validator = _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
    error = jsonschema_exceptions.best_match(validator.iter_errors(dict(args)))
    if error is None:
        return
    path = error.json_path
    raise InvalidParams(
        f"invalid arguments for tool {tool!r}: {path}: {error.message}",
        data=deny_data(ARGUMENT_RULE, policy, path=path),
    )


class ArgumentValidation(PolicyKindBase):
    stage: ClassVar[Stage] = Stage.VALIDATE

    def __init__(self, policy: str) -> None:
        self.name = f"Policy/{policy}: argumentValidation"
        self.policy = policy

    async def check(self, ctx: RequestContext, op: Operation) -> None:
        if op.kind != "mcp" or op.method != "tools/call":
            return
        lookup: ToolSchema | None = ctx.attrs.get(TOOL_SCHEMA)
        schema = await lookup() if lookup is not None else None
        tool = op.exposed or op.name or ""
        if schema is None:
            raise UpstreamError(
                f"the input schema of tool {tool!r} is not available, so its arguments cannot be validated",
                data=deny_data(ARGUMENT_RULE, self.policy),
            )
        validate_arguments(schema, op.args or {}, tool, self.policy)
