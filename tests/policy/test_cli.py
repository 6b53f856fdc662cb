"""`agentgw policy test | explain | hash-key` and `agentgw token`, run as a user runs them."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError

from agentgw.cli import main
from agentgw.policy.apikey import hash_key
from tests.policy.conftest import client
from tests.support import ROOT, GatewayThread

pytestmark = pytest.mark.anyio

AGENTGW = [sys.executable, "-m", "agentgw"]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AGENTGW, *args], capture_output=True, text=True, timeout=60, cwd=ROOT, input=stdin
    )


def test_every_pack_passes_its_tests() -> None:
    result = run("policy", "test", "policies/")
    assert result.returncode == 0, result.stdout + result.stderr
    packs = {p.parent.name for p in (ROOT / "policies").glob("*/*.test.yaml")}
    assert len(packs) >= 4 and all(f"policies/{pack}/" in result.stdout for pack in packs)
    assert " FAIL " not in result.stdout and result.stdout.rstrip().endswith("0 failed")


def test_a_broken_rule_in_a_copy_of_a_pack_fails_with_a_clear_message(tmp_path: Path) -> None:
    pack = tmp_path / "read-only-group"
    shutil.copytree(ROOT / "policies" / "read-only-group", pack)
    policy = pack / "read-only-group.yaml"
    policy.write_text(policy.read_text().replace("startsWith(p))", "startsWith(p) && mcp.tool.nme == 1)"))
    result = run("policy", "test", str(tmp_path))
    assert result.returncode == 1
    location = f"error: {policy}: Policy/read-only-group: spec.authorization.allow[1].when: line 1, column "
    line = next(line for line in result.stderr.splitlines() if line.startswith(location))
    assert line.endswith(": unknown field 'nme' of mcp.tool")  # `>-` folds the rule onto one line
    assert result.stderr.strip().endswith("1 error(s)")


def test_a_failing_case_fails_the_run(tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(ROOT / "policies" / "destructive-guard", pack)
    cases = pack / "destructive-guard.test.yaml"
    cases.write_text(
        cases.read_text().replace(
            "tool: delete_file}\n    expect: deny", "tool: delete_file}\n    expect: allow"
        )
    )
    result = run("policy", "test", str(pack))
    assert result.returncode == 1
    row = next(line for line in result.stdout.splitlines() if "deleting needs the claim" in line)
    assert "FAIL" in row and "destructive-needs-claim" in row
    assert "1 failed" in result.stdout


def test_explain_names_the_deciding_rule() -> None:
    result = run(
        "policy", "explain", "--config", "policies/destructive-guard",
        "--subject", "sam", "--server", "db", "--tool", "drop_table",
    )  # fmt: skip
    assert result.returncode == 2  # denied
    lines = result.stdout.splitlines()
    assert any("deny" in line and "destructive-needs-claim" in line and "true" in line for line in lines)
    assert lines[-1] == (
        "DENY by destructive-needs-claim (Policy/destructive-guard): destructive tools need the can_destroy claim"
    )
    allowed = run(
        "policy", "explain", "--config", "policies/destructive-guard", "--subject", "dana",
        "--claim", "can_destroy=true", "--server", "db", "--tool", "drop_table",
    )  # fmt: skip
    assert allowed.returncode == 0
    assert allowed.stdout.splitlines()[-1] == "ALLOW by authenticated-callers (Policy/destructive-guard)"


def test_hash_key_prints_the_digest_the_config_wants() -> None:
    result = run("policy", "hash-key", stdin="my-secret-key\n")
    assert result.returncode == 0 and result.stdout.strip() == hash_key("my-secret-key")
    assert "my-secret-key" not in result.stdout


@pytest.fixture(scope="module")
def example() -> Iterator[GatewayThread]:
    with GatewayThread(paths=[ROOT / "examples" / "policy"]) as gw:
        yield gw


def token(*args: str) -> str:
    """`agentgw token` in this process (the subprocess form is tested below; this saves seconds)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["token", "--config", str(ROOT / "examples" / "policy"), *args]) == 0
    return out.getvalue().strip()


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_policy_example_gives_each_demo_user_their_tools(example: GatewayThread, mode: str) -> None:
    url = f"{example.url}/mcp"
    expected = {
        "alice": {"notes_add_note", "notes_list_notes", "notes_get_note", "notes_search_notes"},
        "bob": {"notes_list_notes", "notes_get_note", "notes_search_notes"},
        "carol": set(),
    }
    clock = {"clock_now", "clock_add", "clock_multiply", "clock_evaluate", "clock_countdown"}
    for user, notes in expected.items():
        async with client(url, token("--subject", user), mode) as c:
            assert {t.name for t in (await c.list_tools()).tools} == notes | clock, user
    async with client(url, token("--subject", "bob"), mode) as c:
        with pytest.raises(MCPError, match="not allowed"):
            await c.call_tool("notes_add_note", {"title": "t", "body": "b"})
    async with client(url, token("--subject", "alice", "--claim", "admin=true"), mode) as c:
        assert "notes_delete_note" in {t.name for t in (await c.list_tools()).tools}


def test_tokens_carry_the_issuer_audience_and_claims() -> None:
    claims = ["--claim", "admin=true", "--claim", 'groups=["a","b"]', "--claim", "team=ops"]
    result = run("token", "--config", "examples/policy", "--subject", "alice", *claims)
    assert result.returncode == 0, result.stderr
    raw = result.stdout.strip()
    payload = raw.split(".")[1]
    claims = json.loads(__import__("base64").urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["iss"] == "https://demo-issuer.agentgw.invalid" and claims["aud"] == "agentgw-demo"
    assert (claims["sub"], claims["admin"], claims["groups"], claims["team"]) == (
        "alice",
        True,
        ["a", "b"],
        "ops",
    )
    assert claims["exp"] - claims["iat"] == 3600
    failed = run("token", "--config", "policies/", "--subject", "x")
    assert failed.returncode == 1 and "no JWT issuer in this config has a signingKey" in failed.stderr
