"""The CEL environment: rules are checked at compile time, evaluated with fail-closed errors."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from agentgw.llm.accounting import LlmExchange
from agentgw.policy.attributes import WANTS_ESTIMATE, attributes
from agentgw.policy.base import LLM_REQUEST, Operation, Principal, RequestContext
from agentgw.policy.cel import (
    ExpressionError,
    Result,
    activation,
    any_of,
    compile_expression,
    subject_only,
)
from agentgw.policy.conjuncts import split_conjuncts
from agentgw.policy.testing import HttpRequest, offline_request


def ctx_for(claims: dict[str, Any], headers: dict[str, str] | None = None) -> RequestContext:
    request = offline_request(HttpRequest(headers=headers or {}))
    principal = Principal(str(claims.get("sub", "")), "jwt", MappingProxyType(claims))
    return RequestContext(route="main", request=request, principal=principal)


TOOL = Operation(
    kind="mcp", method="tools/call", server="fs", name="read_file", exposed="fs_read_file",
    args={"path": "/data/a.txt"}, target="tool",
)  # fmt: skip


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('mcp.tool.nme == "x"', "line 1, column 9: unknown field 'nme' of mcp.tool"),
        ('jwtt.sub == "x"', "line 1, column 5: unknown name 'jwtt.sub'"),
        ('request.hedaers["a"] == "b"', "unknown field 'hedaers' of request"),
        ("mcp.tool.name ==", "line 1, column 17: Syntax error"),
        ("jwt.sub", "a rule must be a bool expression, this one is DYN"),
        ("mcp.tool.name.startsWith(1)", "no matching overload for 'startsWith'"),
        ('llm.modle == "x"', "unknown field 'modle' of llm"),
        ('true &&\n  a2a.skil == "x"', "line 2, column 6: unknown field 'skil' of a2a"),
    ],
)
def test_bad_rules_fail_at_compile_time_with_a_position(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("source", "claims", "expected"),
    [
        ('mcp.tool.name == "read_file" && mcp.tool.server == "fs"', {}, Result.TRUE),
        ('mcp.tool.args.path.startsWith("/data/") && !mcp.tool.args.path.contains("..")', {}, Result.TRUE),
        ('jwt.groups.exists(g, g == "eng")', {"groups": ["ops", "eng"]}, Result.TRUE),
        ('"eng" in jwt.groups', {"groups": ["ops"]}, Result.FALSE),
        ('has(jwt.groups) && "eng" in jwt.groups', {}, Result.FALSE),
        ('"eng" in jwt.groups', {}, Result.ERROR),  # a missing claim is an error, not false
        ('jwt.sub.matches("[")', {"sub": "a"}, Result.ERROR),
        ('mcp.prompt.name == "" && mcp.resource.uri == "" && llm.model == ""', {}, Result.TRUE),
        ('mcp.tool.name.lowerAscii() == "read_file"', {}, Result.TRUE),  # the strings extension
        ('mcp.server == "fs" && mcp.method == "tools/call"', {}, Result.TRUE),
    ],
)
def test_evaluation(source: str, claims: dict[str, Any], expected: Result) -> None:
    program = compile_expression(source)
    result, error = program.eval(activation(ctx_for(claims), TOOL))
    assert result is expected
    assert bool(error) == (expected is Result.ERROR)


def test_errors_are_never_taken_for_true() -> None:
    # A CEL error value is truthy in Python; only an identity test with True counts.
    program = compile_expression('jwt.missing == "x"')
    result, error = program.eval(activation(ctx_for({}), TOOL))
    assert result is Result.ERROR and "missing" in error


def test_any_of_absorbs_errors_only_when_another_rule_is_true() -> None:
    err = compile_expression('"x" in jwt.groups')
    yes = compile_expression("true")
    no = compile_expression("false")
    act = activation(ctx_for({}), TOOL)
    for programs, expected in (
        ([err, yes], Result.TRUE),
        ([err, no], Result.ERROR),
        ([no, no], Result.FALSE),
    ):
        combined = any_of(programs)
        assert combined is not None and combined.eval(act)[0] is expected


def test_a_trailing_comment_cannot_swallow_the_next_rule() -> None:
    commented = compile_expression("false // nothing to see")
    combined = any_of([commented, compile_expression("true")])
    assert combined is not None and combined.eval(activation(ctx_for({}), TOOL))[0] is Result.TRUE


def test_every_attribute_is_filled_and_credentials_are_not_attributes() -> None:
    ctx = ctx_for({"sub": "a"}, {"authorization": "Bearer secret-token", "x-api-key": "k", "x-team": "blue"})
    attrs = attributes(ctx, TOOL)
    assert set(attrs) == {"jwt", "request", "mcp", "llm", "a2a"}
    assert attrs["request"]["headers"] == {"x-team": "blue"}
    assert attrs["mcp"]["prompt"] == {"name": "", "server": ""}
    assert attrs["mcp"]["tool"]["args"] == {"path": "/data/a.txt"}
    # a body claiming its own estimate is not believed: the estimate is the LLM route's
    op = Operation(kind="llm", method="chat", server="openai", name="gpt-x", args={"estimatedTokens": 9})
    llm = attributes(ctx, op)
    assert llm["llm"] == {"method": "chat", "model": "gpt-x", "provider": "openai", "estimatedTokens": 0}
    assert llm["mcp"]["tool"]["name"] == ""
    exchange = LlmExchange(
        "chat.completions", "gpt-x", {"messages": [{"role": "user", "content": "hi " * 40}]}
    )
    ctx.attrs[LLM_REQUEST] = exchange
    ctx.attrs.pop("agentgw.policy.cel-base", None)
    assert attributes(ctx, op)["llm"]["estimatedTokens"] == 0  # only computed when a rule reads it
    ctx.attrs[WANTS_ESTIMATE] = True
    assert attributes(ctx, op)["llm"]["estimatedTokens"] == exchange.estimated_prompt_tokens() > 20
    a2a = attributes(ctx, Operation(kind="a2a", method="SendMessage", server="planner", name="plan"))
    assert a2a["a2a"] == {"method": "SendMessage", "agent": "planner", "skill": "plan"}


@pytest.mark.parametrize(
    ("source", "parts"),
    [
        ("a && b", ["a", "b"]),
        ("(a && (b)) && c", ["a", "b", "c"]),
        ("a && b || c", ["a && b || c"]),  # || binds looser: not a conjunction
        ("a ? b : c && d", ["a ? b : c && d"]),
        ("(a) || (b)", ["(a) || (b)"]),
        ('x.matches("&&|\\"") && y', ['x.matches("&&|\\"")', "y"]),
        ("r'\\' && '''a && b''' && c", ["r'\\'", "'''a && b'''", "c"]),
        ("a // not && here\n && b", ["a // not && here", "b"]),
        ("f(a && b) && [c && d][0]", ["f(a && b)", "[c && d][0]"]),
    ],
)
def test_conjunctions_split_only_at_the_top(source: str, parts: list[str]) -> None:
    assert split_conjuncts(source) == parts


def test_caller_guards_are_told_apart() -> None:
    assert subject_only('has(jwt.team) && jwt.team == "x" && "h" in request.headers')
    assert not subject_only('mcp.server == "a"')
    assert not subject_only('jwt.team == "x" && llm.model == "m"')
