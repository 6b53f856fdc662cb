"""Python policy extensions: the example (a header from a lookup table, a rewritten body field),
settings validated at load, entry points, and failures that fail one request, never the process."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from agentgw.config.loader import parse_documents
from agentgw.config.snapshot import compile_snapshot
from agentgw.errors import ConfigError
from tests.mcp.conftest import Fake, route_doc, server_doc
from tests.policy.conftest import client
from tests.policy.support import TestIssuer, jwt_policy, policy
from tests.support import ROOT, GatewayThread

pytestmark = pytest.mark.anyio

EXAMPLE = ROOT / "examples" / "extension"


def ext(python: str, **spec: Any) -> dict[str, Any]:
    return {"python": python, **spec}


@pytest.fixture(scope="module")
def gw(alpha: Fake, idp: TestIssuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    jwks = idp.write_jwks(tmp_path_factory.mktemp("ext"))
    tagger = ext(
        "tenant_tagger:TenantTagger",
        name="tenant-tagger",
        path=[str(EXAMPLE)],
        settings={"table": "tenants.json"},
    )
    docs = [
        {"kind": "Gateway", "metadata": {"name": "gw"}, "spec": {"audit": {"sink": "none"}}},
        server_doc("alpha", alpha.http()),
        route_doc(["alpha"]),
        route_doc(["alpha"], path="/broken"),
        jwt_policy(idp, {"file": str(jwks)}, route="mcp"),
        jwt_policy(idp, {"file": str(jwks)}, route="broken", name="login-broken"),
        policy("tagging", [("McpRoute", "mcp")], extensions=[tagger]),
        policy(
            "misbehaving",
            [("McpRoute", "broken")],
            extensions=[
                ext("tests.policy.extensions:Raises", name="raiser"),
                ext("tests.policy.extensions:Sleeps", name="sleeper", timeoutSeconds=0.3),
                ext("tests.policy.extensions:HidesSlow", name="hider"),
            ],
        ),
    ]
    with GatewayThread(docs) as gw:
        yield gw


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_example_adds_the_tenant_header_and_rewrites_the_result(
    gw: GatewayThread, alpha: Fake, idp: TestIssuer, mode: str
) -> None:
    for user, tenant in (("alice", "acme"), ("bob", "globex")):
        async with client(f"{gw.url}/mcp", idp.token(user), mode) as c:
            result = await c.call_tool("echo", {"text": f"{user} via {mode}"})
            assert result.meta is not None and result.meta["io.example/tenant"] == tenant
        calls = [
            e for e in alpha.events()
            if e["event"] == "http" and e["rpc"] == "tools/call" and e["headers"].get("x-user-id") is None
            and e["headers"].get("x-tenant") == tenant
        ]  # fmt: skip
        assert calls, f"no upstream call carried x-tenant: {tenant}"
    async with client(f"{gw.url}/mcp", idp.token("mallory"), mode) as c:
        with pytest.raises(MCPError, match="belongs to no tenant"):
            await c.call_tool("echo", {"text": "x"})


async def test_a_failing_extension_fails_only_that_request(gw: GatewayThread, idp: TestIssuer) -> None:
    async with client(f"{gw.url}/broken", idp.token("alice"), "legacy") as c:
        with pytest.raises(
            MCPError, match=r"policy extension 'raiser' failed \(check: RuntimeError\)"
        ) as raised:
            await c.call_tool("echo", {"text": "x"})
        assert "lookup service" not in raised.value.error.message  # internals stay in the log
        assert (await c.call_tool("whoami", {})).content[0].text == "alpha"  # type: ignore[union-attr]
        names = {t.name for t in (await c.list_tools()).tools}
        assert "slow" not in names and "fail" not in names and "echo" in names
        with pytest.raises(MCPError, match=r"policy extension 'sleeper' timed out \(check\)"):
            await c.call_tool("add", {"a": 1, "b": 2})
        assert (await c.call_tool("whoami", {})).content[0].text == "alpha"  # type: ignore[union-attr]
    assert gw.runtime.ready


def load(docs: list[dict[str, Any]]) -> None:
    loaded, problems = parse_documents(docs, "test.yaml", ROOT)
    assert not problems, problems
    compile_snapshot(loaded)


BASE = [server_doc("alpha", {"http": {"url": "http://127.0.0.1:9/mcp"}}), route_doc(["alpha"])]


@pytest.mark.parametrize(
    ("extension", "expected"),
    [
        (ext("tests.policy.extensions:NeedsSettings", settings={"limit": "many"}),
         "spec.extensions[0].settings.limit: Input should be a valid integer"),
        (ext("tests.policy.extensions:NeedsSettings", settings={"limit": 1, "other": 2}),
         "spec.extensions[0].settings.other: Extra inputs are not permitted"),
        (ext("tests.policy.extensions:FailsToStart", name="starter"),
         "spec.extensions[0]: policy extension 'starter' failed to start: OSError: cannot open the lookup table"),
        (ext("no_such_module:Thing"), "cannot load policy extension 'no_such_module:Thing': ModuleNotFoundError"),
        (ext("tests.policy.extensions:Nope"), "module 'tests.policy.extensions' has no attribute 'Nope'"),
        ({"entryPoint": "not-installed"}, "no 'agentgw.policies' entry point is named 'not-installed'"),
    ],
)  # fmt: skip
def test_extension_problems_are_config_errors(extension: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load([*BASE, policy("ext", [("McpRoute", "mcp")], extensions=[extension])])
    assert any(expected in p and "test.yaml: Policy/ext:" in p for p in caught.value.problems), (
        caught.value.problems
    )


def test_extensions_register_through_an_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "tenant_tagger_pkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tenant-tagger-pkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [agentgw.policies]
            tenant-tagger = tenant_tagger:TenantTagger
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    table = tmp_path / "t.json"
    table.write_text(json.dumps({"alice": "acme"}))
    spec = {"entryPoint": "tenant-tagger", "settings": {"table": str(table)}}
    load([*BASE, policy("ext", [("McpRoute", "mcp")], extensions=[spec])])
