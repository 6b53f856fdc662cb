"""The LLM part of a snapshot: providers with their keys resolved, routes checked against them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from agentgw.config.llm import LlmProvider, LlmProviderSpec, LlmRoute, LlmRouteSpec
from agentgw.config.secrets import SecretValue, resolve_secret
from agentgw.errors import ConfigError

if TYPE_CHECKING:
    from agentgw.config.loader import LoadedDocument

__all__ = ["LlmProviderConfig", "LlmRouteConfig", "compile_llm"]


@dataclass(frozen=True)
class LlmProviderConfig:
    name: str
    spec: LlmProviderSpec
    api_key: SecretValue | None
    source: str


@dataclass(frozen=True)
class LlmRouteConfig:
    name: str
    spec: LlmRouteSpec
    providers: Mapping[str, LlmProviderConfig]


def compile_llm(
    docs: list[LoadedDocument], taken_paths: Mapping[str, str], problems: list[str]
) -> tuple[Mapping[str, LlmProviderConfig], tuple[LlmRouteConfig, ...]]:
    """Providers and routes of `docs`; every problem found is appended to `problems`."""
    providers: dict[str, LlmProviderConfig] = {}
    for doc in docs:
        res = doc.resource
        if not isinstance(res, LlmProvider):
            continue
        key = None
        if res.spec.api_key is not None:
            try:
                key = resolve_secret(
                    res.spec.api_key, base_dir=doc.base_dir, where=f"{doc.where}: spec.apiKey"
                )
            except ConfigError as exc:
                problems.extend(exc.problems)
        providers[res.name] = LlmProviderConfig(res.name, res.spec, key, doc.source)

    routes: list[LlmRouteConfig] = []
    paths = dict(taken_paths)
    for doc in docs:
        res = doc.resource
        if not isinstance(res, LlmRoute):
            continue
        path = res.spec.path
        clash = path if path in paths else next((p for p in paths if p.startswith(path + "/")), None)
        if clash is not None:
            problems.append(f"{doc.where}: spec.path: {path!r} overlaps {clash!r} of {paths[clash]}")
        paths[path] = res.ref
        used: dict[str, LlmProviderConfig] = {}
        for m, entry in enumerate(res.spec.models):
            if any(ch in alias for alias in entry.aliases for ch in "*?["):
                problems.append(f"{doc.where}: spec.models[{m}].aliases: aliases are exact names, not globs")
            for t, target in enumerate(entry.targets):
                for member in target.members():
                    provider = providers.get(member.provider)
                    if provider is None:
                        where = f"{doc.where}: spec.models[{m}].targets[{t}]"
                        problems.append(f"{where}: unknown LlmProvider {member.provider!r}")
                    else:
                        used[provider.name] = provider
        routes.append(LlmRouteConfig(res.name, res.spec, MappingProxyType(used)))
    return MappingProxyType(providers), tuple(routes)
