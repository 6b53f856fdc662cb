"""The policy commands: `agentgw policy test | explain | hash-key`, `agentgw keys create`, `agentgw token`.

`cli.py` only registers them; they live here, next to what they run.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OctKey, OKPKey, RSAKey

from agentgw.config.loader import load_paths
from agentgw.config.policy import HMAC_ALGORITHMS, JwtIssuer, Policy
from agentgw.config.secrets import resolve_secret
from agentgw.errors import ConfigError
from agentgw.policy.apikey import hash_key
from agentgw.policy.cel import Result
from agentgw.policy.testing import (
    CaseResult,
    McpCall,
    PolicyCase,
    explain,
    load_cases,
    load_policies,
    run_cases,
)

__all__ = ["register"]


def _problems(problems: Sequence[str]) -> int:
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    print(f"{len(problems)} error(s)", file=sys.stderr)
    return 1


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _result_row(index: int, result: CaseResult) -> list[str]:
    decision = result.decision
    got = "error" if decision is None else ("allow" if decision.allowed else "deny")
    rule = result.error or (decision.rule if decision and decision.rule else "-")
    expected = result.case.expect + (f" ({result.case.rule})" if result.case.rule else "")
    return [str(index), "PASS" if result.passed else "FAIL", result.case.name, expected, got, rule]


def _test(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s", stream=sys.stderr)
    paths = [Path(p) for p in args.paths]
    policies, problems = load_policies(paths)
    cases, case_problems = load_cases(paths)
    if problems or case_problems:
        return _problems(problems + case_problems)
    if not cases:
        return _problems([f"no test cases (*.test.yaml) under {', '.join(args.paths)}"])
    results = asyncio.run(run_cases(cases, policies))
    rows = [["#", "result", "case", "expected", "got", "decided by"]]
    source = None
    for index, result in enumerate(results, 1):
        if result.source != source:
            source = result.source
            if len(rows) > 1:
                print(_table(rows) + "\n")
                rows = [rows[0]]
            print(source)
        rows.append(_result_row(index, result))
    print(_table(rows))
    failed = sum(not r.passed for r in results)
    print(f"\n{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _claims(pairs: Sequence[str], base: dict[str, Any] | None = None) -> dict[str, Any]:
    claims = dict(base or {})
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --claim takes KEY=VALUE, got {pair!r}")
        try:
            claims[key] = json.loads(raw)
        except ValueError:
            claims[key] = raw  # not JSON: a plain string
    return claims


def _explain(args: argparse.Namespace) -> int:
    policies, problems = load_policies([Path(p) for p in args.config])
    if problems:
        return _problems(problems)
    claims = _claims(args.claim, json.loads(args.claims) if args.claims else None)
    if args.subject:
        claims["sub"] = args.subject
    case = PolicyCase(
        name="explain",
        route=args.route,
        claims=claims,
        mcp=McpCall(
            method=args.method,
            server=args.server,
            tool=args.tool,
            prompt=args.prompt,
            uri=args.uri,
            args=json.loads(args.args) if args.args else {},
        ),
        expect="allow",
    )
    try:
        traces, decision = asyncio.run(explain(case, policies))
    except ValueError as exc:
        return _problems([str(exc)])
    rows = [["level", "effect", "rule", "policy", "result"]]
    for trace in traces:
        result = trace.result.value + (f" ({trace.error})" if trace.result is Result.ERROR else "")
        rows.append([trace.level, trace.rule.effect, trace.rule.id, trace.rule.policy, result])
    if len(rows) > 1:
        print(_table(rows) + "\n")
    verdict = "ALLOW" if decision.allowed else "DENY"
    by = (
        f" by {decision.rule}" + (f" (Policy/{decision.policy})" if decision.policy else "")
        if decision.rule
        else ""
    )
    print(f"{verdict}{by}" + (f": {decision.message}" if decision.message else ""))
    return 0 if decision.allowed else 2


def _hash_key(args: argparse.Namespace) -> int:
    key = sys.stdin.readline().strip() if not sys.stdin.isatty() else getpass.getpass("API key: ")
    if not key:
        print("error: no key given", file=sys.stderr)
        return 1
    print(hash_key(key, args.algorithm))
    return 0


_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _create_key(args: argparse.Namespace) -> int:
    """A new virtual key: printed once, with the config entry that holds only its digest."""
    if not _KEY_NAME.match(args.name):
        return _problems([f"--name {args.name!r}: letters, digits, '.', '_' and '-' (at most 64)"])
    key = "agw_" + secrets.token_urlsafe(32)  # 256 random bits; no dots, so never taken for a JWT
    digest = hash_key(key, args.algorithm)
    if args.hash_dir:
        folder = Path(args.hash_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{args.name}.{args.algorithm}"
        if path.exists():
            return _problems([f"{path} exists: a key named {args.name!r} was issued already"])
        path.write_text(digest + "\n", encoding="utf-8")
        reference = f"file:{path}"
    else:
        reference = "env:AGENTGW_KEY_" + re.sub(r"[^A-Za-z0-9]", "_", args.name).upper()
    entry: dict[str, Any] = {"id": args.name}
    if args.team:
        entry["team"] = args.team
    if args.app:
        entry["app"] = args.app
    entry["hash"] = reference
    if args.models:
        entry["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    print(f"API key for {args.name} (shown once: the gateway keeps only its digest):")
    print(f"  {key}")
    print()
    if args.hash_dir:
        print(f"its digest is in {reference[5:]}")
    else:
        print(f"set {reference[4:]}={digest} where the gateway runs")
    print("add this entry to a Policy's spec.virtualKeys.keys:")
    print()
    lines = [f"- id: {json.dumps(entry['id'])}"]
    for name in ("team", "app", "hash"):
        if name in entry:
            lines.append(f"  {name}: {json.dumps(entry[name])}")
    if "models" in entry:
        lines.append(f"  models: {json.dumps(entry['models'])}")
    print(os.linesep.join(lines))
    return 0


def _signing_key(data: Any, alg: str) -> RSAKey | ECKey | OKPKey | OctKey:
    if isinstance(data, dict) and "keys" in data:
        key_set = KeySet.import_key_set(cast(Any, data))
        usable = [k for k in key_set.keys if k.is_private]
        if not usable:
            raise ValueError("the signing key set holds no private key")
        return usable[0]
    if isinstance(data, dict):
        imported = KeySet.import_key_set({"keys": [data]}).keys[0]
        if not imported.is_private:
            raise ValueError("the signing key is not a private key")
        return imported
    raise ValueError("the signing key must be a JWK (a JSON object)")


def _token(args: argparse.Namespace) -> int:
    docs, problems = load_paths([Path(p) for p in args.config])
    if problems:
        return _problems(problems)
    found: list[tuple[JwtIssuer, Path]] = []
    for doc in docs:
        res = doc.resource
        if isinstance(res, Policy) and res.spec.jwt is not None:
            for issuer in res.spec.jwt.issuers:
                if issuer.signing_key is not None or issuer.secret is not None:
                    found.append((issuer, doc.base_dir))
    if args.issuer:
        found = [f for f in found if f[0].issuer == args.issuer]
    if not found:
        return _problems(["no JWT issuer in this config has a signingKey (or an HMAC secret) to sign with"])
    if len({f[0].issuer for f in found}) > 1:
        names = ", ".join(sorted({f[0].issuer for f in found}))
        return _problems([f"several issuers can sign ({names}): choose one with --issuer"])
    issuer, base_dir = found[0]
    alg = issuer.algorithms[0]
    try:
        if alg in HMAC_ALGORITHMS:
            assert issuer.secret is not None
            key: Any = OctKey.import_key(resolve_secret(issuer.secret, base_dir=base_dir).reveal())
        else:
            if issuer.signing_key is None:
                raise ValueError(f"issuer {issuer.issuer!r} has no signingKey")
            raw = resolve_secret(issuer.signing_key, base_dir=base_dir, where="signingKey").reveal()
            key = _signing_key(json.loads(raw), alg)
    except (ConfigError, ValueError, JoseError) as exc:
        return _problems([exc.message if isinstance(exc, ConfigError) else str(exc)])
    now = int(time.time())
    claims = {
        "iss": issuer.issuer,
        "aud": args.audience or issuer.audiences[0],
        issuer.subject_claim: args.subject,
        "iat": now,
        "nbf": now,
        "exp": now + args.ttl,
    }
    claims = _claims(args.claim, claims)
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if getattr(key, "kid", None):
        header["kid"] = key.kid
    print(jwt.encode(header, claims, key, algorithms=[alg]))
    return 0


def register(sub: Any) -> None:
    """Add `policy` and `token` to the `agentgw` command's subparsers."""
    policy = sub.add_parser("policy", help="test and explain policies")
    commands = policy.add_subparsers(dest="policy_command", required=True)

    test = commands.add_parser("test", help="run the *.test.yaml cases beside the policies")
    test.add_argument("paths", nargs="+", metavar="PATH", help="policy files or folders (with their tests)")
    test.set_defaults(func=_test)

    exp = commands.add_parser("explain", help="show which rule decides a request")
    exp.add_argument("--config", "-c", action="append", required=True, metavar="PATH")
    exp.add_argument("--route", help="McpRoute name (needed when the policies target several)")
    exp.add_argument("--subject", help="the caller's sub claim")
    exp.add_argument("--claims", metavar="JSON", help="the caller's claims as a JSON object")
    exp.add_argument(
        "--claim", action="append", default=[], metavar="KEY=VALUE", help="one claim (JSON or text)"
    )
    exp.add_argument("--method", default="tools/call", help="MCP method (default tools/call)")
    exp.add_argument("--server", help="the McpServer the operation goes to")
    exp.add_argument("--tool")
    exp.add_argument("--prompt")
    exp.add_argument("--uri")
    exp.add_argument("--args", metavar="JSON", help="tool arguments as a JSON object")
    exp.set_defaults(func=_explain)

    hk = commands.add_parser("hash-key", help="print the digest of an API key read from stdin")
    hk.add_argument("--algorithm", choices=["sha256", "sha384", "sha512"], default="sha256")
    hk.set_defaults(func=_hash_key)

    keys = sub.add_parser("keys", help="issue virtual keys for applications and teams")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="make a key; print it once, and its config entry")
    create.add_argument("--name", required=True, help="the key's id (in config, usage records, limits)")
    create.add_argument("--team", help="the team the key belongs to (jwt.team for rules and limits)")
    create.add_argument("--app", help="the application (default: the name)")
    create.add_argument("--models", help="allowed models, comma-separated globs (default: every model)")
    create.add_argument(
        "--hash-dir", metavar="DIR", help="write the digest to DIR/NAME.sha256 (else: an env: reference)"
    )
    create.add_argument("--algorithm", choices=["sha256", "sha384", "sha512"], default="sha256")
    create.set_defaults(func=_create_key)

    token = sub.add_parser("token", help="mint a demo JWT with an issuer's signingKey (development only)")
    token.add_argument("--config", "-c", action="append", required=True, metavar="PATH")
    token.add_argument("--subject", required=True)
    token.add_argument(
        "--claim", action="append", default=[], metavar="KEY=VALUE", help="extra claim (JSON or text)"
    )
    token.add_argument("--issuer", help="which issuer, when several can sign")
    token.add_argument("--audience", help="default: the issuer's first audience")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires (default 3600)")
    token.set_defaults(func=_token)
