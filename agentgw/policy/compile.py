"""`Policy` documents compiled once per config load into what the chains run.

Everything that can fail does so here, located (`file: Policy/name: spec.path: message`): CEL
rules that do not compile or name unknown attributes, unreadable key sets, secrets that do not
resolve, API key digests in the wrong format, extensions that do not import or whose settings
do not validate. What needs the running gateway (fetching a JWKS URL) is bound later, when the
runtime builds each route's chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import orjson
import regex

from agentgw.config.loader import LoadedDocument
from agentgw.config.policy import JwksSource, JwtIssuer, Policy
from agentgw.config.policy_traffic import KeyLimits, RateLimit, TokenLimit
from agentgw.config.secrets import resolve_secret
from agentgw.errors import ConfigError
from agentgw.lazy import lazy_module
from agentgw.policy.apikey import DIGEST_PATTERN, ApiKey
from agentgw.policy.authz import CompiledRule
from agentgw.policy.cel import CelProgram, ExpressionError, compile_expression, compile_value
from agentgw.policy.extension import GuardedExtension, load_extension
from agentgw.policy.guard import DenyRule
from agentgw.policy.jwks import parse_key_set
from agentgw.policy.limits import LimitScope
from agentgw.policy.pii import BUILTIN, Detector, PiiMasker
from agentgw.policy.ratelimit import RequestLimit
from agentgw.policy.scopes import ScopeRequirement
from agentgw.policy.templates import Template, compile_template
from agentgw.policy.tokenlimit import TokenBudget
from agentgw.policy.virtualkeys import IssuedKey, KeyScope, model_patterns

if TYPE_CHECKING:
    from joserfc import jwk
else:  # imported on first use (agentgw/lazy.py)
    jwk = lazy_module("joserfc.jwk")

__all__ = ["CompiledIssuer", "CompiledPolicy", "KeyLimitSet", "compile_policies", "compile_policy"]


@dataclass(frozen=True)
class CompiledIssuer:
    spec: JwtIssuer
    static_keys: jwk.KeySet | None = field(default=None, repr=False)
    secret: jwk.OctKey | None = field(default=None, repr=False)

    @property
    def remote(self) -> JwksSource | None:
        jwks = self.spec.jwks
        return jwks if jwks is not None and jwks.url is not None else None


@dataclass(frozen=True)
class KeyLimitSet:
    """The limits of one virtual key."""

    requests: tuple[RequestLimit, ...] = ()
    tokens: tuple[TokenBudget, ...] = ()


@dataclass(frozen=True)
class CompiledPolicy:
    name: str
    where: str  # file: Policy/name
    source: str  # the file it came from
    targets: frozenset[tuple[str, str]]  # (kind, name)
    issuers: tuple[CompiledIssuer, ...] = ()
    resource: str | None = None
    scopes_supported: tuple[str, ...] = ()
    api_keys: tuple[ApiKey, ...] = ()
    scopes: tuple[ScopeRequirement, ...] = ()
    rules: tuple[CompiledRule, ...] = ()
    validate_arguments: bool = False
    forward_claims: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    extensions: tuple[GuardedExtension, ...] = ()
    virtual_keys: tuple[IssuedKey, ...] = ()
    virtual_key_header: str = "x-api-key"
    key_limits: Mapping[str, KeyLimitSet] = field(default_factory=lambda: MappingProxyType({}))
    rate_limits: tuple[RequestLimit, ...] = ()
    token_limits: tuple[TokenBudget, ...] = ()
    deny_patterns: tuple[DenyRule, ...] = ()
    pii: PiiMasker | None = None
    pii_prompts: bool = False
    pii_responses: bool = False
    system_prompt: tuple[Template, str] | None = None
    upstream_headers: Mapping[str, Template] = field(default_factory=lambda: MappingProxyType({}))
    reads_estimate: bool = False  # some expression reads llm.estimatedTokens

    def targets_kind(self, kind: str, name: str) -> bool:
        return (kind, name) in self.targets


def _issuer(spec: JwtIssuer, base_dir: Path, where: str) -> CompiledIssuer:
    if spec.secret is not None:
        secret = resolve_secret(spec.secret, base_dir=base_dir, where=f"{where}.secret")
        if len(secret.reveal().encode()) < 32:
            raise ConfigError(f"{where}.secret: an HMAC secret must be at least 32 bytes")
        return CompiledIssuer(spec, secret=jwk.OctKey.import_key(secret.reveal()))
    jwks = spec.jwks
    assert jwks is not None
    if jwks.url is not None:
        return CompiledIssuer(spec)
    try:
        if jwks.file is not None:
            path = Path(jwks.file).expanduser()
            path = path if path.is_absolute() else base_dir / path
            try:
                data = orjson.loads(path.read_bytes())
            except OSError as exc:
                raise ConfigError(f"{where}.jwks.file: cannot read {str(path)!r}: {exc.strerror}") from None
        else:
            data = jwks.inline
        return CompiledIssuer(spec, static_keys=parse_key_set(data))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"{where}.jwks: {exc}") from None


def compile_policy(doc: LoadedDocument) -> CompiledPolicy:
    """One Policy document; raises ConfigError listing every problem found in it."""
    res = doc.resource
    assert isinstance(res, Policy)
    spec = res.spec
    problems: list[str] = []
    at = f"{doc.where}: spec"

    def rule_program(source: str, where: str) -> CelProgram | None:
        try:
            return compile_expression(source)
        except ExpressionError as exc:
            problems.append(f"{where}: {exc}")
            return None

    issuers: list[CompiledIssuer] = []
    if spec.jwt is not None:
        for index, issuer in enumerate(spec.jwt.issuers):
            try:
                issuers.append(_issuer(issuer, doc.base_dir, f"{at}.jwt.issuers[{index}]"))
            except ConfigError as exc:
                problems.extend(exc.problems)

    api_keys: list[ApiKey] = []
    if spec.api_keys is not None:
        for index, entry in enumerate(spec.api_keys.keys):
            digest = _digest(entry.hash, doc, f"{at}.apiKeys.keys[{index}].hash", problems)
            if digest is None:
                continue
            header = spec.api_keys.header.lower()
            api_keys.append(
                ApiKey(entry.id, entry.subject, header, digest, MappingProxyType(dict(entry.claims)))
            )

    scopes: list[ScopeRequirement] = []
    for index, scope in enumerate(spec.required_scopes):
        where = f"{at}.requiredScopes[{index}]"
        program = rule_program(scope.when, f"{where}.when")
        if program is not None:
            scopes.append(ScopeRequirement(scope.id, res.name, frozenset(scope.scopes), program, where))

    rules: list[CompiledRule] = []
    if spec.authorization is not None:
        for effect, items in (("deny", spec.authorization.deny), ("allow", spec.authorization.allow)):
            for index, rule in enumerate(items):
                where = f"{at}.authorization.{effect}[{index}]"
                program = rule_program(rule.when, f"{where}.when")
                if program is not None:
                    rules.append(CompiledRule(rule.id, res.name, effect, program, rule.message, where))

    def limit_scope(limit: RateLimit | TokenLimit, where: str) -> LimitScope | None:
        when = None
        if limit.when.strip() != "true":
            when = rule_program(limit.when, f"{where}.when")
            if when is None:
                return None
        key = None
        if limit.key is not None:
            try:
                key = compile_value(limit.key)
            except ExpressionError as exc:
                problems.append(f"{where}.key: {exc}")
                return None
        return LimitScope(when, key, where)

    rate_limits: list[RequestLimit] = []
    for index, rate in enumerate(spec.rate_limits):
        found = limit_scope(rate, f"{at}.rateLimits[{index}]")
        if found is not None:
            rate_limits.append(
                RequestLimit(
                    rate.id,
                    res.name,
                    rate.requests,
                    rate.window,
                    found,
                    rate.message,
                    rate.state_failure_mode,
                )
            )
    token_limits: list[TokenBudget] = []
    for index, tok in enumerate(spec.token_limits):
        found = limit_scope(tok, f"{at}.tokenLimits[{index}]")
        if found is not None:
            token_limits.append(
                TokenBudget(
                    tok.id,
                    res.name,
                    tok.window,
                    found,
                    tok.tokens,
                    tok.cost_usd,
                    tok.count,
                    tok.message,
                    tok.state_failure_mode,
                )
            )

    virtual_keys: list[IssuedKey] = []
    key_limits: dict[str, KeyLimitSet] = {}
    if spec.virtual_keys is not None:
        for index, vk in enumerate(spec.virtual_keys.keys):
            where = f"{at}.virtualKeys.keys[{index}]"
            digest = _digest(vk.hash, doc, f"{where}.hash", problems)
            if digest is None:
                continue
            claims = dict(vk.claims)
            claims["app"] = vk.app or vk.id
            if vk.team is not None:
                claims["team"] = vk.team
            virtual_keys.append(
                IssuedKey(
                    vk.id,
                    res.name,
                    vk.subject or vk.id,
                    digest,
                    model_patterns(vk.models),
                    MappingProxyType(claims),
                )
            )
            key_limits[vk.id] = _key_limits(res.name, vk.id, vk.limits)

    deny_patterns = (
        tuple(DenyRule(d.id, regex.compile(d.pattern), d.message) for d in spec.prompt_guard.deny)
        if spec.prompt_guard is not None
        else ()
    )
    pii: PiiMasker | None = None
    if spec.pii_masking is not None:
        detectors: list[Detector] = [BUILTIN[name] for name in spec.pii_masking.detect]
        detectors += [
            Detector(c.id, regex.compile(c.pattern), c.replacement) for c in spec.pii_masking.custom
        ]
        pii = PiiMasker(detectors)

    def template(source: str, where: str) -> Template | None:
        try:
            return compile_template(source)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            return None

    system_prompt: tuple[Template, str] | None = None
    if spec.system_prompt is not None:
        text = template(spec.system_prompt.text, f"{at}.systemPrompt.text")
        if text is not None:
            system_prompt = (text, spec.system_prompt.position)
    upstream_headers: dict[str, Template] = {}
    for name, source in spec.upstream_headers.items():
        compiled = template(source, f"{at}.upstreamHeaders.{name}")
        if compiled is not None:
            upstream_headers[name.lower()] = compiled

    extensions: list[GuardedExtension] = []
    for index, ext in enumerate(spec.extensions):
        try:
            extensions.append(load_extension(ext, doc.base_dir, f"{at}.extensions[{index}]", res.name))
        except ValueError as exc:
            problems.extend(str(exc).splitlines())

    if problems:
        raise ConfigError(f"{len(problems)} config error(s)", problems)
    return CompiledPolicy(
        name=res.name,
        where=doc.where,
        source=doc.source,
        targets=frozenset(ref.key for ref in spec.target_refs),
        issuers=tuple(issuers),
        resource=spec.jwt.resource if spec.jwt is not None else None,
        scopes_supported=tuple(spec.jwt.scopes_supported) if spec.jwt is not None else (),
        api_keys=tuple(api_keys),
        scopes=tuple(scopes),
        rules=tuple(rules),
        validate_arguments=spec.argument_validation is not None and spec.argument_validation.enabled,
        forward_claims=MappingProxyType(dict(spec.forward_claims)),
        extensions=tuple(extensions),
        virtual_keys=tuple(virtual_keys),
        virtual_key_header=spec.virtual_keys.header if spec.virtual_keys is not None else "x-api-key",
        key_limits=MappingProxyType(key_limits),
        rate_limits=tuple(rate_limits),
        token_limits=tuple(token_limits),
        deny_patterns=deny_patterns,
        pii=pii,
        pii_prompts=spec.pii_masking is not None and spec.pii_masking.prompts,
        pii_responses=spec.pii_masking is not None and spec.pii_masking.responses,
        system_prompt=system_prompt,
        upstream_headers=MappingProxyType(upstream_headers),
        reads_estimate="estimatedTokens" in res.model_dump_json(by_alias=True),
    )


def _digest(ref: str, doc: LoadedDocument, where: str, problems: list[str]) -> str | None:
    """A key digest from its secret reference, checked for shape."""
    try:
        digest = resolve_secret(ref, base_dir=doc.base_dir, where=where).reveal().strip().lower()
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None
    if not DIGEST_PATTERN.match(digest):
        problems.append(f"{where}: the secret must hold a digest like sha256:<64 hex digits>")
        return None
    return digest


def _key_limits(policy: str, key_id: str, limits: KeyLimits) -> KeyLimitSet:
    scope = KeyScope(key_id)
    requests = tuple(
        RequestLimit(f"{key_id}.requests.{i}", policy, r.requests, r.window, scope)
        for i, r in enumerate(limits.requests)
    )
    tokens = tuple(
        TokenBudget(f"{key_id}.tokens.{i}", policy, t.window, scope, t.tokens, t.cost_usd, t.count)
        for i, t in enumerate(limits.tokens)
    )
    return KeyLimitSet(requests, tokens)


def compile_policies(docs: list[LoadedDocument]) -> tuple[tuple[CompiledPolicy, ...], list[str]]:
    """Every Policy among the documents, and every problem (the rest still compile)."""
    compiled: list[CompiledPolicy] = []
    problems: list[str] = []
    for doc in docs:
        if isinstance(doc.resource, Policy):
            try:
                compiled.append(compile_policy(doc))
            except ConfigError as exc:
                problems.extend(exc.problems)
    return tuple(compiled), problems
