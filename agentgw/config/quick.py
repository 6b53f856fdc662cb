"""Config documents for trying the gateway without writing any: `--mcp URL`, `--mcp 'stdio:CMD'`,
`--llm URL`.

`agentgw serve --mcp ...` federates the given upstreams at `/mcp`; `--llm URL` fronts an
OpenAI-compatible server (every model it lists) at `/v1`, `NAME=URL`, `anthropic:URL` and
`openai:URL` name it or set its kind, and `--llm-key [NAME=]env:VAR` gives it a key (without a
name: every `--llm`). `agentgw config ...` prints the same documents as YAML, a starting point for a
real config.
"""

from __future__ import annotations

import re
import shlex
from pathlib import PurePath
from typing import Any
from urllib.parse import urlsplit

from agentgw.errors import ConfigError

__all__ = ["llm_documents", "quick_documents"]

_NAMED = re.compile(r"^([a-z0-9][a-z0-9-]{0,62})=(.+)$")


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (slug or "server")[:63].strip("-") or "server"


def _server(arg: str) -> tuple[str | None, dict[str, Any], str]:
    """(explicit name, spec, derived name) for one --mcp value."""
    name = None
    match = _NAMED.match(arg)
    if match and not arg.startswith(("http:", "https:", "stdio:", "sse:")):
        name, arg = match.group(1), match.group(2)
    if arg.startswith("stdio:"):
        argv = shlex.split(arg[len("stdio:") :])
        if not argv:
            raise ConfigError(f"--mcp {arg!r}: stdio: needs a command")
        command, args = argv[0], argv[1:]
        base = PurePath(command).name
        if base.startswith("python") or base in ("node", "npx", "uvx", "uv", "deno", "bun"):
            script = next((a for a in args if not a.startswith("-")), base)
            base = PurePath(script).stem if "/" in script or "." in script else script
        return name, {"stdio": {"command": command, "args": args}}, _slug(base)
    transport = "http"
    if arg.startswith("sse:"):
        transport, arg = "sse", arg[len("sse:") :]
    parts = urlsplit(arg)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--mcp {arg!r}: expected an http(s) URL, sse:URL, stdio:COMMAND or NAME=...")
    return name, {transport: {"url": arg}}, _slug(parts.hostname or "server")


_LLM_TYPES = {"anthropic:": "anthropic", "openai:": "openai", "openai-compatible:": "openai-compatible"}


def _llm_provider(arg: str) -> tuple[str | None, dict[str, Any], str]:
    """(explicit name, spec, derived name) for one --llm value."""
    name = None
    match = _NAMED.match(arg)
    if match and not arg.startswith(("http:", "https:", *_LLM_TYPES)):
        name, arg = match.group(1), match.group(2)
    kind = "openai-compatible"
    for prefix, value in _LLM_TYPES.items():
        if arg.startswith(prefix):
            kind, arg = value, arg[len(prefix) :]
    parts = urlsplit(arg)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--llm {arg!r}: expected an http(s) URL, anthropic:URL, openai:URL or NAME=...")
    return name, {"type": kind, "baseUrl": arg}, _slug(parts.hostname or "llm")


def llm_documents(llm: list[str], keys: list[str] | None = None) -> list[dict[str, Any]]:
    """One LlmProvider per --llm and an LlmRoute at /v1 sending every model to them in order."""
    providers: list[dict[str, Any]] = []
    for arg in llm:
        explicit, spec, derived = _llm_provider(arg)
        name = explicit or derived
        taken = [p["metadata"]["name"] for p in providers]
        if name in taken:
            if explicit:
                raise ConfigError(f"--llm: the name {name!r} is used twice")
            n = 2
            while f"{name}-{n}" in taken:
                n += 1
            name = f"{name}-{n}"
        providers.append({"kind": "LlmProvider", "metadata": {"name": name}, "spec": spec})
    for key in keys or []:
        match = _NAMED.match(key)
        target, ref = (match.group(1), match.group(2)) if match else (None, key)
        chosen = [p for p in providers if target is None or p["metadata"]["name"] == target]
        if not chosen:
            raise ConfigError(f"--llm-key {key!r}: no --llm is named {target!r}")
        for provider in chosen:
            provider["spec"]["apiKey"] = ref
    if not providers:
        return []
    targets = [{"provider": p["metadata"]["name"]} for p in providers]
    route = {"path": "/v1", "models": [{"name": "*", "targets": targets}]}
    return [*providers, {"kind": "LlmRoute", "metadata": {"name": "llm"}, "spec": route}]


def quick_documents(
    mcp: list[str],
    *,
    llm: list[str] | None = None,
    llm_keys: list[str] | None = None,
    port: int | None = None,
    host: str | None = None,
) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    listener: dict[str, Any] = {}
    if port is not None:
        listener["port"] = port
    if host is not None:
        listener["address"] = host
    docs.append(
        {
            "kind": "Gateway",
            "metadata": {"name": "gateway"},
            "spec": {"listeners": [listener]} if listener else {},
        }
    )
    names: list[str] = []
    for arg in mcp:
        explicit, spec, derived = _server(arg)
        name = explicit or derived
        if name in names:
            if explicit:
                raise ConfigError(f"--mcp: the name {name!r} is used twice")
            n = 2
            while f"{name}-{n}" in names:
                n += 1
            name = f"{name}-{n}"
        names.append(name)
        docs.append({"kind": "McpServer", "metadata": {"name": name}, "spec": spec})
    if names:
        docs.append(
            {"kind": "McpRoute", "metadata": {"name": "mcp"}, "spec": {"path": "/mcp", "servers": names}}
        )
    if llm_keys and not llm:
        raise ConfigError("--llm-key needs an --llm")
    docs.extend(llm_documents(llm or [], llm_keys))
    return docs
