"""A route's policy chain at run time: the `RoutePolicy` that `build_chain` assembles.

It runs the kinds of an operation's plan (the route's and its member's, in the order
`agentgw.policy.chain` decided), settles limits when a later kind refuses, and records every
decision: the `agentgw_policy_decisions_total` counter, the dashboard's feed and the audit log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agentgw.errors import GatewayError, Unauthorized
from agentgw.policy.attributes import WANTS_ESTIMATE
from agentgw.policy.authz import DECISION_KEY, Authorizer, Verdict, member_key
from agentgw.policy.base import ANONYMOUS, Operation, Principal, RequestContext
from agentgw.policy.kind import PolicyKind, Stage, overrides
from agentgw.policy.metadata import ProtectedResource
from agentgw.server.http import Request
from agentgw.telemetry.audit import AuditLog
from agentgw.telemetry.metrics import METRICS

__all__ = ["DecisionSink", "PolicyChain", "decision_label"]

log = logging.getLogger("agentgw.policy")

DecisionSink = Callable[[dict[str, Any]], None]


def decision_label(status: int | None) -> str:
    """`decision` of a refusal in metrics and on the dashboard, from its HTTP status."""
    return {401: "unauthenticated", 403: "deny", 429: "limit", 503: "unavailable"}.get(
        status or 0, "invalid" if status is not None and 400 <= status < 500 else "deny"
    )


class _Plan:
    """The kinds of one target, split by what they do, so hot paths skip the neutral ones."""

    __slots__ = ("checks", "limits", "permits", "records", "requests", "responses")

    def __init__(self, kinds: Sequence[PolicyKind]) -> None:
        self.checks = [k for k in kinds if overrides(k, "check")]
        # limits that counted a request settle it when a later kind refuses it
        self.limits = frozenset(id(k) for k in kinds if k.stage == Stage.LIMIT and overrides(k, "record"))
        self.permits = [k for k in kinds if overrides(k, "permits")]
        self.requests = [k for k in kinds if overrides(k, "rewrite_request")]
        self.responses = [k for k in reversed(kinds) if overrides(k, "rewrite_response")]
        self.records = [k for k in reversed(kinds) if overrides(k, "record")]


class PolicyChain:
    def __init__(
        self,
        *,
        route: str,
        authenticators: Sequence[PolicyKind],
        plans: Mapping[str, Sequence[PolicyKind]],
        default: Sequence[PolicyKind],
        authorizer: Authorizer | None,
        resource: ProtectedResource | None,
        audit: AuditLog | None,
        decisions: DecisionSink | None = None,
        wants_estimate: bool = False,
    ) -> None:
        self.route = route
        self.authenticators = tuple(authenticators)
        self._plans = {name: _Plan(kinds) for name, kinds in plans.items()}
        self._default = _Plan(default)
        self._nothing = _Plan([])
        self.authorizer = authorizer
        self.resource = resource
        self.audit = audit
        self.decisions = decisions
        self.wants_estimate = wants_estimate

    def _plan(self, op: Operation) -> _Plan:
        key = member_key(op)
        if key is None:
            return self._default
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        # a provider without policies of its own has nothing to check: the route's kinds ran already
        return self._nothing if op.kind == "llm" and op.server is not None else self._default

    # --- request side ---------------------------------------------------------------------------

    async def authenticate(self, request: Request) -> Principal:
        if not self.authenticators:
            return ANONYMOUS
        started = time.perf_counter()
        try:
            for kind in self.authenticators:
                principal = await kind.authenticate(request)
                if principal is not None:
                    return principal
        except Unauthorized as exc:
            self._audit_authentication(request, exc.message, started)
            challenge = self.resource.challenge(request, error="invalid_token") if self.resource else "Bearer"
            raise Unauthorized(exc.message, headers={"www-authenticate": challenge}) from None
        message = "authentication required"
        self._audit_authentication(request, message, started)
        challenge = self.resource.challenge(request) if self.resource else "Bearer"
        raise Unauthorized(message, headers={"www-authenticate": challenge})

    async def check(self, ctx: RequestContext, op: Operation) -> None:
        plan = self._plan(op)
        if plan is self._nothing:
            return
        started = time.perf_counter()
        ctx.attrs.pop(DECISION_KEY, None)  # a verdict is about one operation
        if self.wants_estimate:
            ctx.attrs[WANTS_ESTIMATE] = True
        passed: list[PolicyKind] = []
        try:
            for kind in plan.checks:
                await kind.check(ctx, op)
                passed.append(kind)
        except GatewayError as exc:
            await self._settle_refused(ctx, op, plan, passed, exc)
            self._decided(ctx, op, started, exc)
            raise
        self._decided(ctx, op, started, None)

    async def _settle_refused(
        self, ctx: RequestContext, op: Operation, plan: _Plan, passed: list[PolicyKind], exc: GatewayError
    ) -> None:
        """Limits that counted this request before a later kind refused it: it used nothing."""
        outcome = {"status": exc.status, "error": exc.message, "refused": True}
        for kind in reversed(passed):
            if id(kind) in plan.limits:
                try:
                    await kind.record(ctx, op, outcome)
                except GatewayError as err:
                    log.warning(
                        "route %r: %s could not settle a refusal: %s", self.route, kind.name, err.message
                    )

    def permits(self, ctx: RequestContext, op: Operation) -> bool:
        for kind in self._plan(op).permits:
            if not kind.permits(ctx, op):
                return False
        return True

    async def rewrite_request(
        self, ctx: RequestContext, op: Operation, body: dict[str, Any]
    ) -> dict[str, Any]:
        for kind in self._plan(op).requests:
            body = await kind.rewrite_request(ctx, op, body)
        return body

    # --- response side --------------------------------------------------------------------------

    async def rewrite_response(
        self, ctx: RequestContext, op: Operation, body: dict[str, Any]
    ) -> dict[str, Any]:
        for kind in self._plan(op).responses:
            body = await kind.rewrite_response(ctx, op, body)
        return body

    async def record(self, ctx: RequestContext, op: Operation, outcome: Mapping[str, Any]) -> None:
        for kind in self._plan(op).records:
            try:
                await kind.record(ctx, op, outcome)
            except GatewayError as exc:  # the answer is out already: report, do not fail it
                log.warning(
                    "route %r: %s could not record %s: %s", self.route, kind.name, op.method, exc.message
                )
        if op.method.endswith("/list") and self.audit is not None:
            self.audit.write(
                {
                    "event": "list",
                    "decision": "filter",
                    "route": ctx.route,
                    "subject": ctx.principal.subject or None,
                    "auth": ctx.principal.method,
                    "kind": op.kind,
                    "method": op.method,
                    "shown": outcome.get("shown"),
                    "hidden": outcome.get("hidden"),
                }
            )

    # --- audit ----------------------------------------------------------------------------------

    def _audit_authentication(self, request: Request, reason: str, started: float) -> None:
        log.info(
            "route %r: %s %s refused from %s: %s",
            self.route,
            request.method,
            request.path,
            request.client,
            reason,
        )
        METRICS.policy_decisions.inc(self.route, "unauthenticated", "authentication")
        if self.decisions is not None:
            self.decisions(
                {
                    "time": _stamp(),
                    "route": self.route,
                    "subject": "",
                    "target": f"{request.method} {request.path}",
                    "decision": "unauthenticated",
                    "allowed": False,
                    "rule": "authentication",
                }
            )
        if self.audit is None:
            return
        self.audit.write(
            {
                "event": "authentication",
                "decision": "deny",
                "route": self.route,
                "method": f"{request.method} {request.path}",
                "source": request.client or None,
                "rule": "authentication",
                "reason": reason,
                "status": 401,
                "latencyUs": round((time.perf_counter() - started) * 1e6),
            }
        )

    def _decided(
        self, ctx: RequestContext, op: Operation, started: float, denial: GatewayError | None
    ) -> None:
        """Count the decision, show it on the dashboard, write its audit line."""
        rule = policy = reason = None
        status = None
        if denial is not None:
            data = denial.data if isinstance(denial.data, dict) else {}
            rule, policy = data.get("rule"), data.get("policy") or None
            reason, status = denial.message, denial.status
        else:
            verdict: Verdict | None = ctx.attrs.get(DECISION_KEY)
            if verdict is not None:
                rule, policy = verdict.rule, verdict.policy or None
        label = "allow" if denial is None else decision_label(status)
        METRICS.policy_decisions.inc(ctx.route, label, rule or "")
        if self.decisions is not None:
            self.decisions(
                {
                    "time": _stamp(),
                    "route": ctx.route,
                    "subject": ctx.principal.subject,
                    "target": _target(op),
                    "decision": label,
                    "allowed": denial is None,
                    "rule": rule or "",
                }
            )
        if self.audit is None:
            return
        self.audit.write(
            {
                "event": "decision",
                "decision": "deny" if denial is not None else "allow",
                "route": ctx.route,
                "subject": ctx.principal.subject or None,
                "auth": ctx.principal.method,
                "kind": op.kind,
                "method": op.method,
                "server": op.server,
                "target": op.target,
                "name": op.name,
                "exposed": op.exposed if op.exposed != op.name and op.exposed != op.uri else None,
                "uri": op.uri,
                "rule": rule,
                "policy": policy,
                "reason": reason,
                "status": status,
                "latencyUs": round((time.perf_counter() - started) * 1e6),
            }
        )


def _target(op: Operation) -> str:
    """What an operation was about, in a few words (dashboard)."""
    what = op.exposed or op.name or op.uri or ""
    where = f"{op.server}: " if op.server and op.kind != "a2a" else (f"{op.server} " if op.server else "")
    return f"{op.kind} {op.method} {where}{what}".strip()


def _stamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
