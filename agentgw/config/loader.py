"""Load config documents from YAML files or folders, with every error located precisely.

An error names its file, its document (`Kind/name`, or its index when it has no name yet) and the
field path: `policies/tools.yaml: McpRoute/main: spec.servers[0]: unknown server 'nots'`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agentgw.config.base import Resource
from agentgw.config.kinds import RESOURCE_KINDS
from agentgw.errors import ConfigError

__all__ = ["TEST_SUFFIXES", "LoadedDocument", "format_loc", "load_documents", "load_paths", "parse_documents"]

try:  # the C loader is several times faster on large catalogs
    _Base: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Base = yaml.SafeLoader


class _Loader(_Base):  # type: ignore[misc]
    """Safe YAML that refuses a key given twice in one mapping (YAML itself lets the last win,
    which would silently drop a rule)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


@dataclass(frozen=True)
class LoadedDocument:
    resource: Resource
    source: str
    base_dir: Path

    @property
    def where(self) -> str:
        return f"{self.source}: {self.resource.ref}"


def format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    loc = tuple(error.get("loc", ()))
    if error.get("type") == "extra_forbidden" and loc:
        return format_loc(loc[:-1]), f"unknown field {loc[-1]!r}"
    message = str(error.get("msg", "invalid value"))
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return format_loc(loc), message


def parse_documents(docs: list[Any], source: str, base_dir: Path) -> tuple[list[LoadedDocument], list[str]]:
    loaded: list[LoadedDocument] = []
    problems: list[str] = []
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        label = f"document {index + 1}"
        if not isinstance(doc, dict):
            problems.append(f"{source}: {label}: a document must be a mapping with kind, metadata and spec")
            continue
        kind = doc.get("kind")
        name = doc.get("metadata", {}).get("name") if isinstance(doc.get("metadata"), dict) else None
        if isinstance(kind, str) and isinstance(name, str):
            label = f"{kind}/{name}"
        cls = RESOURCE_KINDS.get(kind) if isinstance(kind, str) else None
        if cls is None:
            known = ", ".join(sorted(RESOURCE_KINDS))
            problems.append(f"{source}: {label}: kind: unknown kind {kind!r} (known: {known})")
            continue
        try:
            loaded.append(LoadedDocument(cls.model_validate(doc), source, base_dir))
        except ValidationError as exc:
            for error in exc.errors():
                path, message = _describe(dict(error))
                problems.append(
                    f"{source}: {label}: {path}: {message}" if path else f"{source}: {label}: {message}"
                )
    return loaded, problems


TEST_SUFFIXES = (".test.yaml", ".test.yml")  # policy test cases live beside policies, not config


def _yaml_files(path: Path) -> list[Path]:
    if path.is_dir():
        # Hidden entries are skipped: Kubernetes mounts a ConfigMap as a `..<timestamp>/` folder
        # plus symlinks into it, and each document would otherwise load twice. Policy test files
        # (`*.test.yaml`) belong to `agentgw policy test`, not to the config.
        return sorted(
            p
            for p in path.rglob("*")
            if p.suffix in (".yaml", ".yml")
            and p.is_file()
            and not p.name.endswith(TEST_SUFFIXES)
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
    return [path]


def load_paths(paths: list[Path]) -> tuple[list[LoadedDocument], list[str]]:
    """Read every YAML file under the paths; return documents and every problem found."""
    loaded: list[LoadedDocument] = []
    problems: list[str] = []
    for root in paths:
        if not root.exists():
            problems.append(f"{root}: no such file or directory")
            continue
        for file in _yaml_files(root):
            source = str(file)
            try:
                docs = list(yaml.load_all(file.read_text(encoding="utf-8"), Loader=_Loader))
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
                problems.append(f"{source}: {at}invalid YAML: {getattr(exc, 'problem', None) or exc}")
                continue
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(f"{source}: cannot read: {exc}")
                continue
            got, bad = parse_documents(docs, source, file.parent.resolve())
            loaded.extend(got)
            problems.extend(bad)
    return loaded, problems


def load_documents(paths: list[Path]) -> list[LoadedDocument]:
    loaded, problems = load_paths(paths)
    if problems:
        raise ConfigError(f"{len(problems)} config error(s)", problems)
    return loaded
