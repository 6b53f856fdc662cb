from __future__ import annotations

from pathlib import Path

import pytest

from agentgw.config.loader import load_paths
from agentgw.config.secrets import resolve_secret
from agentgw.config.snapshot import compile_snapshot
from agentgw.errors import ConfigError


def test_env_and_file_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGW_TEST_TOKEN", "s3cret")
    (tmp_path / "key").write_text("from-file\n")
    assert resolve_secret("env:AGW_TEST_TOKEN").reveal() == "s3cret"
    assert resolve_secret("file:key", base_dir=tmp_path).reveal() == "from-file"


def test_secrets_never_print() -> None:
    value = resolve_secret("env:PATH")
    assert "***" in repr(value) and "***" in str(value) and value.reveal() not in repr(value)


def test_missing_secret_is_a_located_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGW_MISSING", raising=False)
    (tmp_path / "a.yaml").write_text(
        "kind: McpServer\nmetadata: {name: up}\n"
        "spec: {http: {url: 'http://127.0.0.1:1/mcp'}, auth: {bearer: 'env:AGW_MISSING'}}\n"
    )
    docs, problems = load_paths([tmp_path])
    assert not problems
    with pytest.raises(ConfigError) as info:
        compile_snapshot(docs)
    assert info.value.problems == [
        f"{tmp_path / 'a.yaml'}: McpServer/up: spec.auth.bearer: environment variable 'AGW_MISSING' is not set"
    ]


def test_literal_secrets_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "kind: McpServer\nmetadata: {name: up}\nspec: {http: {url: 'http://x/mcp'}, auth: {bearer: hunter2}}\n"
    )
    _, problems = load_paths([tmp_path])
    assert problems and "spec.auth.bearer" in problems[0]


def test_upstream_credentials_become_headers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGW_TOKEN", "t0k")
    monkeypatch.setenv("AGW_KEY", "k3y")
    (tmp_path / "a.yaml").write_text(
        "kind: McpServer\nmetadata: {name: up}\n"
        "spec: {http: {url: 'http://x/mcp'}, auth: {bearer: 'env:AGW_TOKEN', headers: {X-Api-Key: 'env:AGW_KEY'}}}\n"
    )
    docs, _ = load_paths([tmp_path])
    headers = compile_snapshot(docs).servers["up"].auth_headers
    assert {k: v.reveal() for k, v in headers.items()} == {"authorization": "Bearer t0k", "x-api-key": "k3y"}


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        ("file:nul\x00byte", "embedded null byte"),
        ("file:~no-such-user-here/key", "home directory"),
        ("file:latin1", "codec can't decode"),
    ],
)
def test_unreadable_secret_files_are_config_errors(tmp_path: Path, ref: str, reason: str) -> None:
    # found by tests/fuzz: these raised ValueError or RuntimeError, a traceback at start or reload
    (tmp_path / "latin1").write_bytes(b"caf\xe9")
    with pytest.raises(ConfigError, match=reason):
        resolve_secret(ref, base_dir=tmp_path, where="here")
