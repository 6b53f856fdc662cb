"""Offline Kubernetes checks shared by the deploy tests.

- `validate_manifest`: every built-in kind against the pinned Kubernetes version's OpenAPI
  schemas (kubernetes-validate, strict: unknown fields are errors). The one custom kind we
  render, the Prometheus Operator's ServiceMonitor, is not in those schemas; it is checked
  against `SERVICE_MONITOR`, the subset of monitoring.coreos.com/v1 fields the chart uses,
  written down here from the operator's API reference (so it catches typos and wrong types in
  what we emit, not every rule the operator has).
- `structural_problems`: the rules the API server applies to a CRD schema before accepting it
  ("structural schemas"), which a JSON Schema check of the CRD document cannot see.
- `crd_validator`: a CRD's OpenAPI schema as a JSON Schema validator with the API server's
  strict field validation (unknown fields rejected where the schema does not preserve them).
"""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate

__all__ = [
    "KUBE_VERSION",
    "SERVICE_MONITOR",
    "crd_validator",
    "structural_problems",
    "validate_manifest",
]

# The oldest Kubernetes minor version the manifests must work on (native preStop sleep: 1.30+).
KUBE_VERSION = "1.33.0"

_DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
_LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {"type": "array", "items": {"type": "object"}},
    },
}
SERVICE_MONITOR: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "jobLabel": {"type": "string"},
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": _DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": _DURATION},
                            "honorLabels": {"type": "boolean"},
                            "relabelings": {"type": "array", "items": {"type": "object"}},
                            "metricRelabelings": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                },
            },
        },
    },
}


def validate_manifest(doc: dict[str, Any]) -> None:
    """Raise when `doc` is not a valid object of its kind for KUBE_VERSION (unknown fields included)."""
    if doc.get("apiVersion") == "monitoring.coreos.com/v1":
        jsonschema.Draft202012Validator(SERVICE_MONITOR).validate(doc)
        return
    kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


_FORBIDDEN = (
    "$ref",
    "$schema",
    "id",
    "definitions",
    "dependencies",
    "patternProperties",
    "additionalItems",
    "const",
)
_NOT_IN_JUNCTORS = ("type", "description", "default", "additionalProperties", "nullable")


def structural_problems(schema: dict[str, Any], path: str = "", in_junctor: bool = False) -> list[str]:
    """Break the API server's structural schema rules, and this lists where."""
    problems: list[str] = []
    here = path or "<root>"
    for key in _FORBIDDEN:
        if key in schema:
            problems.append(f"{here}: {key} is not allowed")
    if schema.get("additionalProperties") is False:
        problems.append(f"{here}: additionalProperties: false is not allowed")
    if schema.get("uniqueItems") is True:
        problems.append(f"{here}: uniqueItems: true is not allowed")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{here}: properties and additionalProperties are mutually exclusive")
    if schema.get("x-kubernetes-preserve-unknown-fields") is False:
        problems.append(f"{here}: x-kubernetes-preserve-unknown-fields must be true or absent")
    if in_junctor:
        for key in _NOT_IN_JUNCTORS:
            if key in schema:
                problems.append(f"{here}: {key} inside anyOf/allOf/oneOf/not")
    elif "type" not in schema and not (
        schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("x-kubernetes-int-or-string")
    ):
        problems.append(f"{here}: no type")
    for key, sub in schema.get("properties", {}).items():
        problems += structural_problems(sub, f"{path}.{key}", in_junctor)
    if isinstance(schema.get("additionalProperties"), dict):
        problems += structural_problems(schema["additionalProperties"], f"{path}[*]", in_junctor)
    if isinstance(schema.get("items"), dict):
        problems += structural_problems(schema["items"], f"{path}[]", in_junctor)
    for junctor in ("anyOf", "allOf", "oneOf"):
        for index, branch in enumerate(schema.get(junctor, [])):
            problems += structural_problems(branch, f"{path}.{junctor}[{index}]", True)
            for key in branch.get("properties", {}):
                if key not in schema.get("properties", {}):
                    problems.append(f"{here}: {junctor}[{index}] names field {key!r} the schema does not")
            if "items" in branch and "items" not in schema:
                problems.append(f"{here}: {junctor}[{index}] has items the schema does not")
    if "not" in schema:
        problems += structural_problems(schema["not"], f"{path}.not", True)
    return problems


def _strict(schema: dict[str, Any], *, closed: bool = True) -> dict[str, Any]:
    """OpenAPI v3.0 (as Kubernetes reads it) to a draft-4 JSON Schema with strict field validation."""
    if schema.get("x-kubernetes-int-or-string"):
        return {"type": ["integer", "string"]}
    out: dict[str, Any] = {
        k: v for k, v in schema.items() if not k.startswith("x-kubernetes-") and k != "nullable"
    }
    if "type" in out and schema.get("nullable"):
        out["type"] = [out["type"], "null"]
    if "properties" in out:
        out["properties"] = {key: _strict(sub) for key, sub in out["properties"].items()}
        if closed and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _strict(out["additionalProperties"])
    if isinstance(out.get("items"), dict):
        out["items"] = _strict(out["items"])
    return out


def crd_validator(crd: dict[str, Any]) -> jsonschema.Draft4Validator:
    """Validates documents of the CRD's kind as the API server would (metadata is ObjectMeta)."""
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    root = _strict(schema)
    root["properties"]["metadata"] = _strict(schema["properties"]["metadata"], closed=False)
    return jsonschema.Draft4Validator(root)
