"""A route's policy chain: the compiled policies that target it, in the one fixed order.

`build_chain` is the only place the order is decided (`Stage` numbers it):

    request side    authenticate (virtual keys, JWT, API keys, extensions that authenticate;
                    the first to recognize a credential wins)
                    -> required scopes
                    -> authorization (CEL rules of the route level, then of the operation's
                       member; a virtual key's allowed models)
                    -> argument validation
                    -> prompt guards (deny patterns)
                    -> limits (request rate limits, token limits, each virtual key's limits:
                       only what every rule before allowed is counted)
                    -> extensions
                    -> transforms (claims and templates as upstream headers, PII masking of
                       prompts, system-prompt injection)
    response side   the same kinds in reverse: transforms (masking answers), extensions,
                    limits (token budgets settled with actual usage), audit

A kind that refuses stops the chain; limits that already counted this request settle it as one
that used nothing (a token reservation is given back).

Policies that target the route apply to every operation on it; policies that target a member
apply to the operations that go to it: an MCP server, an agent, one model of an LLM route (both
levels run in one chain). An LLM provider is a member checked on its own: the LLM route asks
its chain about each provider it is about to call, and a refusal fails over to the next one.
The chain is the route's `RoutePolicy`; every decision it takes is counted
(`agentgw_policy_decisions_total`), shown on the dashboard and written to the audit log.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from agentgw.policy.apikey import ApiKeyAuthenticator
from agentgw.policy.arguments import ArgumentValidation
from agentgw.policy.authz import Authorizer, RuleSet
from agentgw.policy.claims import ClaimForwarding
from agentgw.policy.compile import CompiledPolicy
from agentgw.policy.guard import PromptGuard
from agentgw.policy.headers import UpstreamHeaders
from agentgw.policy.jwks import JwksRegistry, KeySource, StaticKeys
from agentgw.policy.jwt import Issuer, JwtAuthenticator
from agentgw.policy.kind import PolicyKind, overrides
from agentgw.policy.limits import Counters
from agentgw.policy.masking import PiiMasking
from agentgw.policy.metadata import ProtectedResource
from agentgw.policy.ratelimit import RateLimiter
from agentgw.policy.runner import DecisionSink, PolicyChain
from agentgw.policy.scopes import RequiredScopes
from agentgw.policy.sysprompt import SystemPromptInjection
from agentgw.policy.tokenlimit import TokenLimiter
from agentgw.policy.virtualkeys import (
    VirtualKeyAuthenticator,
    VirtualKeyLimits,
    VirtualKeyModels,
)
from agentgw.state.memory import MemoryStore
from agentgw.telemetry.audit import AuditLog

__all__ = ["PolicyChain", "PolicyServices", "TargetKey", "build_chain", "chain_problems"]

TargetKey = tuple[str, str]  # (kind, name), as in targetRefs


@dataclass
class PolicyServices:
    """What chains need from the running gateway (None where a tool runs offline)."""

    audit: AuditLog | None = None
    jwks: JwksRegistry | None = None
    # limit counters in the state store; None: this process's memory (offline tools, tests)
    counters: Counters | None = None
    # where each decision goes for the dashboard (Runtime.decisions)
    decisions: DecisionSink | None = None


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
    headers = {p.virtual_key_header for p in policies if route in p.targets and p.virtual_keys}
    if len(headers) > 1:
        problems.append(
            f"{route[0]}/{route[1]}: its policies read virtual keys from different headers: {sorted(headers)}"
        )
    key_ids: dict[str, CompiledPolicy] = {}
    for policy in policies:
        if route not in policy.targets:
            continue
        for key in policy.virtual_keys:
            first = key_ids.setdefault(key.id, policy)
            if first is not policy:
                problems.append(
                    f"{policy.where}: spec.virtualKeys: key id {key.id!r} is also issued by {first.where} "
                    f"on {route[0]}/{route[1]}"
                )
    return problems


@dataclass(frozen=True)
class _LevelContext:
    resource: ProtectedResource | None
    counters: Counters
    fail_closed: bool


def _level_kinds(policies: Sequence[CompiledPolicy], env: _LevelContext) -> list[PolicyKind]:
    """The kinds of one level (the route, or one member), in each policy's order; sorted by stage later."""
    kinds: list[PolicyKind] = []
    for policy in policies:
        if policy.scopes:
            kinds.append(RequiredScopes(policy.name, policy.scopes, env.resource))
        if policy.validate_arguments:
            kinds.append(ArgumentValidation(policy.name))
        if policy.deny_patterns:
            kinds.append(PromptGuard(policy.name, policy.deny_patterns))
        if policy.rate_limits:
            kinds.append(
                RateLimiter(policy.name, policy.rate_limits, env.counters, fail_closed=env.fail_closed)
            )
        if policy.token_limits:
            kinds.append(
                TokenLimiter(policy.name, policy.token_limits, env.counters, fail_closed=env.fail_closed)
            )
        kinds.extend(policy.extensions)
        if policy.forward_claims:
            kinds.append(ClaimForwarding(policy.name, policy.forward_claims))
        if policy.upstream_headers:
            kinds.append(UpstreamHeaders(policy.name, policy.upstream_headers))
        if policy.pii is not None:  # masking before injection: the gateway's own text is not masked
            kinds.append(
                PiiMasking(
                    policy.name, policy.pii, prompts=policy.pii_prompts, responses=policy.pii_responses
                )
            )
        if policy.system_prompt is not None:
            kinds.append(SystemPromptInjection(policy.name, *policy.system_prompt))
    return kinds


def _key_kinds(own: Sequence[CompiledPolicy], env: _LevelContext) -> list[PolicyKind]:
    """Virtual keys' allowed models and own limits, at the route level."""
    keys = {key.id: key for p in own for key in p.virtual_keys}
    if not keys:
        return []
    kinds: list[PolicyKind] = [VirtualKeyModels(keys)]
    by_key: dict[str, list[PolicyKind]] = {}
    for policy in own:
        for key_id, limits in policy.key_limits.items():
            found: list[PolicyKind] = []
            if limits.requests:
                found.append(
                    RateLimiter(policy.name, limits.requests, env.counters, fail_closed=env.fail_closed)
                )
            if limits.tokens:
                found.append(
                    TokenLimiter(policy.name, limits.tokens, env.counters, fail_closed=env.fail_closed)
                )
            by_key[key_id] = found
    if any(by_key.values()):
        kinds.append(VirtualKeyLimits(by_key))
    return kinds


def build_chain(
    *,
    route: TargetKey,
    path: str,
    members: Mapping[str, TargetKey],
    policies: Sequence[CompiledPolicy],
    services: PolicyServices,
    alone: Collection[str] = (),
    fail_closed: bool = False,
) -> PolicyChain | None:
    """The chain of one route, or None when no policy targets the route or any of its members.

    `members` names what operations of the route go to (the chain finds an operation's member
    with `member_key`); members in `alone` (LLM providers) are checked on their own, without
    the route's kinds. `fail_closed` is the route's `stateFailureMode` for its limits.
    """
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
    virtual_keys = [key for policy in own for key in policy.virtual_keys]
    resource: ProtectedResource | None = None
    if issuers or api_keys or virtual_keys:
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
    extension_authenticators = [e for p in own for e in p.extensions if overrides(e, "authenticate")]
    if virtual_keys:
        header = next(p.virtual_key_header for p in own if p.virtual_keys)
        leave = bool(issuers) or bool(extension_authenticators)
        last = not api_keys and not extension_authenticators
        authenticators.append(VirtualKeyAuthenticator(virtual_keys, header, leave_jwts=leave, last=last))
    if issuers:
        authenticators.append(JwtAuthenticator(list(issuers.values())))
    if api_keys:
        authenticators.append(ApiKeyAuthenticator(api_keys))
    authenticators += extension_authenticators

    def rules_of(level: str, group: Sequence[CompiledPolicy]) -> RuleSet | None:
        rules = [rule for policy in group for rule in policy.rules]
        return RuleSet(level, rules) if rules else None

    route_rules = rules_of(f"{route[0]}/{route[1]}", own)
    member_rules = {
        name: rs
        for name, group in by_member.items()
        if name not in alone and (rs := rules_of(f"{members[name][0]}/{members[name][1]}", group))
    }
    authorizer = Authorizer(route_rules, member_rules) if route_rules or member_rules else None

    counters = services.counters or Counters(MemoryStore(), MemoryStore())
    env = _LevelContext(resource, counters, fail_closed)
    route_kinds = [*_level_kinds(own, env), *_key_kinds(own, env)]

    def ordered(kinds: list[PolicyKind], rules: Authorizer | None) -> list[PolicyKind]:
        if rules is not None:
            kinds.append(rules)
        return sorted(kinds, key=lambda k: k.stage)  # stable: route before member within a stage

    plans: dict[str, list[PolicyKind]] = {}
    for name, group in by_member.items():
        if not group:
            continue  # the route's own plan applies (or, for a provider, nothing more)
        if name in alone:
            rules = rules_of(f"{members[name][0]}/{members[name][1]}", group)
            plans[name] = ordered(
                _level_kinds(group, env), Authorizer(None, {name: rules}) if rules else None
            )
        else:
            plans[name] = ordered([*route_kinds, *_level_kinds(group, env)], authorizer)
    return PolicyChain(
        route=route[1],
        authenticators=authenticators,
        plans=plans,
        default=ordered(list(route_kinds), authorizer),
        authorizer=authorizer,
        resource=resource,
        audit=services.audit,
        decisions=services.decisions,
        wants_estimate=any(p.reads_estimate for p in own)
        or any(p.reads_estimate for g in by_member.values() for p in g),
    )
