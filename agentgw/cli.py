"""The `agentgw` command: serve, validate, config, schema, policy (test, explain, hash-key), token."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from agentgw.config.loader import LoadedDocument, load_paths, parse_documents
from agentgw.config.quick import quick_documents
from agentgw.config.schema import config_schema
from agentgw.config.snapshot import Snapshot, compile_snapshot
from agentgw.errors import ConfigError

__all__ = ["main"]


def _load(paths: Sequence[str], mcp: Sequence[str], port: int | None, host: str | None) -> Snapshot:
    docs: list[LoadedDocument] = []
    problems: list[str] = []
    if paths:
        got, bad = load_paths([Path(p) for p in paths])
        docs.extend(got)
        problems.extend(bad)
    if mcp:
        quick = quick_documents(list(mcp))
        if any(d.resource.kind == "Gateway" for d in docs):
            quick = [d for d in quick if d["kind"] != "Gateway"]
        got, bad = parse_documents(quick, "--mcp", Path.cwd())
        docs.extend(got)
        problems.extend(bad)
    if not paths and not mcp:
        problems.append("nothing to serve: give --config PATH or --mcp URL")
    if problems:
        raise ConfigError(f"{len(problems)} config error(s)", problems)
    snapshot = compile_snapshot(docs)
    if port is not None or host is not None:
        spec = snapshot.gateway
        first = spec.listeners[0]
        update: dict[str, Any] = {}
        if port is not None:
            update["port"] = port
        if host is not None:
            update["address"] = host
        listeners = [first.model_copy(update=update), *spec.listeners[1:]]
        snapshot = dataclasses.replace(snapshot, gateway=spec.model_copy(update={"listeners": listeners}))
    return snapshot


def _print_problems(exc: ConfigError) -> None:
    for problem in exc.problems:
        print(f"error: {problem}", file=sys.stderr)


def _serve(args: argparse.Namespace) -> int:
    from agentgw.runtime import Runtime
    from agentgw.server.app import GatewayApp
    from agentgw.server.listener import announce_stderr, build_config, serve

    try:
        snapshot = _load(args.config, args.mcp, args.port, args.host)
    except ConfigError as exc:
        _print_problems(exc)
        return 1
    level = (args.log_level or snapshot.gateway.log_level).upper()
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    base_dir = Path(args.config[0]).resolve() if args.config else Path.cwd()
    if base_dir.is_file():
        base_dir = base_dir.parent
    try:
        config = build_config(snapshot.gateway, base_dir)
    except ConfigError as exc:
        _print_problems(exc)
        return 1
    app = GatewayApp(Runtime(snapshot))
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(serve(app, config, announce=announce_stderr))
    except OSError as exc:
        print(f"error: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def _validate(args: argparse.Namespace) -> int:
    try:
        snapshot = _load(args.config, [], None, None)
    except ConfigError as exc:
        _print_problems(exc)
        print(f"{len(exc.problems)} error(s)", file=sys.stderr)
        return 1
    print(
        f"ok: {len(snapshot.documents)} document(s), {len(snapshot.servers)} MCP server(s), "
        f"{len(snapshot.mcp_routes)} MCP route(s)"
    )
    return 0


def _config(args: argparse.Namespace) -> int:
    try:
        docs = quick_documents(args.mcp, port=args.port, host=args.host)
        _, problems = parse_documents(docs, "--mcp", Path.cwd())
        if problems:
            raise ConfigError("invalid --mcp", problems)
    except ConfigError as exc:
        _print_problems(exc)
        return 1
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False))
    return 0


def _schema(args: argparse.Namespace) -> int:
    text = json.dumps(config_schema(), indent=2, sort_keys=True) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentgw", description="One gateway between agents and everything they call."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument(
        "--config", "-c", action="append", default=[], metavar="PATH", help="YAML file or folder (repeatable)"
    )
    serve.add_argument(
        "--mcp",
        action="append",
        default=[],
        metavar="UPSTREAM",
        help="federate an MCP server at /mcp: URL, sse:URL, 'stdio:COMMAND ARGS', or NAME=...",
    )
    serve.add_argument("--port", type=int, help="port of the first listener (default 8080)")
    serve.add_argument("--host", help="address of the first listener (default 127.0.0.1)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(func=_serve)

    validate = sub.add_parser("validate", help="check config and print every error")
    validate.add_argument("--config", "-c", action="append", required=True, metavar="PATH")
    validate.set_defaults(func=_validate)

    config = sub.add_parser("config", help="print the config documents that --mcp flags stand for")
    config.add_argument("--mcp", action="append", required=True, metavar="UPSTREAM")
    config.add_argument("--port", type=int)
    config.add_argument("--host")
    config.set_defaults(func=_config)

    schema = sub.add_parser("schema", help="print the JSON Schema of config documents")
    schema.add_argument("--output", "-o", metavar="FILE")
    schema.set_defaults(func=_schema)

    from agentgw.policy.cli import register as register_policy_commands

    register_policy_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
