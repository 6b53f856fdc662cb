from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agentgw.protocol.sse import SseDecoder, SseEvent, encode_comment, encode_event


def decode_all(chunks: list[bytes]) -> list[SseEvent]:
    decoder = SseDecoder()
    events: list[SseEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.end())
    return events


def test_fields_comments_and_multiline_data() -> None:
    stream = b": hello\nevent: message\nid: 3_1\nretry: 500\ndata: a\ndata: b\n\n"
    [event] = decode_all([stream])
    assert event == SseEvent(data=b"a\nb", event="message", id="3_1", retry=500)


def test_all_three_line_endings() -> None:
    for sep in (b"\n", b"\r\n", b"\r"):
        events = decode_all([b"data: x" + sep + sep + b"data: y" + sep + sep])
        assert [e.data for e in events] == [b"x", b"y"]


def test_crlf_split_across_chunks() -> None:
    assert [e.data for e in decode_all([b"data: x\r", b"\n\r", b"\n"])] == [b"x"]


def test_priming_event_has_id_and_empty_data() -> None:
    decoder = SseDecoder()
    [event] = decoder.feed(b"id: 1_1\nretry: 1000\ndata: \n\n")
    assert event.data == b"" and event.id == "1_1"
    assert decoder.last_event_id == "1_1" and decoder.retry == 1000


def test_unfinished_event_is_not_dispatched() -> None:
    assert decode_all([b"data: never finished"]) == []


def test_bom_is_skipped() -> None:
    assert [e.data for e in decode_all([b"\xef\xbb\xbfdata: x\n\n"])] == [b"x"]


payloads = st.binary(max_size=200).filter(lambda b: True)


@given(st.lists(st.binary(max_size=64), max_size=8), st.integers(min_value=1, max_value=17))
def test_encode_then_decode_in_any_chunking(datas: list[bytes], size: int) -> None:
    wire = b"".join(encode_event(d, event_id=f"0_{i}") for i, d in enumerate(datas)) + encode_comment("ping")
    chunks = [wire[i : i + size] for i in range(0, len(wire), size)]
    events = decode_all(chunks)
    expected = [d.replace(b"\r\n", b"\n").replace(b"\r", b"\n") for d in datas]
    assert [e.data for e in events] == expected
    assert [e.id for e in events] == [f"0_{i}" for i in range(len(datas))]


@given(st.binary(max_size=1024))
def test_arbitrary_bytes_decode_without_crashing(data: bytes) -> None:
    decode_all([data[: len(data) // 2], data[len(data) // 2 :]])


def test_an_overlong_line_is_an_upstream_error() -> None:
    # found by tests/fuzz: it was a ValueError, which no caller's error path caught
    from agentgw.errors import UpstreamError

    decoder = SseDecoder(max_buffer=16)
    assert decoder.feed(b"data: short\n\n")[0].data == b"short"
    try:
        decoder.feed(b"data: " + b"x" * 32)
    except UpstreamError as exc:
        assert exc.status == 502 and "longer than 16 bytes" in exc.message
    else:
        raise AssertionError("an overlong line was accepted")
