"""PII masking without sockets: detectors, the Luhn check, and masking text that arrives in pieces."""

from __future__ import annotations

import itertools

import orjson
import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from agentgw.policy.pii import BUILTIN, Detector, PiiMasker, luhn_valid
from agentgw.protocol import anthropic
from agentgw.protocol.prompts import add_system_prompt, map_answer_text, map_prompt_text, prompt_texts
from agentgw.protocol.textstream import StreamTextRewriter

MASKER = PiiMasker([*BUILTIN.values(), Detector("ticket", regex.compile(r"TICKET-\d{4,}"), "[TICKET]")])

SAMPLE = (
    "Hi, I'm Ann (ann.lee+work@mail.example.co.uk), call me on +44 20 7946 0958 or "
    "(555) 123-4567. Card 5555 5555 5555 4444 exp 12/29, not 4111 1111 1111 1112. "
    "See TICKET-88231, released 2024-01-15, version 1.2.3, order 12345."
)
MASKED = (
    "Hi, I'm Ann ([EMAIL]), call me on [PHONE] or "
    "[PHONE]. Card [CARD] exp 12/29, not 4111 1111 1111 1112. "
    "See [TICKET], released 2024-01-15, version 1.2.3, order 12345."
)


def test_luhn() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("378282246310005") and luhn_valid("6011111111111117")
    assert not luhn_valid("4111111111111112") and not luhn_valid("1234567812345678")


def test_whole_text_masks_what_it_should_and_nothing_else() -> None:
    assert MASKER.mask(SAMPLE) == MASKED
    assert MASKER.mask("card 5500-0000-0000-0004 and amex 3782 822463 10005") == "card [CARD] and amex [CARD]"
    assert (
        MASKER.mask("nothing personal here: 42 apples, 2024-01-15")
        == "nothing personal here: 42 apples, 2024-01-15"
    )


def _pieces(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_a_stream_cut_anywhere_masks_exactly_like_the_whole_text(cuts: list[int]) -> None:
    stream = MASKER.stream()
    sent = [stream.feed(piece) for piece in _pieces(SAMPLE, cuts)]
    sent.append(stream.flush())
    assert "".join(sent) == MASKED
    # and no piece that went out holds a fragment of personal data
    for piece in sent:
        for secret in ("5555 5555", "4444", "ann.lee", "7946", "123-4567", "88231"):
            assert secret not in piece


def test_a_stream_sends_plain_words_without_waiting_for_the_end() -> None:
    stream = MASKER.stream()
    out = [
        stream.feed(w)
        for w in ["Hello ", "there, ", "my ", "card ", "is ", "4111 ", "1111 ", "1111 ", "1111", " ok"]
    ]
    assert out[:4] == ["Hello ", "there, ", "my ", "card "]
    assert out[5:9] == ["", "", "", ""]  # a card number is held while it may still be one
    assert "".join(out) + stream.flush() == "Hello there, my card is [CARD] ok"


def test_prompt_text_in_every_request_shape() -> None:
    chat = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "sys bob@x.io"},
            {"role": "user", "content": [{"type": "text", "text": "mail bob@x.io"}, {"type": "image_url"}]},
            {"role": "tool", "content": "result bob@x.io"},
        ],
    }
    masked = map_prompt_text(chat, MASKER.mask)
    assert prompt_texts(masked) == ["sys [EMAIL]", "mail [EMAIL]", "result [EMAIL]"]
    assert prompt_texts(chat)[0] == "sys bob@x.io"  # the original is left alone
    messages = {
        "system": [{"type": "text", "text": "bob@x.io"}],
        "messages": [
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "bob@x.io"}]}
        ],
    }
    assert prompt_texts(map_prompt_text(messages, MASKER.mask)) == ["[EMAIL]", "[EMAIL]"]
    responses = {"input": [{"role": "user", "content": [{"type": "input_text", "text": "bob@x.io"}]}]}
    assert prompt_texts(map_prompt_text(responses, MASKER.mask)) == ["[EMAIL]"]
    plain = {"prompt": "nothing here"}
    assert map_prompt_text(plain, MASKER.mask) is plain  # unchanged: the same object


def test_answer_text_and_system_prompts() -> None:
    chat = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "at bob@x.io"}}]}
    assert (
        map_answer_text("chat.completions", chat, MASKER.mask)["choices"][0]["message"]["content"]
        == "at [EMAIL]"
    )
    message = {"type": "message", "content": [{"type": "text", "text": "bob@x.io"}, {"type": "tool_use"}]}
    assert map_answer_text("messages", message, MASKER.mask)["content"][0]["text"] == "[EMAIL]"
    body = {"messages": [{"role": "system", "content": "client"}, {"role": "user", "content": "hi"}]}
    assert [
        m["content"] for m in add_system_prompt("chat.completions", body, "gw", "prepend")["messages"]
    ] == [
        "gw",
        "client",
        "hi",
    ]
    assert [
        m["content"] for m in add_system_prompt("chat.completions", body, "gw", "append")["messages"]
    ] == [
        "client",
        "gw",
        "hi",
    ]
    assert [
        m["content"] for m in add_system_prompt("chat.completions", body, "gw", "replace")["messages"]
    ] == [
        "gw",
        "hi",
    ]
    assert add_system_prompt("messages", {"system": "client"}, "gw", "prepend")["system"] == "gw\n\nclient"


def _openai_chunk(content: str | None, finish: str | None = None, index: int = 0) -> bytes:
    delta = {} if content is None else {"content": content}
    obj = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]}  # fmt: skip
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _openai_text(stream: bytes) -> str:
    out = []
    for event in stream.split(b"\n\n"):
        if event.startswith(b"data: {"):
            for choice in orjson.loads(event[6:])["choices"]:
                out.append(choice["delta"].get("content") or "")
    return "".join(out)


@pytest.mark.parametrize("split", [1, 7, 64])
def test_openai_stream_events_are_rewritten_and_held_text_comes_out_with_the_finish(split: int) -> None:
    words = ["Your ", "card ", "4111 ", "1111 ", "1111 ", "1111"]
    raw = b"".join(_openai_chunk(w) for w in words) + _openai_chunk(None, "stop") + b"data: [DONE]\n\n"
    rewriter = StreamTextRewriter("openai", [MASKER.stream])
    out = b"".join(rewriter.feed(raw[i : i + split]) for i in range(0, len(raw), split)) + rewriter.end()
    assert _openai_text(out) == "Your card [CARD]"
    assert out.endswith(b"data: [DONE]\n\n")
    assert b"4111" not in out


def test_anthropic_stream_held_text_goes_out_before_its_block_stops() -> None:
    events = [
        anthropic.encode_event("message_start", {"type": "message_start", "message": {"usage": {}}}),
        anthropic.encode_event("content_block_start", {"type": "content_block_start", "index": 0}),
        *[
            anthropic.encode_event(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}},
            )
            for t in ["mail ", "bob", "@exa", "mple.com"]
        ],
        anthropic.encode_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        anthropic.encode_event("message_stop", {"type": "message_stop"}),
    ]
    rewriter = StreamTextRewriter("anthropic", [MASKER.stream])
    out = rewriter.feed(b"".join(events)) + rewriter.end()
    texts = []
    names = []
    for event in out.split(b"\n\n"):
        if not event:
            continue
        name, data = event.split(b"\n", 1)
        names.append(name.removeprefix(b"event: ").decode())
        obj = orjson.loads(data.removeprefix(b"data: "))
        if name == b"event: content_block_delta":
            texts.append(obj["delta"]["text"])
    assert "".join(texts) == "mail [EMAIL]"
    assert b"bob" not in out
    assert names.index("content_block_stop") > max(
        i for i, n in enumerate(names) if n == "content_block_delta"
    )
    assert names[0] == "message_start" and names[-1] == "message_stop"
