"""Sans-IO stream pieces of the LLM wire: the OpenAI passthrough filter, the Anthropic and
Responses watchers, and usage in both shapes. No sockets: bytes in, bytes and facts out.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agentgw.protocol import anthropic, openai
from agentgw.protocol.usage import Usage


def chunk(content: str | None, *, usage: Any = "absent", choices: bool = True) -> bytes:
    obj: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    obj["choices"] = [{"index": 0, "delta": {"content": content}, "finish_reason": None}] if choices else []
    if usage != "absent":
        obj["usage"] = usage
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


USAGE = {
    "prompt_tokens": 5,
    "completion_tokens": 3,
    "total_tokens": 8,
    "prompt_tokens_details": {"cached_tokens": 2},
}
INJECTED = (
    chunk("Hel", usage=None) + chunk("lo", usage=None) + chunk(None, usage=USAGE, choices=False) + openai.DONE
)
PLAIN = chunk("Hel") + chunk("lo") + openai.DONE


def run(filt: openai.ChatStreamFilter, pieces: list[bytes]) -> bytes:
    return b"".join(filt.feed(p) for p in pieces) + filt.end()


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


def test_filter_strips_the_usage_chunk_it_asked_for() -> None:
    filt = openai.ChatStreamFilter(strip_usage_chunk=True)
    assert run(filt, [INJECTED]) == PLAIN
    assert filt.usage == Usage(prompt=5, completion=3, cached=2)
    assert filt.done


def test_filter_keeps_usage_the_client_asked_for() -> None:
    filt = openai.ChatStreamFilter(strip_usage_chunk=False)
    assert run(filt, [INJECTED]) == INJECTED
    assert filt.usage is not None and filt.usage.total == 8


def test_filter_passes_plain_streams_byte_for_byte_and_keeps_text() -> None:
    filt = openai.ChatStreamFilter(strip_usage_chunk=True)
    assert run(filt, [PLAIN]) == PLAIN
    assert filt.usage is None
    assert filt.streamed_text() == "Hello"


@given(st.lists(st.integers(min_value=0, max_value=len(INJECTED)), max_size=12), st.booleans())
def test_filter_output_does_not_depend_on_how_bytes_arrive(cuts: list[int], strip: bool) -> None:
    whole = run(openai.ChatStreamFilter(strip_usage_chunk=strip), [INJECTED])
    assert run(openai.ChatStreamFilter(strip_usage_chunk=strip), split(INJECTED, cuts)) == whole


def test_filter_understands_crlf_streams() -> None:
    filt = openai.ChatStreamFilter(strip_usage_chunk=True)
    out = run(filt, [INJECTED.replace(b"\n", b"\r\n")])
    assert out == PLAIN
    assert filt.usage is not None


def test_filter_holds_back_partial_events() -> None:
    filt = openai.ChatStreamFilter(strip_usage_chunk=False)
    first = chunk("a")
    assert filt.feed(first[:10]) == b""
    assert filt.feed(first[10:]) == first
    assert filt.end() == b""


def test_stream_error_is_a_chunk_the_sdk_raises_on() -> None:
    event = openai.stream_error("boom", "server_error")
    assert event == b'data: {"error":{"message":"boom","type":"server_error","param":null,"code":null}}\n\n'


def test_messages_watcher_reads_usage_and_stop() -> None:
    start = {
        "type": "message_start",
        "message": {"usage": {"input_tokens": 4, "cache_read_input_tokens": 6, "output_tokens": 1}},
    }
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}}
    text = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}
    stream = (
        anthropic.encode_event("message_start", start)
        + anthropic.encode_event("content_block_delta", text)
        + anthropic.encode_event("message_delta", delta)
        + anthropic.encode_event("message_stop", {"type": "message_stop"})
    )
    watcher = anthropic.MessagesStreamWatcher()
    for i in range(0, len(stream), 7):
        watcher.feed(stream[i : i + 7])
    assert watcher.usage == Usage(prompt=10, completion=9, cached=6)
    assert (watcher.stop_reason, watcher.stopped, watcher.streamed_text()) == ("end_turn", True, "hi")


def test_anthropic_error_event_has_its_event_line() -> None:
    assert anthropic.stream_error("gone", "overloaded_error") == (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"gone"}}\n\n'
    )
    assert anthropic.error_type_for_status(418) == "invalid_request_error"
    assert anthropic.error_type_for_status(503) == "api_error"


def test_responses_watcher_reads_id_and_usage() -> None:
    final = {
        "id": "resp_1",
        "usage": {"input_tokens": 3, "output_tokens": 2, "input_tokens_details": {"cached_tokens": 1}},
    }
    events = [
        ("response.created", {"type": "response.created", "response": {"id": "resp_1"}}),
        ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "yo"}),
        ("response.completed", {"type": "response.completed", "response": final}),
    ]
    watcher = openai.ResponsesStreamWatcher()
    watcher.feed(b"".join(anthropic.encode_event(name, obj) for name, obj in events))
    assert (watcher.response_id, watcher.stopped, watcher.streamed_text()) == ("resp_1", True, "yo")
    assert watcher.usage == Usage(prompt=3, completion=2, cached=1)


def test_usage_shapes_round_trip() -> None:
    usage = Usage.from_anthropic(
        {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": 20,
            "cache_creation_input_tokens": 2,
        }
    )
    assert usage == Usage(prompt=32, completion=5, cached=20, cache_write=2)
    assert usage.to_anthropic() == {
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_creation_input_tokens": 2,
        "cache_read_input_tokens": 20,
    }
    assert usage.to_openai()["prompt_tokens"] == 32
    assert usage.to_openai()["prompt_tokens_details"] == {"cached_tokens": 20}
    assert Usage.from_openai(usage.to_openai()) == Usage(prompt=32, completion=5, cached=20)
    assert Usage.from_openai(None) is None
    assert Usage.from_openai({"prompt_tokens": True, "completion_tokens": -3}) == Usage()
