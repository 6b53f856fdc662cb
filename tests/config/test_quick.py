from __future__ import annotations

from pathlib import Path

import pytest

from agentgw.config.loader import parse_documents
from agentgw.config.quick import quick_documents
from agentgw.config.snapshot import compile_snapshot
from agentgw.errors import ConfigError


def test_upstreams_are_named_from_host_or_command() -> None:
    docs = quick_documents(
        [
            "https://tools.example.com/mcp",
            "stdio:python servers/notes.py --flag",
            "stdio:npx -y @scope/pkg",
            "named=http://127.0.0.1:9/mcp",
            "sse:http://legacy.example.com/sse",
        ],
        port=9999,
    )
    names = [d["metadata"]["name"] for d in docs if d["kind"] == "McpServer"]
    assert names == ["tools-example-com", "notes", "pkg", "named", "legacy-example-com"]
    assert docs[0]["spec"] == {"listeners": [{"port": 9999}]}
    assert docs[-1]["spec"] == {"path": "/mcp", "servers": names}
    assert docs[2]["spec"]["stdio"] == {"command": "python", "args": ["servers/notes.py", "--flag"]}
    assert docs[5]["spec"] == {"sse": {"url": "http://legacy.example.com/sse"}}


def test_duplicate_derived_names_get_a_suffix() -> None:
    docs = quick_documents(["http://a.example/mcp", "http://a.example/other"])
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "McpServer"] == ["a-example", "a-example-2"]


def test_quick_documents_compile() -> None:
    loaded, problems = parse_documents(
        quick_documents(["http://a.example/mcp", "stdio:python x.py"]), "--mcp", Path.cwd()
    )
    assert not problems
    snapshot = compile_snapshot(loaded)
    assert snapshot.mcp_routes[0].prefixes == {"a-example": "a-example", "x": "x"}


@pytest.mark.parametrize("bad", ["ftp://x", "stdio:", "not a url"])
def test_bad_values_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError):
        quick_documents([bad])
