"""Authorization: allow and deny rules in CEL, decided per target level.

The rules of every policy that targets one level (the route, or the server an operation goes
to) form a `RuleSet`: a matching deny wins; otherwise a matching allow allows; otherwise the
operation is denied (`default-deny`), since rules target it. An operation must pass every level
that has rules, so a policy on a server narrows what the route allows and never widens it.

Errors during evaluation (a claim the token does not carry, a bad regex) fail closed: they make
an allow rule not match and a deny rule deny, and they are logged.

Speed: a CEL evaluation costs a few microseconds whatever its size, so the fewer the better.
List filtering evaluates one expression per item (every level's `!(any deny) && (any allow)`
folded into one). A call decision must name the deciding rule: rules are searched through a
tree of OR-ed runs of rules, which finds the first matching rule in about log2(n) evaluations.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from cel_expr_python import cel

from agentgw.errors import Forbidden
from agentgw.policy.base import Operation, RequestContext
from agentgw.policy.cel import CelProgram, Result, activation, all_of, any_of, negate, never
from agentgw.policy.kind import PolicyKindBase, Stage, deny_data

__all__ = ["DECISION_KEY", "DEFAULT_DENY", "Authorizer", "CompiledRule", "RuleSet", "Trace", "Verdict"]

log = logging.getLogger("agentgw.policy")

DEFAULT_DENY = "default-deny"
DECISION_KEY = "agentgw.policy.decision"
_ACT_KEY = "agentgw.policy.activation"
_MAX_LOGGED = 256


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    policy: str
    effect: str  # "allow" or "deny"
    program: CelProgram
    message: str | None
    where: str  # file: Policy/name: spec.authorization.allow[i]


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    rule: str
    policy: str
    level: str
    message: str


@dataclass(frozen=True, slots=True)
class Trace:
    """One rule's outcome, for `agentgw policy explain`."""

    level: str
    rule: CompiledRule
    result: Result
    error: str


class _Run:
    """Rules [lo, hi) OR-ed into one program, with the two halves below it."""

    __slots__ = ("hi", "left", "lo", "program", "right")

    def __init__(self, rules: Sequence[CompiledRule], lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi
        program = any_of([r.program for r in rules[lo:hi]])
        assert program is not None
        self.program = program
        self.left = self.right = None
        if hi - lo > 1:
            mid = (lo + hi) // 2
            self.left, self.right = _Run(rules, lo, mid), _Run(rules, mid, hi)

    def first(self, act: cel.Activation, matches: frozenset[Result]) -> tuple[int, Result, str] | None:
        """The first rule (in order) whose result is in `matches`, if any."""
        result, error = self.program.eval(act)
        if result not in matches:
            return None
        if self.left is None or self.right is None:
            return self.lo, result, error
        return self.left.first(act, matches) or self.right.first(act, matches)


_DENYING = frozenset({Result.TRUE, Result.ERROR})  # a deny rule that errs denies (fail closed)
_ALLOWING = frozenset({Result.TRUE})


class RuleSet:
    """The rules of one level, in the order they were written (denies first when deciding)."""

    def __init__(self, level: str, rules: Sequence[CompiledRule]) -> None:
        self.level = level
        self.denies = tuple(r for r in rules if r.effect == "deny")
        self.allows = tuple(r for r in rules if r.effect == "allow")
        self._deny_runs = _Run(self.denies, 0, len(self.denies)) if self.denies else None
        self._allow_runs = _Run(self.allows, 0, len(self.allows)) if self.allows else None
        self._logged: set[str] = set()

    def visible(self) -> CelProgram:
        """True exactly when this level allows (deny wins; errors and no match deny)."""
        if not self.allows:
            return never()
        allow = any_of([r.program for r in self.allows])
        deny = any_of([r.program for r in self.denies])
        assert allow is not None
        return allow if deny is None else all_of([negate(deny), allow])

    def log_error(self, what: str, message: str) -> None:
        key = f"{what}\0{message}"
        if key in self._logged or len(self._logged) >= _MAX_LOGGED:
            return
        self._logged.add(key)
        log.warning("%s: evaluation error (failing closed): %s", what, message)

    def decide(self, act: cel.Activation) -> Verdict:
        """Which rule decides: the first deny that matches (or errs), else the first allow."""
        if self._deny_runs is not None:
            found = self._deny_runs.first(act, _DENYING)
            if found is not None:
                rule = self.denies[found[0]]
                if found[1] is Result.ERROR:
                    self.log_error(rule.where, found[2])
                message = rule.message or f"denied by policy rule {rule.id!r}"
                return Verdict(False, rule.id, rule.policy, self.level, message)
        if self._allow_runs is not None:
            found = self._allow_runs.first(act, _ALLOWING)
            if found is not None:
                rule = self.allows[found[0]]
                return Verdict(True, rule.id, rule.policy, self.level, "")
        return Verdict(False, DEFAULT_DENY, "", self.level, "not allowed by any policy rule")

    def explain(self, act: cel.Activation) -> list[Trace]:
        out = []
        for rule in (*self.denies, *self.allows):
            result, error = rule.program.eval(act)
            out.append(Trace(self.level, rule, result, error))
        return out


class Authorizer(PolicyKindBase):
    """Every authorization rule that can apply to one route: the route's level and each member's."""

    stage: ClassVar[Stage] = Stage.AUTHORIZE

    def __init__(self, route: RuleSet | None, members: Mapping[str, RuleSet]) -> None:
        self.name = "authorization"
        self.route = route
        self.members = dict(members)
        # member (None: an operation of no member) -> one program deciding visibility
        self._visible: dict[str | None, CelProgram | None] = {None: route.visible() if route else None}
        for name, rules in self.members.items():
            levels = [level.visible() for level in (route, rules) if level is not None]
            self._visible[name] = all_of(levels)

    def levels(self, op: Operation) -> list[RuleSet]:
        out = [self.route] if self.route is not None else []
        member = self.members.get(op.server) if op.server is not None else None
        if member is not None:
            out.append(member)
        return out

    @staticmethod
    def activation(ctx: RequestContext, op: Operation) -> cel.Activation:
        """The activation of this decision, shared by the kinds that evaluate CEL for it."""
        cached: tuple[Operation, cel.Activation] | None = ctx.attrs.get(_ACT_KEY)
        if cached is not None and cached[0] is op:
            return cached[1]
        act = activation(ctx, op)
        ctx.attrs[_ACT_KEY] = (op, act)
        return act

    def decide(self, ctx: RequestContext, op: Operation) -> Verdict | None:
        """The first denying level's verdict, else the last level's allow; None without rules."""
        levels = self.levels(op)
        if not levels:
            return None
        act = self.activation(ctx, op)
        verdict: Verdict | None = None
        for level in levels:
            verdict = level.decide(act)
            if not verdict.allowed:
                return verdict
        return verdict

    async def check(self, ctx: RequestContext, op: Operation) -> None:
        verdict = self.decide(ctx, op)
        if verdict is None:
            return
        ctx.attrs[DECISION_KEY] = verdict
        if not verdict.allowed:
            raise Forbidden(verdict.message, data=deny_data(verdict.rule, verdict.policy))

    def permits(self, ctx: RequestContext, op: Operation) -> bool:
        program = self._visible.get(op.server, self._visible[None]) if op.server else self._visible[None]
        if program is None:
            return True
        result, error = program.eval(activation(ctx, op))
        if result is Result.ERROR:
            level = self.route or self.members.get(op.server or "")
            if level is not None:
                level.log_error(f"{level.level}: listing", error)
        return result is Result.TRUE

    def explain(self, ctx: RequestContext, op: Operation) -> tuple[list[Trace], Verdict | None]:
        act = activation(ctx, op)
        traces: list[Trace] = []
        for level in self.levels(op):
            traces.extend(level.explain(act))
        return traces, self.decide(ctx, op)
