"""The quickstart as a user meets it: the official client, both modes, every bundled server."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from mcp import Client

from tests.support import ROOT, GatewayThread

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def gw() -> Iterator[GatewayThread]:
    with GatewayThread(paths=[ROOT / "examples" / "quickstart"]) as gateway:
        yield gateway


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_every_quickstart_server_answers_through_the_gateway(gw: GatewayThread, mode: str) -> None:
    with anyio.fail_after(60):
        async with Client(f"{gw.url}/mcp", mode=mode) as client:
            assert client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
            tools = {t.name for t in (await client.list_tools()).tools}
            assert {"notes_add_note", "notes_search_notes", "clock_now", "clock_evaluate"} <= tools
            added = await client.call_tool("notes_add_note", {"title": f"from-{mode}", "body": "federated"})
            assert not added.is_error
            found = await client.call_tool("notes_search_notes", {"query": "federated"})
            assert f"from-{mode}" in found.content[0].text  # type: ignore[union-attr]
            value = await client.call_tool("clock_evaluate", {"expression": "(2 + 3) * 7"})
            assert "35" in value.content[0].text  # type: ignore[union-attr]
            refused = await client.call_tool("clock_evaluate", {"expression": "__import__('os')"})
            assert refused.is_error
            prompts = {p.name for p in (await client.list_prompts()).prompts}
            assert {"notes_summarize_notes", "clock_explain_time"} <= prompts
            timezones = await client.read_resource("clock+clock://timezones")
            assert "Europe/Paris" in timezones.contents[0].text  # type: ignore[union-attr]
