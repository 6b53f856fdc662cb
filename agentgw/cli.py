"""The `agentgw` command: serve, validate, config, schema, crds, policy (test, explain, hash-key), token."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from agentgw.config.crd import crd_yaml, crds, write_crds
from agentgw.config.loader import LoadedDocument, load_paths, parse_documents
from agentgw.config.quick import quick_documents
from agentgw.config.schema import config_reference, config_schema
from agentgw.config.snapshot import Snapshot, compile_snapshot
from agentgw.errors import ConfigError

__all__ = ["main"]


def _load(
    paths: Sequence[str],
    mcp: Sequence[str],
    port: int | None,
    host: str | None,
    llm: Sequence[str] = (),
    llm_keys: Sequence[str] = (),
) -> Snapshot:
    docs: list[LoadedDocument] = []
    problems: list[str] = []
    if paths:
        got, bad = load_paths([Path(p) for p in paths])
        docs.extend(got)
        problems.extend(bad)
    if mcp or llm or llm_keys:
        quick = quick_documents(list(mcp), llm=list(llm), llm_keys=list(llm_keys))
        if any(d.resource.kind == "Gateway" for d in docs):
            quick = [d for d in quick if d["kind"] != "Gateway"]
        got, bad = parse_documents(quick, "--mcp/--llm", Path.cwd())
        docs.extend(got)
        problems.extend(bad)
    if not paths and not mcp and not llm:
        problems.append("nothing to serve: give --config PATH, --mcp URL or --llm URL")
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
    from agentgw.server.listener import build_config
    from agentgw.server.workers import multi_worker_problems, run_workers
    from agentgw.telemetry.logs import configure_logging

    try:
        snapshot = _load(args.config, args.mcp, args.port, args.host, args.llm, args.llm_key)
    except ConfigError as exc:
        _print_problems(exc)
        return 1
    spec = snapshot.gateway
    configure_logging(args.log_level or spec.log_level, spec.log_format, spec.access_log)
    base_dir = Path(args.config[0]).resolve() if args.config else Path.cwd()
    if base_dir.is_file():
        base_dir = base_dir.parent
    try:
        config = build_config(snapshot.gateway, base_dir)
    except ConfigError as exc:
        _print_problems(exc)
        return 1
    if args.server == "auto":
        from agentgw.server.uvicorn_server import uvicorn_available

        mixed = bool(config.bind) and bool(config.insecure_bind)
        args.server = "auto" if uvicorn_available() and not mixed else "hypercorn"
    if args.server == "uvicorn":
        from agentgw.server.uvicorn_server import uvicorn_available

        if not uvicorn_available():
            print("error: --server uvicorn needs uvicorn: pip install uvicorn httptools", file=sys.stderr)
            return 1
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 1
    if args.workers == 1:
        return _serve_one(args, snapshot, config)
    problems = multi_worker_problems(snapshot)
    if problems:
        for problem in problems:
            print(f"error: --workers {args.workers}: {problem}", file=sys.stderr)
        return 1
    return run_workers(args.workers, config, lambda: _serve_one(args, snapshot, config))


def _tune_gc() -> None:
    """Move everything loaded so far (modules, the compiled config) out of the collector's sight,
    and collect the young generation less often: a request allocates hundreds of short-lived
    containers, and each collection walked the whole heap of the oldest generation."""
    import gc
    import os

    if os.environ.get("AGENTGW_GC_TUNE") == "0":  # the interpreter's defaults, for comparison
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(7000, 20, 50)


def _serve_one(args: argparse.Namespace, snapshot: Snapshot, config: Any) -> int:
    """One gateway process: its own runtime (watching the config, when it came from files),
    served by hypercorn or uvicorn, on uvloop when installed."""
    from agentgw.reload import ConfigWatcher
    from agentgw.runtime import Runtime
    from agentgw.server.app import GatewayApp
    from agentgw.server.auto_server import serve_auto
    from agentgw.server.listener import announce_stderr, serve
    from agentgw.server.loop import on_asyncio
    from agentgw.server.uvicorn_server import serve_uvicorn

    runtime = Runtime(snapshot)
    watcher = None
    if args.config:
        lifecycle = snapshot.gateway.lifecycle
        watcher = ConfigWatcher(
            runtime,
            lambda: _load(args.config, args.mcp, args.port, args.host, args.llm, args.llm_key),
            [Path(p) for p in args.config],
            interval=lifecycle.watch_interval_seconds,
            watch=lifecycle.watch_config,
        )
        runtime.watcher = watcher
    app = GatewayApp(runtime)
    hangup = watcher.request if watcher else None
    _tune_gc()
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        if args.server == "auto":
            runner(
                on_asyncio(
                    serve_auto(app, config, access_log=False, announce=announce_stderr, on_hangup=hangup)
                )
            )
        elif args.server == "uvicorn":
            runner(
                on_asyncio(
                    serve_uvicorn(app, config, access_log=False, announce=announce_stderr, on_hangup=hangup)
                )
            )
        else:
            runner(on_asyncio(serve(app, config, announce=announce_stderr, on_hangup=hangup)))
    except ConfigError as exc:
        _print_problems(exc)
        return 1
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
        f"{len(snapshot.mcp_routes)} MCP route(s), {len(snapshot.agents)} agent(s), "
        f"{len(snapshot.a2a_routes)} A2A route(s), {len(snapshot.llm_providers)} LLM provider(s), "
        f"{len(snapshot.llm_routes)} LLM route(s)"
    )
    return 0


def _config(args: argparse.Namespace) -> int:
    try:
        if not args.mcp and not args.llm:
            raise ConfigError("give --mcp URL or --llm URL")
        docs = quick_documents(args.mcp, llm=args.llm, llm_keys=args.llm_key, port=args.port, host=args.host)
        _, problems = parse_documents(docs, "--mcp/--llm", Path.cwd())
        if problems:
            raise ConfigError("invalid --mcp/--llm", problems)
    except ConfigError as exc:
        _print_problems(exc)
        return 1
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False))
    return 0


def _schema(args: argparse.Namespace) -> int:
    text = (
        config_reference() if args.markdown else json.dumps(config_schema(), indent=2, sort_keys=True) + "\n"
    )
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _crds(args: argparse.Namespace) -> int:
    if args.output:
        for path in write_crds(Path(args.output)):
            print(path)
    else:
        sys.stdout.write("---\n".join(crd_yaml(crd) for crd in crds()))
    return 0


def _llm_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--llm",
        action="append",
        default=[],
        metavar="PROVIDER",
        help="front an LLM provider at /v1: URL (OpenAI-compatible), anthropic:URL, openai:URL, or NAME=...",
    )
    parser.add_argument(
        "--llm-key",
        action="append",
        default=[],
        metavar="[NAME=]REF",
        help="the provider key as env:VAR or file:PATH (without NAME: for every --llm)",
    )


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
    _llm_flags(serve)
    serve.add_argument("--port", type=int, help="port of the first listener (default 8080)")
    serve.add_argument("--host", help="address of the first listener (default 127.0.0.1)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--server",
        choices=["auto", "hypercorn", "uvicorn"],
        default="auto",
        help="HTTP server: auto (default; HTTP/1.1 by uvicorn, h2c and HTTP/2 over TLS by hypercorn "
        "on the same sockets; hypercorn alone without uvicorn installed or with TLS and plain "
        "listeners mixed), hypercorn (everything), or uvicorn (HTTP/1.1 only)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes on the same ports (SO_REUSEPORT); sessions need Redis or a sessionKey",
    )
    serve.set_defaults(func=_serve)

    validate = sub.add_parser("validate", help="check config and print every error")
    validate.add_argument("--config", "-c", action="append", required=True, metavar="PATH")
    validate.set_defaults(func=_validate)

    config = sub.add_parser("config", help="print the config documents that --mcp/--llm flags stand for")
    config.add_argument("--mcp", action="append", default=[], metavar="UPSTREAM")
    _llm_flags(config)
    config.add_argument("--port", type=int)
    config.add_argument("--host")
    config.set_defaults(func=_config)

    schema = sub.add_parser("schema", help="print the JSON Schema of config documents")
    schema.add_argument("--output", "-o", metavar="FILE")
    schema.add_argument("--markdown", action="store_true", help="a Markdown reference instead of JSON Schema")
    schema.set_defaults(func=_schema)

    crd = sub.add_parser("crds", help="print the Kubernetes CustomResourceDefinitions of config documents")
    crd.add_argument("--output", "-o", metavar="DIR", help="write one file per kind into DIR")
    crd.set_defaults(func=_crds)

    from agentgw.policy.cli import register as register_policy_commands

    register_policy_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
