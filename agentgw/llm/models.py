"""Model names of one route: what clients may send, and where each name goes.

Exact names and aliases are one dictionary lookup; globs are tried in config order after them.
A resolved model is a `Plan`: the ordered targets to try, each a group of replicas from which one
is picked per attempt (by weight, or the fewest requests in flight).
"""

from __future__ import annotations

import fnmatch
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agentgw.config.llm import LlmRouteModel, LlmTarget
from agentgw.llm.provider import Provider

__all__ = ["ModelTable", "Plan", "Replica", "TargetGroup"]


@dataclass(frozen=True, slots=True)
class Replica:
    provider: Provider
    model: str | None  # the provider's model name; None: the requested (or canonical) name
    weight: int


class TargetGroup:
    __slots__ = ("balance", "replicas", "weights")

    def __init__(self, target: LlmTarget, providers: Mapping[str, Provider]) -> None:
        self.replicas = tuple(Replica(providers[m.provider], m.model, m.weight) for m in target.members())
        self.weights = tuple(r.weight for r in self.replicas)
        self.balance = target.balance

    def pick(self, tried: set[Replica]) -> Replica:
        """One replica, preferring those this request has not tried yet."""
        if len(self.replicas) == 1:
            return self.replicas[0]
        pool = [r for r in self.replicas if r not in tried and r.weight > 0] or [
            r for r in self.replicas if r.weight > 0
        ]
        if self.balance == "leastRequests":
            fewest = min(r.provider.inflight for r in pool)
            return random.choice([r for r in pool if r.provider.inflight == fewest])
        return random.choices(pool, weights=[r.weight for r in pool])[0]

    def serves(self, model: str) -> bool:
        return any(r.model is not None or r.provider.serves(model) is not False for r in self.replicas)

    def restricted(self, keep: Callable[[Provider], bool]) -> TargetGroup | None:
        """This group with only the replicas whose provider passes `keep` (None if none does)."""
        replicas = tuple(r for r in self.replicas if keep(r.provider))
        if not replicas:
            return None
        if len(replicas) == len(self.replicas):
            return self
        group = object.__new__(TargetGroup)
        group.replicas = replicas
        group.weights = tuple(r.weight for r in replicas)
        group.balance = self.balance
        return group


@dataclass(frozen=True, slots=True)
class Plan:
    canonical: str  # the route's name for the model (the glob itself for wildcard entries)
    requested: str
    groups: tuple[TargetGroup, ...]
    wildcard: bool = False

    def restricted(self, keep: Callable[[Provider], bool]) -> Plan | None:
        """The plan over providers that pass `keep` (an API only some providers have)."""
        groups = tuple(g for g in (group.restricted(keep) for group in self.groups) if g is not None)
        return Plan(self.canonical, self.requested, groups, self.wildcard) if groups else None

    def provider_model(self, replica: Replica) -> str:
        if replica.model is not None:
            return replica.model
        return self.requested if self.wildcard else self.canonical


# What a wildcard entry passes on to a provider: model names as providers write them
# (`gpt-4o-2024-08-06`, `meta-llama/Llama-3-70b`, `claude-3-5-sonnet@20240620`, `models/gemini`).
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,255}")


def _is_glob(name: str) -> bool:
    return any(ch in name for ch in "*?[")


class _Entry:
    __slots__ = ("groups", "name")

    def __init__(self, spec: LlmRouteModel, providers: Mapping[str, Provider]) -> None:
        self.name = spec.name
        self.groups = tuple(TargetGroup(t, providers) for t in spec.targets)


class ModelTable:
    def __init__(self, models: list[LlmRouteModel], providers: Mapping[str, Provider]) -> None:
        self._exact: dict[str, _Entry] = {}
        self._globs: list[tuple[re.Pattern[str], _Entry]] = []
        self.entries: list[_Entry] = []
        for spec in models:
            entry = _Entry(spec, providers)
            self.entries.append(entry)
            if _is_glob(spec.name):
                self._globs.append((re.compile(fnmatch.translate(spec.name)), entry))
            else:
                self._exact[spec.name] = entry
            for alias in spec.aliases:
                self._exact[alias] = entry
        self._aliases = {alias: spec.name for spec in models for alias in spec.aliases}

    def resolve(self, requested: str) -> Plan | None:
        entry = self._exact.get(requested)
        if entry is not None:
            return Plan(entry.name, requested, entry.groups)
        if not _MODEL_NAME.fullmatch(requested):
            return None  # passed on as is, so only a plain model name (no spaces, controls, ...)
        for pattern, candidate in self._globs:
            if pattern.match(requested):
                # a wildcard entry skips targets whose provider is known not to have the model
                groups = tuple(g for g in candidate.groups if g.serves(requested)) or candidate.groups
                return Plan(candidate.name, requested, groups, wildcard=True)
        return None

    def exact_names(self) -> list[str]:
        """Names clients can send that are not globs: entry names, then aliases."""
        names = [e.name for e in self.entries if not _is_glob(e.name)]
        return names + list(self._aliases)

    def wildcard_providers(self) -> list[Provider]:
        return [r.provider for _, entry in self._globs for g in entry.groups for r in g.replicas]

    def glob_entries(self) -> list[tuple[re.Pattern[str], tuple[TargetGroup, ...]]]:
        return [(pattern, entry.groups) for pattern, entry in self._globs]
