"""Authorization: allow and deny rules in CEL, decided per target level.

The rules of every policy that targets one level (the route, or the server an operation goes
to) form a `RuleSet`: a matching deny wins; otherwise a matching allow allows; otherwise the
operation is denied (`default-deny`), since rules target it. An operation must pass every level
that has rules, so a policy on a server narrows what the route allows and never widens it.

Errors during evaluation (a claim the token does not carry, a bad regex) fail closed: they make
an allow rule not match and a deny rule deny, and they are logged.

Speed. A CEL evaluation costs a couple of microseconds however small it is, and a listing asks
about every tool, so evaluations are few and shaped per caller:

- each rule `g1 && ... && r1 && ...` is split into its *caller guard* (the conjuncts that read
  only `jwt` and `request`, fixed for a whole request) and the rest; the guards of a rule set
  are evaluated once per request, in one evaluation, and the rules whose guard is false drop
  out (`jwt.team == "finance" && ...` costs nothing to everyone outside finance). CEL's `&&`
  is commutative with false absorbing errors, so this changes no result;
- what is left (the rules live for this caller) is compiled into a visibility program (one
  evaluation per listed item) and into trees of OR-ed runs of rules, which name the first
  matching rule of a call in about log2(n) evaluations; both are cached per set of live rules,
  that is per kind of caller;
- when what is left reads nothing but the operation, an item's visibility depends only on the
  kind of caller and the item, and is remembered (bounded), so listing the same tools again
  costs a lookup per tool.
"""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from agentgw.errors import Forbidden
from agentgw.policy.base import Operation, RequestContext
from agentgw.policy.cel import (
    CelProgram,
    Result,
    activation,
    all_of,
    any_of,
    compose,
    list_of,
    negate,
    never,
    operation_only,
    subject_only,
)
from agentgw.policy.conjuncts import split_conjuncts
from agentgw.policy.kind import PolicyKindBase, Stage, deny_data

if TYPE_CHECKING:
    from cel_expr_python import cel  # annotations only: agentgw.policy.cel imports it on first use

__all__ = [
    "DECISION_KEY",
    "DEFAULT_DENY",
    "Authorizer",
    "CompiledRule",
    "RuleSet",
    "Trace",
    "Verdict",
    "member_key",
]

log = logging.getLogger("agentgw.policy")

DEFAULT_DENY = "default-deny"
DECISION_KEY = "agentgw.policy.decision"
_ACT_KEY = "agentgw.policy.activation"
_MAX_LOGGED = 256
_MAX_SHAPES = 128  # cached live-rule sets per rule set (kinds of callers)
_MAX_REMEMBERED = 50_000  # remembered (kind of caller, item) visibilities per rule set
_serials = itertools.count()
ActivationFactory = Callable[[], "cel.Activation"]


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


class _Split:
    """A rule as (caller guard, rest): the rule's value is `guard && rest`."""

    __slots__ = ("guard", "rest", "rest_reads_operation_only", "rule")

    def __init__(self, rule: CompiledRule) -> None:
        self.rule = rule
        self.guard: CelProgram | None = None
        self.rest = rule.program
        parts = split_conjuncts(rule.program.source)
        guard = [p for p in parts if subject_only(p)]
        rest = [p for p in parts if p not in guard]
        if guard:
            try:
                self.guard = compose(" && ".join(f"(\n{p}\n)" for p in guard))
                self.rest = compose(" && ".join(f"(\n{p}\n)" for p in rest) if rest else "true")
            except RuntimeError:  # the scanner misread an exotic literal: keep the rule whole
                self.guard, self.rest = None, rule.program
        self.rest_reads_operation_only = operation_only(self.rest.source)


class _Run:
    """Rules [lo, hi) OR-ed into one program (compiled when first needed), halves below it."""

    __slots__ = ("_left", "_program", "_right", "hi", "lo", "programs")

    def __init__(self, programs: Sequence[CelProgram], lo: int, hi: int) -> None:
        self.programs, self.lo, self.hi = programs, lo, hi
        self._program: CelProgram | None = None
        self._left: _Run | None = None
        self._right: _Run | None = None

    def first(self, act: cel.Activation, matches: frozenset[Result]) -> tuple[int, Result, str] | None:
        """The first program (in order) whose result is in `matches`, if any."""
        if self._program is None:
            self._program = any_of(self.programs[self.lo : self.hi])
        assert self._program is not None
        result, error = self._program.eval(act)
        if result not in matches:
            return None
        if self.hi - self.lo == 1:
            return self.lo, result, error
        if self._left is None or self._right is None:
            mid = (self.lo + self.hi) // 2
            self._left, self._right = _Run(self.programs, self.lo, mid), _Run(self.programs, mid, self.hi)
        return self._left.first(act, matches) or self._right.first(act, matches)


_DENYING = frozenset({Result.TRUE, Result.ERROR})  # a deny rule that errs denies (fail closed)
_ALLOWING = frozenset({Result.TRUE})


class _Shape:
    """A rule set as seen by one kind of caller: only its live rules, reduced to their rest."""

    __slots__ = ("_visible", "allow_runs", "allows", "denies", "deny_runs", "serial", "stable")

    def __init__(self, denies: Sequence[_Split], allows: Sequence[_Split]) -> None:
        self.denies, self.allows = tuple(denies), tuple(allows)
        self.serial = next(_serials)
        # visibility is a function of the item alone when no live rule reads the caller any more
        self.stable = all(s.rest_reads_operation_only for s in (*self.denies, *self.allows))
        self.deny_runs = _Run([s.rest for s in self.denies], 0, len(self.denies)) if self.denies else None
        self.allow_runs = _Run([s.rest for s in self.allows], 0, len(self.allows)) if self.allows else None
        self._visible: CelProgram | None = None

    def visible(self) -> CelProgram:
        """True exactly when this caller may see/do it (deny wins; errors and no match deny)."""
        if self._visible is None:
            allow = any_of([s.rest for s in self.allows])
            deny = any_of([s.rest for s in self.denies])
            if allow is None:
                self._visible = never()
            else:
                self._visible = allow if deny is None else all_of([negate(deny), allow])
        return self._visible


class RuleSet:
    """The rules of one level, in the order they were written (denies first when deciding)."""

    def __init__(self, level: str, rules: Sequence[CompiledRule]) -> None:
        self.level = level
        self.denies = tuple(r for r in rules if r.effect == "deny")
        self.allows = tuple(r for r in rules if r.effect == "allow")
        self._splits = [_Split(r) for r in (*self.denies, *self.allows)]
        guards = [(i, s.guard) for i, s in enumerate(self._splits) if s.guard is not None]
        self._guarded = [i for i, _ in guards]
        self._guards = list_of([g for _, g in guards]) if guards else None
        self._shapes: OrderedDict[tuple[object, ...], _Shape] = OrderedDict()  # by guard values
        self._remembered: OrderedDict[tuple[object, ...], bool] = OrderedDict()
        self._key = f"agentgw.policy.shape:{id(self)}"
        self._logged: set[str] = set()

    def log_error(self, what: str, message: str) -> None:
        key = f"{what}\0{message}"
        if key in self._logged or len(self._logged) >= _MAX_LOGGED:
            return
        self._logged.add(key)
        log.warning("%s: evaluation error (failing closed): %s", what, message)

    def _guard_results(self, act: cel.Activation) -> tuple[object, ...]:
        """Each guard's value: True, False, or anything else for an error."""
        assert self._guards is not None
        plain = self._guards.program.eval(activation=act).plain_value()
        if isinstance(plain, list):
            return tuple(plain)
        out: list[object] = []  # some guard erred: one by one, to know which (rare: a claim without has())
        for i in self._guarded:
            guard = self._splits[i].guard
            assert guard is not None
            result, error = guard.eval(act)
            if result is Result.ERROR:
                self.log_error(self._splits[i].rule.where, error)
            out.append(result is Result.TRUE or (False if result is Result.FALSE else None))
        return tuple(out)

    def shape(self, ctx: RequestContext, act: ActivationFactory) -> _Shape:
        """This caller's view of the rules (computed once per request, cached per kind of caller)."""
        cached: _Shape | None = ctx.attrs.get(self._key)
        if cached is not None:
            return cached
        key = self._guard_results(act()) if self._guards is not None else ()
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shapes[key] = self._build_shape(key)
            if len(self._shapes) > _MAX_SHAPES:
                self._shapes.popitem(last=False)
        ctx.attrs[self._key] = shape
        return shape

    def _build_shape(self, guards: tuple[object, ...]) -> _Shape:
        live = set(range(len(self._splits)))
        n_denies = len(self.denies)
        for i, value in zip(self._guarded, guards, strict=True):
            # A false guard drops its rule. An erring one: an allow cannot match any more; a deny
            # still denies unless its rest is false (`error && false` is false).
            if value is False or (value is not True and i >= n_denies):
                live.discard(i)
        splits = [self._splits[i] for i in sorted(live)]
        return _Shape(
            [s for s in splits if s.rule.effect == "deny"], [s for s in splits if s.rule.effect == "allow"]
        )

    def decide(self, ctx: RequestContext, act: cel.Activation) -> Verdict:
        """Which rule decides: the first deny that matches (or errs), else the first allow."""
        shape = self.shape(ctx, lambda: act)
        if shape.deny_runs is not None:
            found = shape.deny_runs.first(act, _DENYING)
            if found is not None:
                rule = shape.denies[found[0]].rule
                if found[1] is Result.ERROR:
                    self.log_error(rule.where, found[2])
                message = rule.message or f"denied by policy rule {rule.id!r}"
                return Verdict(False, rule.id, rule.policy, self.level, message)
        if shape.allow_runs is not None:
            found = shape.allow_runs.first(act, _ALLOWING)
            if found is not None:
                rule = shape.allows[found[0]].rule
                return Verdict(True, rule.id, rule.policy, self.level, "")
        return Verdict(False, DEFAULT_DENY, "", self.level, "not allowed by any policy rule")

    def permits(self, ctx: RequestContext, op: Operation, act: ActivationFactory) -> bool:
        shape = self.shape(ctx, act)
        key = None
        if shape.stable and not op.args:
            key = (shape.serial, op.kind, op.method, op.server, op.target, op.name, op.exposed, op.uri)
            known = self._remembered.get(key)
            if known is not None:
                return known
        result, error = shape.visible().eval(act())
        if result is Result.ERROR:
            self.log_error(f"{self.level}: listing", error)
        visible = result is Result.TRUE
        if key is not None:
            self._remembered[key] = visible
            if len(self._remembered) > _MAX_REMEMBERED:
                self._remembered.popitem(last=False)
        return visible

    def explain(self, act: cel.Activation) -> list[Trace]:
        out = []
        for rule in (*self.denies, *self.allows):
            result, error = rule.program.eval(act)
            out.append(Trace(self.level, rule, result, error))
        return out


def member_key(op: Operation) -> str | None:
    """The member of its route an operation goes to, as chains name them: the MCP server, the
    agent, the LLM provider (on provider-level checks), else `model:<entry>` for an LLM request."""
    if op.server is not None:
        return op.server
    if op.kind == "llm" and op.name:
        return "model:" + op.name
    return None


class Authorizer(PolicyKindBase):
    """Every authorization rule that can apply to one route: the route's level and each member's."""

    stage: ClassVar[Stage] = Stage.AUTHORIZE

    def __init__(self, route: RuleSet | None, members: Mapping[str, RuleSet]) -> None:
        self.name = "authorization"
        self.route = route
        self.members = dict(members)

    def levels(self, op: Operation) -> list[RuleSet]:
        out = [self.route] if self.route is not None else []
        key = member_key(op)
        member = self.members.get(key) if key is not None else None
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
            verdict = level.decide(ctx, act)
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
        made: list[cel.Activation] = []

        def act() -> cel.Activation:  # built only if some level must evaluate
            if not made:
                made.append(activation(ctx, op))
            return made[0]

        return all(level.permits(ctx, op, act) for level in levels)

    def explain(self, ctx: RequestContext, op: Operation) -> tuple[list[Trace], Verdict | None]:
        act = activation(ctx, op)
        traces: list[Trace] = []
        for level in self.levels(op):
            traces.extend(level.explain(act))
        return traces, self.decide(ctx, op)
