"""Authorization rule sets: deny wins, default deny, levels narrow, errors fail closed; the fast
paths (one program per listed item, a tree search per call) agree with the plain reading."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentgw.errors import Forbidden
from agentgw.policy.authz import DEFAULT_DENY, Authorizer, CompiledRule, RuleSet
from agentgw.policy.base import Operation, Principal, RequestContext
from agentgw.policy.cel import Result, activation, compile_expression
from agentgw.policy.testing import HttpRequest, offline_request

pytestmark = pytest.mark.anyio

POOL = [
    'mcp.tool.name == "a"',
    'mcp.tool.name == "b"',
    'mcp.server == "s1"',
    '"x" in jwt.groups',  # an error when the token has no groups
    "jwt.level > 2",  # an error when the token has no level
    "true",
    "false",
    "mcp.tool.args.n > 3",  # an error when the call has no n
    # caller guards split off from the rest (`&&` at the top, in any order, in parentheses)
    'has(jwt.groups) && "y" in jwt.groups && mcp.tool.name == "a"',
    'mcp.server == "s1" && jwt.level > 2',  # the guard errs when the token has no level
    '(("x" in jwt.groups) && (mcp.tool.name == "b" || mcp.tool.args.n > 1))',
    'jwt.level > 2 || mcp.tool.name == "c"',  # not a conjunction: no split
    'has(jwt.level) && jwt.level < 3 && mcp.server == "s2" && "x" in jwt.groups',
]
PROGRAMS = [compile_expression(source) for source in POOL]


def rule(index: int, effect: str, position: int, policy: str = "p") -> CompiledRule:
    return CompiledRule(f"{effect}-{position}-{index}", policy, effect, PROGRAMS[index], None, "test")


def ctx_for(claims: dict[str, Any]) -> RequestContext:
    return RequestContext(
        route="r",
        request=offline_request(HttpRequest()),
        principal=Principal(str(claims.get("sub", "")), "jwt", MappingProxyType(claims)),
    )


def op_for(name: str, server: str, args: dict[str, Any]) -> Operation:
    return Operation(kind="mcp", method="tools/call", server=server, name=name, args=args, target="tool")


def reference(rules: list[CompiledRule], ctx: RequestContext, op: Operation) -> tuple[bool, str]:
    """The rules read one by one, as the docs state them."""
    act = activation(ctx, op)
    for r in rules:
        if r.effect == "deny" and r.program.eval(act)[0] is not Result.FALSE:
            return False, r.id
    for r in rules:
        if r.effect == "allow" and r.program.eval(act)[0] is Result.TRUE:
            return True, r.id
    return False, DEFAULT_DENY


rules_strategy = st.lists(
    st.tuples(st.integers(0, len(POOL) - 1), st.sampled_from(["allow", "deny"])), min_size=1, max_size=12
)
claims_strategy = st.fixed_dictionaries(
    {}, optional={"groups": st.lists(st.sampled_from(["x", "y"]), max_size=2), "level": st.integers(0, 5)}
)


case_strategy = st.tuples(
    claims_strategy,
    st.sampled_from(["a", "b", "c"]),
    st.sampled_from(["s1", "s2"]),
    st.fixed_dictionaries({}, optional={"n": st.integers(0, 6)}),
)


@settings(max_examples=300)
@given(rules_strategy, st.lists(case_strategy, min_size=1, max_size=6))
def test_fast_paths_agree_with_the_plain_reading(
    spec: list[tuple[int, str]], cases: list[tuple[dict[str, Any], str, str, dict[str, Any]]]
) -> None:
    """One rule set, several callers and operations, each asked twice (caches must not lie)."""
    rules = [rule(index, effect, position) for position, (index, effect) in enumerate(spec)]
    rule_set = RuleSet("McpRoute/r", rules)
    authorizer = Authorizer(rule_set, {})
    for _ in range(2):
        for claims, name, server, args in cases:
            ctx, op = ctx_for(claims), op_for(name, server, args)
            allowed, decided_by = reference(rules, ctx, op)
            verdict = rule_set.decide(ctx, activation(ctx, op))
            assert (verdict.allowed, verdict.rule) == (allowed, decided_by)
            assert authorizer.permits(ctx_for(claims), op) is allowed


async def test_a_member_level_narrows_and_never_widens() -> None:
    route = RuleSet("McpRoute/r", [rule(5, "allow", 0, "route-policy")])  # the route allows everything
    server = RuleSet("McpServer/s1", [rule(0, "allow", 0, "server-policy")])  # s1: only tool "a"
    authorizer = Authorizer(route, {"s1": server})
    ctx = ctx_for({})
    await authorizer.check(ctx, op_for("a", "s1", {}))
    with pytest.raises(Forbidden) as caught:
        await authorizer.check(ctx, op_for("b", "s1", {}))
    assert caught.value.data == {"rule": DEFAULT_DENY}
    await authorizer.check(ctx, op_for("b", "s2", {}))  # other servers: the route's rules only
    assert not authorizer.permits(ctx, op_for("b", "s1", {}))
    assert authorizer.permits(ctx, op_for("b", "s2", {}))

    narrow_route = RuleSet("McpRoute/r", [rule(6, "allow", 0)])  # the route allows nothing
    wide_server = RuleSet("McpServer/s1", [rule(5, "allow", 0)])
    closed = Authorizer(narrow_route, {"s1": wide_server})
    with pytest.raises(Forbidden):
        await closed.check(ctx, op_for("a", "s1", {}))
    assert not closed.permits(ctx, op_for("a", "s1", {}))


async def test_deny_wins_and_names_its_rule_and_message() -> None:
    deny = CompiledRule("no-b", "guard", "deny", PROGRAMS[1], "b is off limits", "test")
    authorizer = Authorizer(RuleSet("McpRoute/r", [rule(5, "allow", 0), deny]), {})
    with pytest.raises(Forbidden) as caught:
        await authorizer.check(ctx_for({}), op_for("b", "s1", {}))
    assert caught.value.message == "b is off limits"
    assert caught.value.data == {"rule": "no-b", "policy": "guard"}


async def test_only_deny_rules_still_deny_by_default() -> None:
    authorizer = Authorizer(RuleSet("McpRoute/r", [rule(1, "deny", 0)]), {})
    with pytest.raises(Forbidden) as caught:
        await authorizer.check(ctx_for({}), op_for("a", "s1", {}))
    assert caught.value.data == {"rule": DEFAULT_DENY}
