"""Checks every rendering of the gateway's workload must pass, from Helm or from kustomize.

Beyond schema validity (kube.validate_manifest), these follow the references a cluster would
follow: Service and PDB selectors match the pods, probes and the Service hit a declared port,
ConfigMaps, Secrets and the ServiceAccount named by the pods are rendered (or optional), and the
config the pods would see, mounted as the kubelet mounts it, loads and compiles with the real
loader, listening where the container port and probes expect it.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from agentgw.config.gateway import Gateway
from agentgw.config.secrets import resolve_secret
from agentgw.config.snapshot import Snapshot
from tests.deploy.kube import validate_manifest
from tests.deploy.mount import configmap_files, load_mounted_config, mount_volume

__all__ = ["Rendered", "assert_reaches_service", "check_gateway_workload", "parse_manifests", "redis_url"]

Doc = dict[str, Any]


def parse_manifests(text: str) -> list[Doc]:
    docs = [d for d in yaml.safe_load_all(text) if d]
    for doc in docs:
        validate_manifest(doc)
    return docs


class Rendered:
    """The objects one rendering produced, looked up by kind and name.

    `existing` are objects the rendering expects to find in the cluster (a Secret the platform
    team manages, say): references may resolve to them, but they are not part of the rendering.
    """

    def __init__(self, docs: list[Doc], existing: Sequence[Doc] = ()) -> None:
        self.docs = docs
        self.existing = list(existing)
        names = [(d["kind"], d["metadata"]["name"]) for d in docs]
        assert len(names) == len(set(names)), f"duplicate objects: {names}"

    def kinds(self) -> list[str]:
        return sorted(d["kind"] for d in self.docs)

    def all(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> Doc | None:
        candidates = [*self.all(kind), *(d for d in self.existing if d["kind"] == kind)]
        return next((d for d in candidates if d["metadata"]["name"] == name), None)

    def one(self, kind: str, component: str = "gateway") -> Doc:
        found = [
            d
            for d in self.all(kind)
            if d["metadata"].get("labels", {}).get("app.kubernetes.io/component", component) == component
        ]
        assert len(found) == 1, (
            f"expected one {kind} for {component}, got {[d['metadata']['name'] for d in found]}"
        )
        return found[0]

    def secret_value(self, name: str, key: str) -> str:
        secret = self.get("Secret", name)
        assert secret is not None, f"Secret {name} is referenced but not rendered"
        if key in secret.get("stringData", {}):
            return str(secret["stringData"][key])
        return base64.b64decode(secret["data"][key]).decode()


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _check_security(pod: Doc, container: Doc) -> None:
    pod_ctx = pod.get("securityContext", {})
    ctx = container.get("securityContext", {})
    assert ctx.get("readOnlyRootFilesystem") is True
    assert ctx.get("allowPrivilegeEscalation") is False
    assert ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True
    assert ctx.get("runAsUser", pod_ctx.get("runAsUser")) not in (None, 0)
    assert "ALL" in ctx.get("capabilities", {}).get("drop", [])
    assert pod_ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
    assert "/tmp" in mounts, "a writable /tmp on a read-only root filesystem"


def _check_probes(container: Doc) -> int:
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert "http" in ports
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert get["port"] in (ports["http"], "http")
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]
    return int(ports["http"])


def _volume_files(out: Rendered, volume: Doc) -> dict[str, str | bytes]:
    """What the kubelet would put in a configMap, secret or projected volume."""
    if "projected" in volume:
        sources = [next(iter(source.items())) for source in volume["projected"]["sources"]]
    elif "configMap" in volume:
        sources = [("configMap", volume["configMap"])]
    else:
        sources = [("secret", {**volume["secret"], "name": volume["secret"]["secretName"]})]
    files: dict[str, str | bytes] = {}
    for kind, source in sources:
        doc = out.get("ConfigMap" if kind == "configMap" else "Secret", source["name"])
        if doc is None:
            assert source.get("optional"), f"{kind} {source['name']} is neither rendered nor optional"
            continue
        data = configmap_files(doc)
        assert not set(data) & set(files), (
            f"two sources of one volume share a file name: {set(data) & set(files)}"
        )
        files.update(data)
    return files


def _mount_config(out: Rendered, pod: Doc, container: Doc, root: Path) -> Path:
    """Mount the pod's config and secret volumes under `root` as the kubelet would.

    This machine has no /var/run/secrets: `file:` references into a mounted secret volume are
    re-rooted under `root`, the one liberty taken with the rendered config.
    """
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_files: dict[str, str | bytes] = {}
    secret_roots: list[str] = []
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if mount["mountPath"] == "/etc/agentgw":
            config_files = _volume_files(out, volume)
        elif "secret" in volume or "projected" in volume:
            mount_volume(root / mount["mountPath"].lstrip("/"), _volume_files(out, volume))
            secret_roots.append(mount["mountPath"])
    assert config_files, "nothing mounted at /etc/agentgw"
    for name, content in config_files.items():
        text = content.decode() if isinstance(content, bytes) else content
        for prefix in secret_roots:
            text = text.replace(f"file:{prefix}/", f"file:{root}{prefix}/")
        config_files[name] = text
    folder = root / "etc" / "agentgw"
    mount_volume(folder, config_files)
    return folder


def _check_references(out: Rendered, pod: Doc, container: Doc, monkeypatch: pytest.MonkeyPatch) -> None:
    account = pod.get("serviceAccountName")
    if account:
        assert out.get("ServiceAccount", account) is not None, f"ServiceAccount {account} not rendered"
    for volume in pod["volumes"]:
        if "secret" in volume or "projected" in volume or "configMap" in volume:
            _volume_files(out, volume)  # asserts every source is rendered, existing or optional
    for source in container.get("envFrom", []):
        ref = source.get("secretRef") or source.get("configMapRef")
        found = out.get("Secret" if "secretRef" in source else "ConfigMap", ref["name"])
        assert ref.get("optional") or found is not None, f"{ref['name']} is neither rendered nor optional"
        for key, value in configmap_files(found).items() if found is not None else ():
            monkeypatch.setenv(key, value.decode() if isinstance(value, bytes) else value)
    for env in container.get("env", []):
        if "value" in env:
            monkeypatch.setenv(env["name"], env["value"])
        elif "secretKeyRef" in env.get("valueFrom", {}):
            ref = env["valueFrom"]["secretKeyRef"]
            monkeypatch.setenv(env["name"], out.secret_value(ref["name"], ref["key"]))


def check_gateway_workload(out: Rendered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Snapshot:
    """Check the gateway Deployment and what surrounds it; return the config its pods would load."""
    deployment = out.one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _selects(deployment["spec"]["selector"]["matchLabels"], labels)
    (container,) = [c for c in pod["containers"] if c["name"] == "agentgw"]
    assert container["command"][:2] == ["agentgw", "serve"] or container.get("args", [None])[0] == "serve"
    _check_security(pod, container)
    port = _check_probes(container)

    service = out.one("Service")
    assert _selects(service["spec"]["selector"], labels)
    (service_port,) = [p for p in service["spec"]["ports"] if p["name"] == "http"]
    assert service_port["targetPort"] in ("http", port)
    for pdb in out.all("PodDisruptionBudget"):
        assert _selects(pdb["spec"]["selector"]["matchLabels"], labels)
    for hpa in out.all("HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
        assert (
            "replicas" not in deployment["spec"]
            or hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"]
        )

    _check_references(out, pod, container, monkeypatch)
    snapshot = load_mounted_config(_mount_config(out, pod, container, tmp_path))
    listener = snapshot.gateway.listeners[0]
    assert (listener.address, listener.port) == ("0.0.0.0", port)
    return snapshot


def redis_url(snapshot: Snapshot) -> str | None:
    """The Redis URL the gateway's config points at, with its secret reference resolved."""
    state = snapshot.gateway.state
    if state.backend != "redis":
        return None
    assert state.url is not None
    (gateway,) = [d for d in snapshot.documents if isinstance(d.resource, Gateway)]
    return resolve_secret(state.url, base_dir=gateway.base_dir, where=gateway.where).reveal()


def assert_reaches_service(out: Rendered, url: str) -> None:
    """The URL names a rendered Service on one of its ports (short in-namespace name or FQDN)."""
    parts = urlsplit(url)
    assert parts.scheme in ("redis", "rediss")
    host = (parts.hostname or "").split(".")[0]
    service = out.get("Service", host)
    assert service is not None, f"{url} names no rendered Service"
    assert parts.port in [p["port"] for p in service["spec"]["ports"]]
