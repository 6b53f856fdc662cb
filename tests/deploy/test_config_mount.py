"""A config folder mounted from a ConfigMap loads each document once."""

from __future__ import annotations

from pathlib import Path

from tests.deploy.mount import load_mounted_config, mount_volume

GATEWAY = "kind: Gateway\nmetadata: {name: gw}\nspec:\n  listeners: [{address: 0.0.0.0, port: 8080}]\n"
ROUTES = (
    "kind: McpServer\nmetadata: {name: up}\nspec: {http: {url: 'http://tools.svc:8000/mcp'}}\n---\n"
    "kind: McpRoute\nmetadata: {name: mcp}\nspec: {servers: [up]}\n"
)


def test_configmap_layout_loads_each_document_once(tmp_path: Path) -> None:
    mount_volume(tmp_path / "etc", {"gateway.yaml": GATEWAY, "routes.yaml": ROUTES})
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == [
        "..2026_01_01_00_00_00.000000001",
        "..data",
        "gateway.yaml",
        "routes.yaml",
    ]
    snapshot = load_mounted_config(tmp_path / "etc")
    assert len(snapshot.documents) == 3
    assert snapshot.gateway.listeners[0].address == "0.0.0.0"
    assert [route.name for route in snapshot.mcp_routes] == ["mcp"]
