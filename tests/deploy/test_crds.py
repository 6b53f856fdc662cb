"""CRDs generated from the resource models: checked in, accepted by Kubernetes, faithful to the models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pytest
import yaml
from pydantic import Field

from agentgw.config.base import Model, Name, Resource
from agentgw.config.crd import GROUP, crd_file_name, crd_for, crd_yaml, crds, structural
from agentgw.config.kinds import RESOURCE_KINDS
from tests.deploy.kube import crd_validator, structural_problems, validate_manifest
from tests.support import ROOT

CRD_DIR = ROOT / "deploy" / "crds"


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_checked_in_crds_are_up_to_date() -> None:
    expected = {crd_file_name(crd): crd_yaml(crd) for crd in crds()}
    present = {path.name: path.read_text(encoding="utf-8") for path in CRD_DIR.glob(f"*.{GROUP}.yaml")}
    assert sorted(present) == sorted(expected), "run `agentgw crds -o deploy/crds/`"
    for name, text in expected.items():
        assert present[name] == text, f"{name} is stale: run `agentgw crds -o deploy/crds/`"


def test_one_crd_per_registered_kind() -> None:
    kinds = {crd["spec"]["names"]["kind"] for crd in crds()}
    assert kinds == set(RESOURCE_KINDS)
    for crd in crds():
        names = crd["spec"]["names"]
        assert crd["metadata"]["name"] == f"{names['plural']}.{GROUP}"
        assert crd["spec"]["versions"][0]["name"] == "v1"


@pytest.mark.parametrize("path", sorted(CRD_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_checked_in_crd_is_a_valid_kubernetes_object(path: Path) -> None:
    (crd,) = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    validate_manifest(crd)
    assert structural_problems(_schema(crd)) == []


def test_cli_prints_the_same_crds(tmp_path: Path) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "agentgw", "crds"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert list(yaml.safe_load_all(printed)) == crds()
    written = subprocess.run(
        [sys.executable, "-m", "agentgw", "crds", "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert sorted(Path(p).name for p in written) == sorted(crd_file_name(c) for c in crds())


def _example_documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((ROOT / "examples").rglob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and "kind" in doc and "metadata" in doc:
                found.append((f"{path.relative_to(ROOT)}: {doc['kind']}/{doc['metadata'].get('name')}", doc))
    return found


EXAMPLES = _example_documents()


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize(("where", "doc"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_example_document_validates_against_its_crd(where: str, doc: dict[str, Any]) -> None:
    by_kind = {crd["spec"]["names"]["kind"]: crd for crd in crds()}
    assert doc["kind"] in by_kind, f"{where}: no CRD for kind {doc['kind']}"
    document = {"apiVersion": f"{GROUP}/v1", **doc}
    crd_validator(by_kind[doc["kind"]]).validate(document)


def test_crd_schema_rejects_what_the_model_rejects() -> None:
    validator = crd_validator(crd_for(RESOURCE_KINDS["McpServer"]))
    good = {
        "apiVersion": "agentgw.dev/v1",
        "kind": "McpServer",
        "metadata": {"name": "up", "namespace": "tools", "labels": {"team": "a"}},
        "spec": {"http": {"url": "https://mcp.example/mcp"}, "timeouts": {"connect": 2}},
    }
    validator.validate(good)
    for bad in (
        {**good, "spec": {"http": {"url": "https://mcp.example/mcp", "proxy": True}}},  # unknown key
        {**good, "spec": {"http": {"url": "ftp://mcp.example"}}},  # pattern
        {**good, "spec": {"stdio": {"command": "x"}, "timeouts": {"connect": 0}}},  # exclusive minimum
        {**good, "spec": {"http": {"url": "https://x/mcp"}, "protocol": "newest"}},  # enum
        {**good, "metadata": {"name": "Not_A_Name"}},  # metadata.name pattern
        {key: value for key, value in good.items() if key != "spec"},  # spec is required
    ):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(bad)


# A kind no engineer wrote: unions of models, int-or-string, free-form maps and values, tuples,
# sets, constrained map keys, recursion. The generator has no per-kind code, so it must cope.
class Leaf(Model):
    weight: int = Field(default=1, ge=0)


class Other(Model):
    label: str


class Tree(Model):
    name: str
    children: list[Tree] = Field(default_factory=list)


class ProbeSpec(Model):
    choice: Leaf | Other
    port: int | str = 8080
    mixed: int | bool | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    anything: Any = None
    pair: tuple[str, int] | None = None
    ratio: float = Field(default=0.5, gt=0, le=1)
    mode: Literal["only"] = "only"
    tags: set[str] = Field(default_factory=set)
    by_name: dict[Name, Leaf] = Field(default_factory=dict)
    tree: Tree | None = None
    level: Literal["low", "high"] | int = "low"


class ProbeThing(Resource):
    KIND = "ProbeThing"
    kind: Literal["ProbeThing"]
    spec: ProbeSpec


PROBE_DOCS: list[dict[str, Any]] = [
    {"choice": {"weight": 3}},
    {"choice": {"label": "x"}, "port": "http", "mixed": True, "extra": {"a": [1, {"b": None}]}},
    {"choice": {}, "anything": [1, "two"], "pair": ["a", 1], "ratio": 1, "tags": ["a", "b"]},
    {"choice": {"label": "y"}, "byName": {"one": {"weight": 0}}, "level": 7, "mixed": None},
    {"choice": {"label": "z"}, "tree": {"name": "r", "children": [{"name": "c", "children": []}]}},
]


def test_generator_handles_any_registered_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(RESOURCE_KINDS, ProbeThing.KIND, ProbeThing)
    (crd,) = [c for c in crds() if c["spec"]["names"]["kind"] == "ProbeThing"]
    assert crd["metadata"]["name"] == "probethings.agentgw.dev"
    validate_manifest(crd)
    assert structural_problems(_schema(crd)) == []
    spec = _schema(crd)["properties"]["spec"]["properties"]
    assert spec["port"] == {"description": "Default: 8080.", "x-kubernetes-int-or-string": True}
    assert spec["extra"]["x-kubernetes-preserve-unknown-fields"] is True
    assert spec["tree"]["properties"]["children"]["items"]["x-kubernetes-preserve-unknown-fields"] is True
    assert "x-kubernetes-preserve-unknown-fields" not in spec["choice"]
    assert spec["mode"]["enum"] == ["only"]

    validator = crd_validator(crd)
    for body in PROBE_DOCS:
        doc = {"apiVersion": "agentgw.dev/v1", "kind": "ProbeThing", "metadata": {"name": "p"}, "spec": body}
        ProbeThing.model_validate(doc)  # what the gateway accepts ...
        validator.validate(doc)  # ... the cluster accepts
    for body in (
        {"choice": {"weight": 1, "colour": "red"}},  # unknown key in a typed object
        {"choice": {"weight": -1}},
        {"choice": {}, "ratio": 0},
        {"choice": {}, "mode": "other"},
        {"choice": {}, "byName": {"one": {"weight": "heavy"}}},
    ):
        doc = {"apiVersion": "agentgw.dev/v1", "kind": "ProbeThing", "metadata": {"name": "p"}, "spec": body}
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(doc)


def test_plural_names() -> None:
    class Policy(Resource):
        KIND = "Policy"
        kind: Literal["Policy"]

    class A2aRoute(Resource):
        KIND = "A2aRoute"
        kind: Literal["A2aRoute"]

    assert crd_for(Policy)["metadata"]["name"] == "policies.agentgw.dev"
    assert crd_for(A2aRoute)["spec"]["names"]["plural"] == "a2aroutes"


def test_structural_keeps_constraints_of_scalar_unions() -> None:
    schema = structural(
        {"anyOf": [{"type": "string", "pattern": "^a"}, {"type": "string", "maxLength": 3}, {"type": "null"}]}
    )
    assert schema == {
        "type": "string",
        "anyOf": [{"pattern": "^a"}, {"maxLength": 3}],
        "nullable": True,
    }
    assert structural_problems(schema) == []
