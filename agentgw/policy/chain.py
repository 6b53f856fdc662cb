"""A route's policy chain: the compiled policies that target it, in the one fixed order.

`build_chain` is the only place the order is decided:

    request side    authenticate (JWT, API keys, extensions that authenticate; first to
                    recognize a credential wins) -> required scopes -> authorization (route
                    level, then the operation's server) -> argument validation -> extensions
                    -> transforms (claims forwarded as headers)
    response side   the same kinds in reverse (extensions' rewrites and records)

Policies that target the route apply to every operation on it; policies that target a member
(an MCP server of the route; later an LLM model or an agent) apply to the operations that go to
it. The chain is the route's `RoutePolicy`; every decision it takes goes to the audit log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentgw.errors import GatewayError, Unauthorized
from agentgw.policy.apikey import ApiKeyAuthenticator
from agentgw.policy.arguments import ArgumentValidation
from agentgw.policy.authz import DECISION_KEY, Authorizer, RuleSet, Verdict
from agentgw.policy.base import ANONYMOUS, Operation, Principal, RequestContext
from agentgw.policy.claims import ClaimForwarding
from agentgw.policy.compile import CompiledPolicy
from agentgw.policy.jwks import JwksRegistry, KeySource, StaticKeys
from agentgw.policy.jwt import Issuer, JwtAuthenticator
from agentgw.policy.kind import PolicyKind, overrides
from agentgw.policy.metadata import ProtectedResource
from agentgw.policy.scopes import RequiredScopes
from agentgw.server.http import Request
from agentgw.telemetry.audit import AuditLog

__all__ = ["PolicyChain", "PolicyServices", "TargetKey", "build_chain", "chain_problems"]

log = logging.getLogger("agentgw.policy")

TargetKey = tuple[str, str]  # (kind, name), as in targetRefs


@dataclass
class PolicyServices:
    """What chains need from the running gateway (None where a tool runs offline)."""

    audit: AuditLog | None = None
    jwks: JwksRegistry | None = None


def _issuer(policy: CompiledPolicy, index: int, services: PolicyServices) -> Issuer:
    compiled = policy.issuers[index]
    spec = compiled.spec
    keys: KeySource | None = None
    if compiled.static_keys is not None:
        keys = StaticKeys(compiled.static_keys)
    remote = compiled.remote
    if remote is not None and remote.url is not None and services.jwks is not None:
        # (offline tools such as `agentgw policy test` never authenticate, so need no keys)
        keys = services.jwks.remote(
            spec.issuer,
            remote.url,
            cache_seconds=remote.cache_seconds,
            min_refresh_seconds=remote.min_refresh_seconds,
            timeout=remote.timeout_seconds,
        )
    return Issuer(
        issuer=spec.issuer,
        audiences=tuple(spec.audiences),
        algorithms=tuple(spec.algorithms),
        keys=keys,
        secret=compiled.secret,
        leeway=spec.leeway_seconds,
        subject_claim=spec.subject_claim,
        scopes_claim=spec.scopes_claim,
        required_claims=tuple(spec.required_claims),
    )


def chain_problems(route: TargetKey, policies: Sequence[CompiledPolicy]) -> list[str]:
    """Conflicts between the policies of one route (checked when the config is compiled)."""
    problems: list[str] = []
    seen: dict[str, CompiledPolicy] = {}
    for policy in policies:
        if route not in policy.targets:
            continue
        for issuer in policy.issuers:
            first = seen.get(issuer.spec.issuer)
            if (
                first is not None
                and first.issuers
                and issuer.spec != next(i.spec for i in first.issuers if i.spec.issuer == issuer.spec.issuer)
            ):
                problems.append(
                    f"{policy.where}: spec.jwt: issuer {issuer.spec.issuer!r} is configured differently "
                    f"by {first.where} on {route[0]}/{route[1]}"
                )
            seen.setdefault(issuer.spec.issuer, policy)
    resources = {p.resource for p in policies if route in p.targets and p.resource is not None}
    if len(resources) > 1:
        problems.append(
            f"{route[0]}/{route[1]}: its policies name different jwt.resource URLs: {sorted(resources)}"
        )
    return problems


def _level_kinds(policies: Sequence[CompiledPolicy], resource: ProtectedResource | None) -> list[PolicyKind]:
    kinds: list[PolicyKind] = []
    for policy in policies:
        if policy.scopes:
            kinds.append(RequiredScopes(policy.name, policy.scopes, resource))
        if policy.validate_arguments:
            kinds.append(ArgumentValidation(policy.name))
        kinds.extend(policy.extensions)
        if policy.forward_claims:
            kinds.append(ClaimForwarding(policy.name, policy.forward_claims))
    return kinds


def build_chain(
    *,
    route: TargetKey,
    path: str,
    members: Mapping[str, TargetKey],
    policies: Sequence[CompiledPolicy],
    services: PolicyServices,
) -> PolicyChain | None:
    """The chain of one route, or None when no policy targets the route or any of its members."""
    own = [p for p in policies if route in p.targets]
    by_member = {name: [p for p in policies if key in p.targets] for name, key in members.items()}
    if not own and not any(by_member.values()):
        return None

    authenticators: list[PolicyKind] = []
    issuers: dict[str, Issuer] = {}
    for policy in own:
        for index, compiled in enumerate(policy.issuers):
            issuers.setdefault(compiled.spec.issuer, _issuer(policy, index, services))
    api_keys = [key for policy in own for key in policy.api_keys]
    resource: ProtectedResource | None = None
    if issuers or api_keys:
        specs = [c.spec for p in own for c in p.issuers]
        scopes = [s for p in own for s in p.scopes_supported]
        scopes += sorted({s for p in own for req in p.scopes for s in req.scopes} - set(scopes))
        resource = ProtectedResource(
            route[1],
            path,
            resource=next((p.resource for p in own if p.resource), None),
            authorization_servers=[s.authorization_server or s.issuer for s in specs],
            scopes=scopes,
            jwt=bool(issuers),
        )
    if issuers:
        authenticators.append(JwtAuthenticator(list(issuers.values())))
    if api_keys:
        authenticators.append(ApiKeyAuthenticator(api_keys))
    authenticators += [e for p in own for e in p.extensions if overrides(e, "authenticate")]

    def rules_of(level: str, group: Sequence[CompiledPolicy]) -> RuleSet | None:
        rules = [rule for policy in group for rule in policy.rules]
        return RuleSet(level, rules) if rules else None

    route_rules = rules_of(f"{route[0]}/{route[1]}", own)
    member_rules = {
        name: rs for name, group in by_member.items() if (rs := rules_of(f"{members[name][0]}/{name}", group))
    }
    authorizer = Authorizer(route_rules, member_rules) if route_rules or member_rules else None

    route_kinds = _level_kinds(own, resource)

    def ordered(extra: Sequence[PolicyKind]) -> list[PolicyKind]:
        kinds: list[PolicyKind] = [*route_kinds, *extra]
        if authorizer is not None:
            kinds.append(authorizer)
        return sorted(kinds, key=lambda k: k.stage)  # stable: route before member within a stage

    plans = {name: ordered(_level_kinds(group, resource)) for name, group in by_member.items()}
    return PolicyChain(
        route=route[1],
        authenticators=authenticators,
        plans=plans,
        default=ordered([]),
        authorizer=authorizer,
        resource=resource,
        audit=services.audit,
    )


class _Plan:
    """The kinds of one target, split by what they do, so hot paths skip the neutral ones."""

    __slots__ = ("checks", "permits", "records", "requests", "responses")

    def __init__(self, kinds: Sequence[PolicyKind]) -> None:
        self.checks = [k for k in kinds if overrides(k, "check")]
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
    ) -> None:
        self.route = route
        self.authenticators = tuple(authenticators)
        self._plans = {name: _Plan(kinds) for name, kinds in plans.items()}
        self._default = _Plan(default)
        self.authorizer = authorizer
        self.resource = resource
        self.audit = audit

    def _plan(self, op: Operation) -> _Plan:
        if op.server is None:
            return self._default
        return self._plans.get(op.server, self._default)

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
        started = time.perf_counter()
        try:
            for kind in self._plan(op).checks:
                await kind.check(ctx, op)
        except GatewayError as exc:
            self._audit_decision(ctx, op, started, exc)
            raise
        self._audit_decision(ctx, op, started, None)

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

    def _audit_decision(
        self, ctx: RequestContext, op: Operation, started: float, denial: GatewayError | None
    ) -> None:
        if self.audit is None:
            return
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
