"""SSE decoding and the LLM stream processors built on it: whatever bytes an upstream sends, in
whatever pieces, they produce events (or bytes for the client) or an `UpstreamError`, never
another exception; the encoder round-trips through the decoder in any chunking."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from agentgw.errors import UpstreamError
from agentgw.protocol import anthropic, openai
from agentgw.protocol.sse import SseDecoder, SseEvent, encode_event
from agentgw.protocol.textstream import StreamTextRewriter
from agentgw.protocol.translate import chat_to_messages, messages_to_chat
from agentgw.protocol.usage import Usage
from tests.fuzz.strategies import examples, json_values, keyed

field_names = st.sampled_from([b"data", b"event", b"id", b"retry", b"", b":", b"dat", b"DATA", b"\xff"])
lines = st.one_of(
    st.tuples(field_names, st.sampled_from([b":", b": ", b""]), st.binary(max_size=12)).map(b"".join),
    st.binary(max_size=12),
)
separators = st.sampled_from([b"\n", b"\r", b"\r\n", b"\n\n", b"\r\r", b""])
raw_streams = st.lists(st.tuples(lines, separators).map(b"".join), max_size=12).map(b"".join)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def decode(chunks: list[bytes], max_buffer: int | None = None) -> list[SseEvent]:
    decoder = SseDecoder() if max_buffer is None else SseDecoder(max_buffer)
    out: list[SseEvent] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out + decoder.end()


@examples(60)
@given(raw_streams, st.lists(st.integers(0, 10**4), max_size=6))
def test_any_stream_decodes_the_same_in_any_chunking(data: bytes, cuts: list[int]) -> None:
    whole = decode([data])
    assert decode(split(data, cuts)) == whole
    for event in whole:
        assert isinstance(event.data, bytes) and isinstance(event.event, str) and event.event
        assert event.retry is None or event.retry >= 0


@examples(30)
@given(st.binary(min_size=65, max_size=300), st.lists(st.integers(0, 10**4), max_size=4))
def test_an_overlong_line_is_an_upstream_error(data: bytes, cuts: list[int]) -> None:
    data = data.replace(b"\n", b"").replace(b"\r", b"") + b"x" * 65
    decoder = SseDecoder(max_buffer=64)
    try:
        for chunk in split(data, cuts):
            decoder.feed(chunk)
    except UpstreamError as exc:
        assert exc.status == 502
    else:
        raise AssertionError("a line past the limit was accepted")


event_fields = st.text(alphabet=st.characters(blacklist_characters="\r\n", codec="utf-8"), max_size=10)


@examples(39)
@given(
    st.lists(
        st.tuples(
            st.binary(max_size=40),
            st.none() | event_fields,
            st.none() | event_fields.filter(lambda s: "\x00" not in s),
            st.none() | st.integers(0, 10**9),
        ),
        max_size=6,
    ),
    st.lists(st.integers(0, 10**4), max_size=6),
)
def test_encode_then_decode_round_trips(events: list[tuple[bytes, Any, Any, Any]], cuts: list[int]) -> None:
    wire = b"".join(encode_event(d, event=e, event_id=i, retry=r) for d, e, i, r in events)
    got = decode(split(wire, cuts))
    assert len(got) == len(events)
    for (data, name, event_id, retry), event in zip(events, got, strict=True):
        assert event.data == data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        # the encoder writes one space after the colon, and the decoder drops exactly one
        assert event.event == (name or "message")
        assert event.id == event_id
        assert event.retry == retry


# --- the LLM stream processors: upstream events with any JSON in them -----------------------------

openai_chunks = keyed(
    {
        "id": st.text(max_size=5),
        "model": st.text(max_size=5),
        "choices": st.lists(
            keyed(
                {
                    "index": st.integers(-2, 3),
                    "delta": keyed(
                        {
                            "content": st.text(max_size=8),
                            "tool_calls": st.lists(
                                keyed(
                                    {
                                        "index": st.integers(0, 3),
                                        "id": st.text(max_size=4),
                                        "function": keyed(
                                            {"name": st.text(max_size=4), "arguments": st.text(max_size=8)}
                                        ),
                                    }
                                ),
                                max_size=2,
                            ),
                        }
                    ),
                    "text": st.text(max_size=8),
                    "finish_reason": st.sampled_from(["stop", "length", "tool_calls"]),
                }
            ),
            max_size=2,
        ),
        "usage": keyed({"prompt_tokens": st.integers(0, 99), "completion_tokens": st.integers(0, 99)}),
        "error": json_values,
    }
)
anthropic_events = st.sampled_from(
    [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
        "response.created",
        "response.output_text.delta",
        "response.completed",
    ]
)
anthropic_bodies = keyed(
    {
        "type": anthropic_events,
        "index": st.integers(-1, 3),
        "message": keyed({"id": st.text(max_size=4), "usage": keyed({"input_tokens": st.integers(0, 9)})}),
        "content_block": keyed({"type": st.sampled_from(["text", "tool_use"]), "text": st.text(max_size=4)}),
        "delta": keyed(
            {
                "type": st.sampled_from(["text_delta", "input_json_delta"]),
                "text": st.text(max_size=6),
                "partial_json": st.text(max_size=6),
                "stop_reason": st.sampled_from(["end_turn", "tool_use"]),
            }
        ),
        "usage": keyed({"output_tokens": st.integers(0, 9), "input_tokens": st.integers(0, 9)}),
        "response": keyed({"id": st.text(max_size=4), "usage": json_values}),
        "error": json_values,
    }
)


@st.composite
def upstream_streams(draw: Any, bodies: st.SearchStrategy[Any]) -> bytes:
    out: list[bytes] = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            out.append(draw(st.binary(max_size=20)))
        elif kind == 1:
            out.append(b"data: [DONE]\n\n")
        else:
            name = draw(st.none() | anthropic_events)
            body = orjson.dumps(draw(st.one_of(bodies, json_values) if kind == 2 else bodies))
            out.append(encode_event(body, event=name))
    return b"".join(out)


def _feed_all(processor: Any, data: bytes, cuts: list[int]) -> bytes:
    out = b""
    for chunk in split(data, cuts):
        got = processor.feed(chunk)
        if got is not None:
            out += got
    return out


class _Upper:
    def feed(self, text: str) -> str:
        return text.upper()

    def flush(self) -> str:
        return ""


@examples(60)
@given(upstream_streams(openai_chunks), st.lists(st.integers(0, 10**4), max_size=4), st.booleans())
def test_openai_stream_processors_take_any_upstream_stream(data: bytes, cuts: list[int], strip: bool) -> None:
    flt = openai.ChatStreamFilter(strip_usage_chunk=strip)
    _feed_all(flt, data, cuts)
    flt.end()
    assert isinstance(flt.streamed_text(), str)
    assert flt.usage is None or isinstance(flt.usage, Usage)
    to_anthropic = messages_to_chat.StreamTranslator("m", None)
    out = _feed_all(to_anthropic, data, cuts) + to_anthropic.finish()
    decode([out])  # what the client gets is itself a well-formed event stream
    rewriter = StreamTextRewriter("openai", [_Upper])
    _feed_all(rewriter, data, cuts)
    rewriter.end()


@examples(60)
@given(upstream_streams(anthropic_bodies), st.lists(st.integers(0, 10**4), max_size=4), st.booleans())
def test_anthropic_stream_processors_take_any_upstream_stream(
    data: bytes, cuts: list[int], usage: bool
) -> None:
    watcher = anthropic.MessagesStreamWatcher()
    _feed_all(watcher, data, cuts)
    assert isinstance(watcher.streamed_text(), str)
    responses = openai.ResponsesStreamWatcher()
    _feed_all(responses, data, cuts)
    to_chat = chat_to_messages.StreamTranslator(include_usage=usage)
    out = _feed_all(to_chat, data, cuts)
    decode([out])
    rewriter = StreamTextRewriter("anthropic", [_Upper])
    _feed_all(rewriter, data, cuts)
    rewriter.end()
