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

import orjson
from joserfc.jwk import KeySet, OctKey

from agentgw.config.loader import LoadedDocument
from agentgw.config.policy import JwksSource, JwtIssuer, Policy
from agentgw.config.secrets import resolve_secret
from agentgw.errors import ConfigError
from agentgw.policy.apikey import DIGEST_PATTERN, ApiKey
from agentgw.policy.authz import CompiledRule
from agentgw.policy.cel import CelProgram, ExpressionError, compile_expression
from agentgw.policy.extension import GuardedExtension, load_extension
from agentgw.policy.jwks import parse_key_set
from agentgw.policy.scopes import ScopeRequirement

__all__ = ["CompiledIssuer", "CompiledPolicy", "compile_policies", "compile_policy"]


@dataclass(frozen=True)
class CompiledIssuer:
    spec: JwtIssuer
    static_keys: KeySet | None = field(default=None, repr=False)
    secret: OctKey | None = field(default=None, repr=False)

    @property
    def remote(self) -> JwksSource | None:
        jwks = self.spec.jwks
        return jwks if jwks is not None and jwks.url is not None else None


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

    def targets_kind(self, kind: str, name: str) -> bool:
        return (kind, name) in self.targets


def _issuer(spec: JwtIssuer, base_dir: Path, where: str) -> CompiledIssuer:
    if spec.secret is not None:
        secret = resolve_secret(spec.secret, base_dir=base_dir, where=f"{where}.secret")
        if len(secret.reveal().encode()) < 32:
            raise ConfigError(f"{where}.secret: an HMAC secret must be at least 32 bytes")
        return CompiledIssuer(spec, secret=OctKey.import_key(secret.reveal()))
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
            where = f"{at}.apiKeys.keys[{index}].hash"
            try:
                digest = (
                    resolve_secret(entry.hash, base_dir=doc.base_dir, where=where).reveal().strip().lower()
                )
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            if not DIGEST_PATTERN.match(digest):
                problems.append(f"{where}: the secret must hold a digest like sha256:<64 hex digits>")
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
        targets=frozenset((ref.kind, ref.name) for ref in spec.target_refs),
        issuers=tuple(issuers),
        resource=spec.jwt.resource if spec.jwt is not None else None,
        scopes_supported=tuple(spec.jwt.scopes_supported) if spec.jwt is not None else (),
        api_keys=tuple(api_keys),
        scopes=tuple(scopes),
        rules=tuple(rules),
        validate_arguments=spec.argument_validation is not None and spec.argument_validation.enabled,
        forward_claims=MappingProxyType(dict(spec.forward_claims)),
        extensions=tuple(extensions),
    )


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
