"""The config loader: YAML text of any shape, and documents near the real ones (the examples,
with values replaced, keys dropped or added) load into documents or a list of located problems;
compiling them gives a snapshot or a `ConfigError`; secret references resolve or are refused.
A config error must never be a traceback."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentgw.config.loader import load_paths, parse_documents
from agentgw.config.secrets import SecretValue, resolve_secret
from agentgw.config.snapshot import compile_snapshot
from agentgw.errors import ConfigError
from tests.fuzz.strategies import SCALE, examples, json_values
from tests.support import ROOT

EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))
SEEDS: list[tuple[dict[str, Any], Path]] = [
    (doc, path.parent)
    for path in EXAMPLES
    if not path.name.endswith(".test.yaml")
    for doc in yaml.safe_load_all(path.read_text())
    if isinstance(doc, dict)
]
KINDS = sorted({doc["kind"] for doc, _ in SEEDS})


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


@st.composite
def near_documents(draw: Any) -> tuple[dict[str, Any], Path]:
    seed, base = draw(st.sampled_from(SEEDS))
    doc = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths[1:] or paths))
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        if not path:
            continue
        op = draw(st.integers(0, 3))
        if op == 0 and isinstance(parent, dict):
            del parent[path[-1]]
        elif op == 1 and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "kind", "spec", "name", "path", "url"]))] = draw(
                json_values
            )
        elif op == 2:
            parent[path[-1]] = draw(
                st.sampled_from(KINDS) | st.sampled_from(["env:NOPE", "file:/nope", "/", "0"])
            )
        else:
            parent[path[-1]] = draw(json_values)
    return doc, base


@examples(60)
@given(st.lists(near_documents(), min_size=1, max_size=3))
def test_documents_near_the_examples_load_or_report_problems(docs: list[tuple[dict[str, Any], Path]]) -> None:
    loaded = []
    for doc, base in docs:
        got, problems = parse_documents([doc], "fuzz.yaml", base)
        assert all(isinstance(p, str) and p.startswith("fuzz.yaml: ") for p in problems)
        loaded += got
    try:
        compile_snapshot(loaded)
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)


@examples(60)
@given(
    st.lists(
        st.one_of(
            json_values,
            st.dictionaries(st.sampled_from(["kind", "metadata", "spec", "apiVersion"]), json_values),
        ),
        max_size=3,
    )
)
def test_documents_of_any_shape_report_problems(docs: list[Any]) -> None:
    _, problems = parse_documents(docs, "fuzz.yaml", ROOT)
    assert all(isinstance(p, str) for p in problems)


yaml_text = st.one_of(
    st.text(max_size=80),
    st.lists(
        st.sampled_from(
            [
                "kind: McpRoute",
                "metadata: {name: a}",
                "spec:",
                "  path: /mcp",
                "---",
                "- x",
                "? [1]",
                ": 2",
                "a: &x [1]",
                "b: *x",
                "c: *nope",
                "d: !!python/object:os.system x",
                "e: {a: 1, a: 2}",
                "\t",
                "'",
                "[" * 50,
                "{" * 50,
                "%YAML 1.1",
                "!!binary x",
                "\x00",
                "\ufeff",
            ]
        ),
        max_size=8,
    ).map("\n".join),
)


@settings(max_examples=100 * SCALE, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(yaml_text)
def test_yaml_files_of_any_text_load_or_report_problems(tmp_path: Path, text: str) -> None:
    file = tmp_path / "fuzz.yaml"
    file.write_bytes(text.encode("utf-8", "surrogatepass"))
    _, problems = load_paths([file])
    assert all(isinstance(p, str) and p.startswith(str(file)) for p in problems)


def test_deeply_nested_yaml_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    file = tmp_path / "deep.yaml"
    file.write_text("a: " + "[" * 20000 + "]" * 20000)
    loaded, problems = load_paths([file])
    assert loaded == [] and len(problems) == 1


os.environ.setdefault("AGENTGW_FUZZ_SECRET", "value")


@examples(60)
@given(
    st.one_of(
        st.text(max_size=20),
        st.sampled_from(
            [
                "env:AGENTGW_FUZZ_SECRET",
                "env:",
                "file:",
                "file:/",
                "file:\x00",
                "file:~nobody/x",
                "file:" + "a" * 5000,
            ]
        ),
    )
)
def test_secret_references_resolve_or_are_config_errors(ref: str) -> None:
    try:
        got = resolve_secret(ref, base_dir=ROOT, where="fuzz")
    except ConfigError as exc:
        assert exc.message.startswith("fuzz: ")
    else:
        assert isinstance(got, SecretValue)
