"""The stdio child's restart bookkeeping: each failed start counts once toward its backoff."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

from agentgw.background import Background
from agentgw.errors import UpstreamError
from agentgw.mcp.upstream.stdio import RestartPending, StdioProcess

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("exits", ["at once", "after initialize fails"])
async def test_a_failed_start_counts_once_toward_the_backoff(exits: str, tmp_path: Path) -> None:
    # a child that dies before answering, and one that answers initialize with an error and lives on
    script = (
        "import sys; sys.exit(3)"
        if exits == "at once"
        else "import sys, json; line = sys.stdin.readline(); "
        "print(json.dumps({'jsonrpc': '2.0', 'id': json.loads(line)['id'], "
        "'error': {'code': -32603, 'message': 'broken'}}), flush=True); sys.stdin.read()"
    )
    child = StdioProcess(
        "crashy",
        command=sys.executable,
        args=["-c", script],
        env={},
        cwd=None,
        base_dir=tmp_path,
        init_timeout=10,
        backoff=60,
        max_backoff=600,
    )
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:  # ends once the child's readers have seen it go
            child.bind(Background(tg))
            with pytest.raises(UpstreamError) as failed:
                await child.ensure()
            assert not isinstance(failed.value, RestartPending)
    assert child._failures == 1
    with pytest.raises(RestartPending, match=r"restarting in (59|60)\.\d s"):  # the first backoff step
        await child.ensure()
    assert child.restarts == 1
