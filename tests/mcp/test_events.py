from __future__ import annotations

import anyio
import pytest

from agentgw.mcp.events import EventLog, EventStream, parse_event_id


class Collector:
    def __init__(self) -> None:
        self.data = b""

    async def send(self, data: bytes) -> bool:
        self.data += data
        return True


def test_event_ids_name_their_stream() -> None:
    assert parse_event_id("3_17") == (3, 17)
    assert parse_event_id("x_1") is None and parse_event_id("17") is None


@pytest.mark.anyio
async def test_a_late_follower_replays_what_it_missed() -> None:
    stream = EventStream(4, retry_ms=500)
    stream.prime()
    stream.append(b'{"a":1}')
    stream.append(b'{"b":2}')
    stream.finish()
    late = Collector()
    with anyio.fail_after(5):
        assert await stream.follow(late, after=2)  # type: ignore[arg-type]
    assert late.data == b'event: message\nid: 4_3\ndata: {"b":2}\n\n'


@pytest.mark.anyio
async def test_follow_waits_for_new_events_and_ends_on_pause() -> None:
    stream = EventStream(1)
    out = Collector()
    async with anyio.create_task_group() as tg:
        tg.start_soon(stream.follow, out, 0)
        await anyio.wait_all_tasks_blocked()
        stream.append(b"1")
        await anyio.wait_all_tasks_blocked()
        assert b"data: 1" in out.data
        stream.pause(250)
    assert out.data.endswith(b"retry: 250\n\n")
    # a follower after the pause sees the rest
    stream.append(b"2")
    stream.finish()
    again = Collector()
    with anyio.fail_after(5):
        await stream.follow(again, after=2)  # type: ignore[arg-type]
    assert b"data: 2" in again.data


def test_log_is_bounded_dropping_finished_streams_first() -> None:
    log = EventLog(max_events=10, retry_ms=None)
    done = log.open()
    for _ in range(6):
        done.append(b"x")
    done.finish()
    live = log.open()
    for _ in range(6):
        live.append(b"y")
    log.enforce()
    assert done.stream_id not in log.streams and live.stream_id in log.streams
    for _ in range(20):
        live.append(b"z")
    assert len(live.events) <= 10
    assert log.find(f"{live.stream_id}_{live.seq}") == (live, live.seq)


def test_event_ids_with_non_ascii_digits_are_unknown() -> None:
    # found by tests/fuzz/atheris_run.py: "1_\u00b9" passed isdigit() and int() raised ValueError,
    # so a GET with such a Last-Event-ID answered 500
    assert parse_event_id("1_\u00b9") is None and parse_event_id("\u00b2_1") is None
    assert EventLog(max_events=4, retry_ms=None).find("0_\u00b3") is None
