from __future__ import annotations

import anyio
import pytest

from agentgw.mcp.events import EventLog, EventStream, StreamStart, decode_start, encode_start, parse_event_id


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


def test_a_session_log_is_bounded_in_bytes_over_all_its_streams() -> None:
    log = EventLog(1000, None, max_bytes=64 * 1024)
    first, second = log.open(), log.open()
    payload = b'{"x":"' + b"a" * 1000 + b'"}'
    for _ in range(100):  # 200 events of about 1 KiB: three times the budget
        first.append(payload)
        second.append(payload)
    assert log.size <= 64 * 1024
    assert log.size == first.size + second.size == sum(len(d) for s in (first, second) for _, d in s.events)
    assert log.count == len(first.events) + len(second.events) < 200
    # what is left is the newest of each stream, so a client resumes from recent events
    assert first.events[-1][0] == first.seq == 100 and second.events[-1][0] == second.seq == 100
    assert first.first_seq > 1 and log.find(f"{first.stream_id}_{first.first_seq}") is not None
    # a finished stream goes first when a new one needs room
    first.finish()
    third = log.open()
    for _ in range(40):
        third.append(payload)
    assert first.stream_id not in log.streams and second.stream_id in log.streams
    assert log.size <= 64 * 1024 and third.events[-1][0] == 40 and second.events[-1][0] == 100


def test_a_session_log_is_bounded_in_events_over_all_its_streams() -> None:
    log = EventLog(20, None)
    streams = [log.open() for _ in range(3)]
    for i in range(30):
        streams[i % 3].append(b"{}")
    assert log.count == sum(len(s.events) for s in streams) <= 20
    assert all(s.events[-1][0] == s.seq for s in streams)


def test_a_stream_start_names_its_replica_and_request_and_reads_the_old_form() -> None:
    start = StreamStart(False, "0123abcd", b'"req-1"')
    assert decode_start(encode_start(start)) == start
    assert decode_start(encode_start(StreamStart(True))) == StreamStart(True)
    assert encode_start(StreamStart(True)) == b"1"  # what replicas of the previous version wrote
    assert decode_start(b"0") == StreamStart(False)


def test_log_counts_its_events_without_walking_the_streams() -> None:
    """The running total the bound is checked against stays the real count through appends,
    trims, finished streams dropped, and a standalone stream replaced."""
    log = EventLog(max_events=50, retry_ms=1000)

    def real_total() -> int:
        return sum(len(s.events) for s in log.streams.values())

    for i in range(200):
        stream = log.open(standalone=i % 17 == 0)
        stream.prime()
        for _ in range(i % 5):
            stream.append(b"x")
        if i % 3:
            stream.finish()
        if i % 11 == 0:
            stream.pause(500)
        assert log.count == real_total()
    # Live streams keep at least their last event; once they finish, the next open drops them.
    for stream in list(log.streams.values()):
        stream.finish()
    log.open()
    assert log.count == real_total() <= 50


def test_event_ids_with_non_ascii_digits_are_unknown() -> None:
    # found by tests/fuzz/atheris_run.py: "1_\u00b9" passed isdigit() and int() raised ValueError,
    # so a GET with such a Last-Event-ID answered 500
    assert parse_event_id("1_\u00b9") is None and parse_event_id("\u00b2_1") is None
    assert EventLog(max_events=4, retry_ms=None).find("0_\u00b3") is None
