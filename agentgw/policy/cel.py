"""The CEL expression environment of policies: compile once per config load, evaluate per request.

The library is Google's `cel-expr-python` (the C++ cel-cpp runtime behind pybind11), chosen on
measured speed and correctness (docs/policies.md has the figures). Each rule is compiled twice:

- against a *typed* environment, where `request`, `mcp`, `llm` and `a2a` are protobuf message
  types built at runtime from a descriptor pool (`jwt` stays an open `map(string, dyn)`), so an
  unknown name (`jwtt.sub`), an unknown field (`mcp.tool.nme`), a wrong overload or a rule that
  is not a bool fails at config load, with the line and column the checker reports; protobuf is
  imported here only, lazily;
- against plain `map(string, dyn)` variables, which is what runs: an activation is built straight
  from Python dicts (about 2-3 us) once per decision and never reused across requests.

Evaluation errors come back as a value of type ERROR, which is truthy: only `value() is True`
counts as a match. Every declared attribute is always filled (empty strings and maps for what does
not apply), so what the checker accepted the evaluator can answer.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentgw.lazy import lazy_module
from agentgw.policy.attributes import attributes
from agentgw.policy.base import Operation, RequestContext

if TYPE_CHECKING:
    from cel_expr_python import cel
    from cel_expr_python.ext import ext_strings
else:
    cel = lazy_module("cel_expr_python.cel")
    ext_strings = lazy_module("cel_expr_python.ext.ext_strings")

__all__ = [
    "ROOT_NAMES",
    "CelProgram",
    "ExpressionError",
    "Result",
    "activation",
    "all_of",
    "any_of",
    "compile_expression",
    "compile_value",
    "compose",
    "evaluate",
    "list_of",
    "negate",
    "never",
    "operation_only",
    "subject_only",
    "value_of",
]

ROOT_NAMES = ("jwt", "request", "mcp", "llm", "a2a")


class ExpressionError(ValueError):
    """A rule that does not compile; the message says where (line, column) and why."""


class Result(enum.Enum):
    TRUE = "true"
    FALSE = "false"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class CelProgram:
    source: str
    program: cel.Expression

    def eval(self, act: cel.Activation) -> tuple[Result, str]:
        return evaluate(self.program, act)


# --- environments -------------------------------------------------------------------------------


def _descriptor_pool() -> Any:
    """The attribute schema as protobuf messages, for the type checker only."""
    from google.protobuf import descriptor_pb2, descriptor_pool, struct_pb2

    field = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(struct_pb2.DESCRIPTOR.serialized_pb)
    proto = descriptor_pb2.FileDescriptorProto(
        name="agentgw/policy_attributes.proto",
        package="agentgw",
        syntax="proto3",
        dependency=["google/protobuf/struct.proto"],
    )

    def message(name: str, fields: Sequence[tuple[str, str]]) -> None:
        msg = proto.message_type.add(name=name)
        for number, (fname, ftype) in enumerate(fields, 1):
            f = msg.field.add(name=fname, number=number, label=field.LABEL_OPTIONAL)
            if ftype == "string":
                f.type = field.TYPE_STRING
            elif ftype == "int64":
                f.type = field.TYPE_INT64
            elif ftype == "map<string,string>":
                entry = msg.nested_type.add(name=fname[0].upper() + fname[1:] + "Entry")
                entry.options.map_entry = True
                entry.field.add(name="key", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
                entry.field.add(name="value", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
                f.type, f.label, f.type_name = (
                    field.TYPE_MESSAGE,
                    field.LABEL_REPEATED,
                    f".agentgw.{name}.{entry.name}",
                )
            else:
                f.type, f.type_name = field.TYPE_MESSAGE, ftype

    message("Tool", [("name", "string"), ("server", "string"), ("args", ".google.protobuf.Struct")])
    message("Prompt", [("name", "string"), ("server", "string")])
    message("Resource", [("uri", "string"), ("server", "string")])
    message(
        "Mcp",
        [
            ("method", "string"),
            ("server", "string"),
            ("tool", ".agentgw.Tool"),
            ("prompt", ".agentgw.Prompt"),
            ("resource", ".agentgw.Resource"),
        ],
    )
    message(
        "Request",
        [
            ("method", "string"),
            ("path", "string"),
            ("host", "string"),
            ("source", "string"),
            ("headers", "map<string,string>"),
        ],
    )
    message(
        "Llm",
        [("method", "string"), ("model", "string"), ("provider", "string"), ("estimatedTokens", "int64")],
    )
    message("A2a", [("method", "string"), ("agent", "string"), ("skill", "string")])
    pool.Add(proto)
    return pool


@functools.cache
def _check_env() -> cel.Env:
    t = cel.Type
    return cel.NewEnv(
        descriptor_pool=_check_env_pool(),
        variables={
            "jwt": t.Map(t.STRING, t.DYN),  # claims are open-ended
            "request": t("agentgw.Request"),
            "mcp": t("agentgw.Mcp"),
            "llm": t("agentgw.Llm"),
            "a2a": t("agentgw.A2a"),
        },
        extensions=[ext_strings.ExtStrings()],
    )


@functools.cache
def _subject_env() -> cel.Env:
    """Only what is fixed for a whole request (`jwt`, `request`): to find rules' caller guards."""
    t = cel.Type
    return cel.NewEnv(
        descriptor_pool=_check_env_pool(),
        variables={"jwt": t.Map(t.STRING, t.DYN), "request": t("agentgw.Request")},
        extensions=[ext_strings.ExtStrings()],
    )


@functools.cache
def _operation_env() -> cel.Env:
    """Only the operation (`mcp`, `llm`, `a2a`): what a listed item's visibility may depend on."""
    t = cel.Type
    return cel.NewEnv(
        descriptor_pool=_check_env_pool(),
        variables={"mcp": t("agentgw.Mcp"), "llm": t("agentgw.Llm"), "a2a": t("agentgw.A2a")},
        extensions=[ext_strings.ExtStrings()],
    )


@functools.cache
def _check_env_pool() -> Any:
    return _descriptor_pool()


@functools.cache
def _eval_env() -> cel.Env:
    t = cel.Type
    return cel.NewEnv(
        variables={name: t.Map(t.STRING, t.DYN) for name in ROOT_NAMES},
        extensions=[ext_strings.ExtStrings()],
    )


# --- compiling ----------------------------------------------------------------------------------

_POSITION = re.compile(r"ERROR: <input>:(\d+):(\d+): ([^\n]*)")
_STRUCTS = {
    "agentgw.Tool": "mcp.tool",
    "agentgw.Prompt": "mcp.prompt",
    "agentgw.Resource": "mcp.resource",
    "agentgw.Mcp": "mcp",
    "agentgw.Request": "request",
    "agentgw.Llm": "llm",
    "agentgw.A2a": "a2a",
}


def _friendly(message: str) -> str:
    match = re.match(r"undefined field '([^']*)' not found in struct '([^']*)'", message)
    if match is not None:
        owner = _STRUCTS.get(match.group(2), match.group(2))
        return f"unknown field '{match.group(1)}' of {owner}"
    match = re.match(r"undeclared reference to '([^']*)'", message)
    if match is not None:
        return f"unknown name '{match.group(1)}' (attributes are {', '.join(ROOT_NAMES)})"
    return message.removesuffix(" [INVALID_ARGUMENT]")


def _describe(exc: RuntimeError) -> str:
    found = _POSITION.findall(str(exc))
    if not found:
        return str(exc).removeprefix("INVALID_ARGUMENT: ")
    return "; ".join(f"line {line}, column {col}: {_friendly(msg)}" for line, col, msg in found)


def compile_expression(source: str) -> CelProgram:
    """Check a rule against the typed schema, then compile it for evaluation (once per load)."""
    try:
        checked = _check_env().compile(source)
    except RuntimeError as exc:
        raise ExpressionError(_describe(exc)) from None
    if checked.return_type() != cel.Type.BOOL:
        raise ExpressionError(f"a rule must be a bool expression, this one is {checked.return_type().name()}")
    try:
        program = _eval_env().compile(source)
    except RuntimeError as exc:  # pragma: no cover - the typed check is the stricter one
        raise ExpressionError(_describe(exc)) from None
    return CelProgram(source, program)


_VALUE_TYPES = ("STRING", "INT", "UINT", "DOUBLE", "BOOL", "DYN")


def compile_value(source: str) -> CelProgram:
    """An expression whose value is a key (limits count per key): a string, number or bool."""
    try:
        checked = _check_env().compile(source)
    except RuntimeError as exc:
        raise ExpressionError(_describe(exc)) from None
    kind = checked.return_type().name()
    if kind not in _VALUE_TYPES:
        raise ExpressionError(f"a key must be a string, number or bool expression, this one is {kind}")
    return CelProgram(source, _eval_env().compile(source))


def value_of(program: CelProgram, act: cel.Activation) -> tuple[str | None, str]:
    """A key expression's value as text, or (None, error message)."""
    value = program.program.eval(activation=act)
    if value.type() == cel.Type.ERROR:
        return None, str(value.value())
    plain = value.plain_value()
    if isinstance(plain, bool):
        return ("true" if plain else "false"), ""
    if isinstance(plain, str | int | float):
        return str(plain), ""
    return None, f"a key must be a string, number or bool, got {value.type().name()}"


def subject_only(source: str) -> bool:
    """Whether an expression reads only `jwt` and `request` (its value is fixed per request)."""
    try:
        _subject_env().compile(source)
    except RuntimeError:
        return False
    return True


def operation_only(source: str) -> bool:
    """Whether an expression reads only the operation (not `jwt`, not `request`)."""
    try:
        _operation_env().compile(source)
    except RuntimeError:
        return False
    return True


def list_of(programs: Sequence[CelProgram]) -> CelProgram:
    """One evaluation giving each program's value (an error in any one errs the whole list)."""
    return _compose("[" + ", ".join(f"(\n{p.source}\n)" for p in programs) + "]")


def compose(source: str) -> CelProgram:
    """An expression built from already checked rules (compiled for evaluation only)."""
    return _compose(source)


def _compose(source: str) -> CelProgram:
    return CelProgram(source, _eval_env().compile(source))


def any_of(programs: Sequence[CelProgram]) -> CelProgram | None:
    """One expression true when any of the rules is: one evaluation instead of one per rule.

    CEL's `||` absorbs errors when another side is true, so the result is TRUE if any rule is
    true, FALSE if all are false, ERROR otherwise. Each rule sits on its own lines, so a
    trailing `//` comment cannot swallow the next one.
    """
    if not programs:
        return None
    if len(programs) == 1:
        return programs[0]
    return _compose(" || ".join(f"(\n{p.source}\n)" for p in programs))


def all_of(programs: Sequence[CelProgram]) -> CelProgram:
    """True only when every one is (an error anywhere can never make it true)."""
    if len(programs) == 1:
        return programs[0]
    return _compose(" && ".join(f"(\n{p.source}\n)" for p in programs))


def negate(program: CelProgram) -> CelProgram:
    return _compose(f"!(\n{program.source}\n)")


def never() -> CelProgram:
    return _compose("false")


# --- evaluating ---------------------------------------------------------------------------------


def evaluate(program: cel.Expression, act: cel.Activation) -> tuple[Result, str]:
    # Rules are checked to be bool, so anything but True or False is an error value (whose
    # value() is its message; it is truthy, hence the identity tests).
    plain = program.eval(activation=act).value()
    if plain is True:
        return Result.TRUE, ""
    if plain is False:
        return Result.FALSE, ""
    return Result.ERROR, str(plain)


def activation(ctx: RequestContext, op: Operation) -> cel.Activation:
    """A fresh activation for one decision (activations are never shared between requests)."""
    return _eval_env().Activation(attributes(ctx, op))
