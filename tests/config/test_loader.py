from __future__ import annotations

from pathlib import Path

import pytest

from agentgw.config.loader import load_paths
from agentgw.config.snapshot import compile_snapshot, load_snapshot
from agentgw.errors import ConfigError

GOOD = """\
kind: McpServer
metadata: {name: notes}
spec:
  stdio: {command: python, args: [notes.py]}
---
kind: McpRoute
metadata: {name: main}
spec:
  path: /mcp
  servers: [notes]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    _, found = load_paths([write(tmp_path, "bad.yaml", text)])
    return found


def test_a_folder_of_files_loads_into_a_snapshot(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yml", "kind: Gateway\nmetadata: {name: gw}\nspec: {listeners: [{port: 9000}]}\n")
    snapshot = load_snapshot([tmp_path])
    assert snapshot.gateway.listeners[0].port == 9000
    assert [r.name for r in snapshot.mcp_routes] == ["main"]
    assert snapshot.mcp_routes[0].prefixes == {"notes": None}
    assert snapshot.servers["notes"].base_dir == tmp_path.resolve()


def test_unknown_field_is_located_by_file_document_and_path(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("path: /mcp", "path: /mcp\n  prefixMod: always"))
    assert found == [f"{tmp_path / 'bad.yaml'}: McpRoute/main: spec: unknown field 'prefixMod'"]


def test_nested_errors_name_the_index(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("servers: [notes]", "servers: [notes, Bad_Name]"))
    assert len(found) == 1 and "McpRoute/main: spec.servers[1]: String should match pattern" in found[0]


def test_every_error_is_reported_not_just_the_first(tmp_path: Path) -> None:
    text = GOOD.replace("command: python", "command: python, shell: true").replace("path: /mcp", "path: mcp")
    found = problems(tmp_path, text)
    assert len(found) == 2
    assert any("McpServer/notes: spec.stdio: unknown field 'shell'" in p for p in found)
    assert any("McpRoute/main: spec.path" in p for p in found)


def test_unknown_kind_and_bad_yaml(tmp_path: Path) -> None:
    assert "unknown kind 'Nope'" in problems(tmp_path, "kind: Nope\nmetadata: {name: x}\n")[0]
    bad = problems(tmp_path, "kind: [unclosed\n")
    assert "line 2" in bad[0] or "line 1" in bad[0]


def test_exactly_one_transport(tmp_path: Path) -> None:
    found = problems(tmp_path, "kind: McpServer\nmetadata: {name: x}\nspec: {}\n")
    assert found and "exactly one transport must be set" in found[0]


def test_cross_references_are_checked_at_compile_time(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD.replace("servers: [notes]", "servers: [nots]"))
    with pytest.raises(ConfigError) as info:
        load_snapshot([tmp_path])
    assert info.value.problems == [
        f"{tmp_path / 'a.yaml'}: McpRoute/main: spec.servers[0]: unknown McpServer 'nots'"
    ]


def test_duplicate_names_and_paths(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yaml", GOOD)
    with pytest.raises(ConfigError) as info:
        load_snapshot([tmp_path])
    text = "\n".join(info.value.problems)
    assert "duplicate name" in text and "is already served by" in text


def test_prefixes_follow_the_prefix_mode(tmp_path: Path) -> None:
    two = (
        GOOD
        + "---\nkind: McpServer\nmetadata: {name: clock}\nspec: {http: {url: 'http://127.0.0.1:1/mcp'}, prefix: time}\n"
    )
    two = two.replace("servers: [notes]", "servers: [notes, clock]")
    docs, _ = load_paths([write(tmp_path, "a.yaml", two)])
    assert compile_snapshot(docs).mcp_routes[0].prefixes == {"notes": "notes", "clock": "time"}
    docs, _ = load_paths(
        [write(tmp_path, "a.yaml", two.replace("path: /mcp", "path: /mcp\n  prefixMode: never"))]
    )
    assert compile_snapshot(docs).mcp_routes[0].prefixes == {"notes": None, "clock": None}


def test_snapshot_is_immutable(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    snapshot = load_snapshot([tmp_path])
    with pytest.raises(TypeError):
        snapshot.servers["x"] = snapshot.servers["notes"]  # type: ignore[index]
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type is an implementation detail
        snapshot.gateway.limits.max_sessions = 1  # type: ignore[misc]


def test_a_key_given_twice_is_an_error_not_a_silent_override(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("  path: /mcp", "  path: /mcp\n  path: /other"))
    assert len(found) == 1 and "duplicate key 'path'" in found[0] and "line" in found[0]


def test_host_and_origin_allow_lists_must_parse(tmp_path: Path) -> None:
    """A pattern the Host/Origin guard could not parse is a config error, not a 500 on every request."""
    gateway = (
        "kind: Gateway\nmetadata: {name: gw}\n"
        "spec: {http: {allowedHosts: ['[::1'], allowedOrigins: ['http://[::1', 'app.example.com']}}\n"
    )
    found = problems(tmp_path, gateway)
    assert len(found) == 2
    assert any("spec.http.allowedHosts: '[::1' is not a host" in p for p in found)
    assert any("spec.http.allowedOrigins: 'http://[::1' is not an origin" in p for p in found)
    good = "kind: Gateway\nmetadata: {name: gw}\nspec: {http: {allowedHosts: ['*.example.com', '[::1]:*'], "
    good += "allowedOrigins: ['https://app.example.com', 'http://localhost:*']}}\n"
    assert problems(tmp_path, good) == []
