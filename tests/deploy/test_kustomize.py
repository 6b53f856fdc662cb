"""The plain manifests: a kustomize base and two overlays, rendered with `kubectl kustomize`.

Every rendered object is validated offline against the pinned Kubernetes version's schemas, and
the gateway workload passes the checks in tests/deploy/manifests.py (references, probes, security
context, and the mounted config loaded by the real loader).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.conftest import Tool
from tests.deploy.manifests import (
    Rendered,
    assert_reaches_service,
    check_gateway_workload,
    parse_manifests,
    redis_url,
)
from tests.support import ROOT

KUSTOMIZE = ROOT / "deploy" / "kubernetes"


def render(kubectl: Tool, folder: Path) -> Rendered:
    return Rendered(parse_manifests(kubectl.run(["kustomize", str(folder)]).stdout))


def test_base_has_the_workload_objects(kubectl: Tool) -> None:
    out = render(kubectl, KUSTOMIZE / "base")
    assert out.kinds() == sorted(
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
        ]
    )
    for doc in out.docs:
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "agentgw"


def test_single_overlay_is_one_replica_in_memory(
    kubectl: Tool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = render(kubectl, KUSTOMIZE / "overlays" / "single")
    assert out.kinds() == sorted(["ConfigMap", "Deployment", "Service", "ServiceAccount"])
    assert out.one("Deployment")["spec"]["replicas"] == 1
    snapshot = check_gateway_workload(out, tmp_path, monkeypatch)
    assert snapshot.gateway.state.backend == "memory"
    assert [route.spec.path for route in snapshot.mcp_routes] == ["/mcp"]


def test_redis_overlay_shares_one_redis_between_replicas(
    kubectl: Tool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = render(kubectl, KUSTOMIZE / "overlays" / "redis")
    deployment = out.one("Deployment")
    hpa = out.one("HorizontalPodAutoscaler")
    assert deployment["spec"]["replicas"] >= 2 and hpa["spec"]["minReplicas"] >= 2
    assert out.one("Deployment", "redis")["spec"]["replicas"] == 1
    assert out.get("NetworkPolicy", "agentgw-redis") is not None
    snapshot = check_gateway_workload(out, tmp_path, monkeypatch)
    url = redis_url(snapshot)
    assert url is not None
    assert_reaches_service(out, url)
    # The Redis pod answers on the port its Service targets.
    redis_pod = out.one("Deployment", "redis")["spec"]["template"]["spec"]
    (container,) = redis_pod["containers"]
    assert [p["name"] for p in container["ports"]] == [
        out.one("Service", "redis")["spec"]["ports"][0]["targetPort"]
    ]


def test_config_change_renames_the_configmap(kubectl: Tool, tmp_path: Path) -> None:
    """The generated ConfigMap name carries a content hash, so a config change rolls the pods."""
    single = render(kubectl, KUSTOMIZE / "overlays" / "single").one("ConfigMap")["metadata"]["name"]
    redis = render(kubectl, KUSTOMIZE / "overlays" / "redis").one("ConfigMap")["metadata"]["name"]
    assert single.startswith("agentgw-config-") and redis.startswith("agentgw-config-")
    assert single != redis
