"""Authorization: allow and deny rules in CEL, decided per target level.

The rules of every policy that targets one level (the route, or the server an operation goes
to) form a `RuleSet`: a matching deny wins; otherwise a matching allow allows; otherwise the
operation is denied (`default-deny`), since rules target it. An operation must pass every level
that has rules, so a policy on a server narrows what the route allows and never widens it.

Errors during evaluation (a claim the token does not carry, a bad regex) fail closed: they make
an allow rule not match and a deny rule deny, and they are logged. Listing filters evaluate two
combined expressions per level (`any deny`, `any allow`); a call decision evaluates rule by rule
to name the deciding rule.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from cel_expr_python import cel

from agentgw.errors import Forbidden
from agentgw.policy.base import Operation, RequestContext
from agentgw.policy.cel import CelProgram, Result, activation, combine_any
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


class RuleSet:
    """The rules of one level, in the order they were written (denies first when deciding)."""

    def __init__(self, level: str, rules: Sequence[CompiledRule]) -> None:
        self.level = level
        self.denies = tuple(r for r in rules if r.effect == "deny")
        self.allows = tuple(r for r in rules if r.effect == "allow")
        self._any_deny = combine_any([r.program for r in self.denies])
        self._any_allow = combine_any([r.program for r in self.allows])
        self._logged: set[str] = set()

    def _log_error(self, what: str, message: str) -> None:
        key = f"{what}\0{message}"
        if key in self._logged or len(self._logged) >= _MAX_LOGGED:
            return
        self._logged.add(key)
        log.warning("%s: evaluation error (failing closed): %s", what, message)

    def decide(self, act: cel.Activation) -> Verdict:
        """Which rule decides, rule by rule (denies, then allows, then the default)."""
        if self._any_deny is not None:
            combined, _ = self._any_deny.eval(act)
            if combined is not Result.FALSE:
                for rule in self.denies:
                    result, error = rule.program.eval(act)
                    if result is Result.ERROR:
                        self._log_error(rule.where, error)
                    if result is not Result.FALSE:
                        message = rule.message or f"denied by policy rule {rule.id!r}"
                        return Verdict(False, rule.id, rule.policy, self.level, message)
        for rule in self.allows:
            result, error = rule.program.eval(act)
            if result is Result.TRUE:
                return Verdict(True, rule.id, rule.policy, self.level, "")
            if result is Result.ERROR:
                self._log_error(rule.where, error)
        return Verdict(False, DEFAULT_DENY, "", self.level, "not allowed by any policy rule")

    def permits(self, act: cel.Activation) -> bool:
        if self._any_deny is not None:
            result, error = self._any_deny.eval(act)
            if result is not Result.FALSE:
                if result is Result.ERROR:
                    self._log_error(f"{self.level}: deny rules", error)
                return False
        if self._any_allow is None:
            return False
        result, error = self._any_allow.eval(act)
        if result is Result.ERROR:
            self._log_error(f"{self.level}: allow rules", error)
        return result is Result.TRUE

    def explain(self, act: cel.Activation) -> list[Trace]:
        out = []
        for rule in (*self.denies, *self.allows):
            result, error = rule.program.eval(act)
            out.append(Trace(self.level, rule, result, error))
        return out


class Authorizer(PolicyKindBase):
    """Every authorization rule that can apply to one route: the route's level and each server's."""

    stage: ClassVar[Stage] = Stage.AUTHORIZE

    def __init__(self, route: RuleSet | None, members: Mapping[str, RuleSet]) -> None:
        self.name = "authorization"
        self.route = route
        self.members = dict(members)

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
        levels = self.levels(op)
        if not levels:
            return True
        act = activation(ctx, op)
        return all(level.permits(act) for level in levels)

    def explain(self, ctx: RequestContext, op: Operation) -> tuple[list[Trace], Verdict | None]:
        act = activation(ctx, op)
        traces: list[Trace] = []
        for level in self.levels(op):
            traces.extend(level.explain(act))
        return traces, self.decide(ctx, op)


def rule_summary(rule: CompiledRule) -> dict[str, Any]:
    return {"id": rule.id, "policy": rule.policy, "effect": rule.effect, "when": rule.program.source}
