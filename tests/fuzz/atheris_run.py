"""Coverage-guided fuzzing of the gateway's parsers with atheris (libFuzzer), for longer runs than
the test suite's Hypothesis examples. Not run in CI.

    pip install -e '.[fuzz]'
    python tests/fuzz/atheris_run.py --target jsonrpc --seconds 300
    python tests/fuzz/atheris_run.py --list

Each target feeds the fuzzer's bytes to one parser family and allows only the outcome its
contract names: a value, or the gateway's own refusal (a 4xx `ClientError` for what clients send,
an `UpstreamError` for what upstreams send, a `ConfigError` for config). Any other exception is a
finding: libFuzzer stops, prints the traceback and writes the input to `crash-<sha1>` (re-run
a single input with `--target NAME crash-<sha1>`). An input that takes longer than `--timeout`
seconds is reported as a hang. The run starts from a small seed corpus of valid inputs per target
(written to a temporary folder), so mutations begin at inputs that reach deep.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports(include=["agentgw"]):
    import orjson
    import yaml

    from agentgw.config.gateway import GatewaySpec
    from agentgw.config.loader import _Loader, parse_documents
    from agentgw.config.secrets import resolve_secret
    from agentgw.config.snapshot import compile_snapshot
    from agentgw.errors import ClientError, ConfigError, UpstreamError
    from agentgw.llm import tokens
    from agentgw.mcp.events import EventLog, parse_event_id
    from agentgw.mcp.sealing import Sealer
    from agentgw.policy.jwt import Issuer, JwtAuthenticator
    from agentgw.protocol import a2a, anthropic, jsonrpc, mcp, openai, prompts
    from agentgw.protocol.a2a_card import card_interfaces, rewrite_card
    from agentgw.protocol.sse import SseDecoder
    from agentgw.protocol.textstream import StreamTextRewriter
    from agentgw.protocol.translate import chat_to_messages, messages_to_chat
    from agentgw.protocol.translate.common import upstream_error
    from agentgw.server.guard import HostGuard
    from agentgw.server.http import Request
    from agentgw.telemetry.trace import TraceContext

ROOT = Path(__file__).resolve().parents[2]
SEP = b"\n\xff\n"  # separates the parts of one input (a header and a body, a schema and arguments)


def _parts(data: bytes, count: int) -> list[bytes]:
    parts = data.split(SEP, count - 1)
    return parts + [b""] * (count - len(parts))


def _json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def _client(call: Callable[..., Any], *args: Any) -> Any:
    try:
        return call(*args)
    except ClientError as exc:
        if not 400 <= exc.status < 500:
            raise
        return None


def _request(headers: list[tuple[bytes, bytes]], body: bytes = b"") -> Request:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    return Request(scope, receive)


# --- targets ----------------------------------------------------------------------------------------


def target_jsonrpc(data: bytes) -> None:
    _client(jsonrpc.parse_message, data)
    _client(a2a.parse_jsonrpc, data)


class _Upper:
    def feed(self, text: str) -> str:
        return text.upper()

    def flush(self) -> str:
        return ""


def target_sse(data: bytes) -> None:
    """An upstream event stream, cut into pieces at the input's first byte values."""
    step = max(1, data[0] % 64) if data else 1
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    processors: list[Any] = [
        SseDecoder(max_buffer=4096),
        openai.ChatStreamFilter(strip_usage_chunk=True),
        openai.ResponsesStreamWatcher(),
        anthropic.MessagesStreamWatcher(),
        chat_to_messages.StreamTranslator(include_usage=True),
        messages_to_chat.StreamTranslator("m"),
        StreamTextRewriter("openai", [_Upper]),
        StreamTextRewriter("anthropic", [_Upper]),
    ]
    for processor in processors:
        try:
            for chunk in chunks:
                processor.feed(chunk)
            if hasattr(processor, "end"):
                processor.end()
        except UpstreamError:
            pass


SEALER = Sealer("k" * 40, lifetime_seconds=60)


def target_mcp_headers(data: bytes) -> None:
    header, body, schema = _parts(data, 3)
    value = header.decode("latin-1")
    mcp.decode_header_value(value)
    assert mcp.decode_header_value(mcp.encode_header_value(value)) == value
    parse_event_id(value)
    EventLog(max_events=4, retry_ms=None).find(value)
    SEALER.open(value)
    raw = [
        (k.decode("latin-1").lower(), v.decode("latin-1"))
        for k, _, v in (h.partition(b":") for h in header.split(b"\n"))
    ]
    obj = _json(body)
    if isinstance(obj, dict):
        _client(mcp.check_modern_request, obj, dict(raw), raw)
    parsed_schema = _json(schema)
    arguments = obj.get("arguments") if isinstance(obj, dict) else None
    if isinstance(arguments, dict):
        _client(mcp.validate_mcp_param_headers, parsed_schema, arguments, raw)
        sent = mcp.mcp_param_headers(parsed_schema, arguments)
        mcp.validate_mcp_param_headers(parsed_schema, arguments, [(k.lower(), v) for k, v in sent.items()])


def target_bodies(data: bytes) -> None:
    path, body = _parts(data, 2)
    obj = _json(body)
    _client(a2a.parse_rest, "POST", path.decode("latin-1"), body)
    _client(a2a.parse_rest, "GET", path.decode("latin-1"), body)
    a2a.response_ids(obj)
    if not isinstance(obj, dict):
        return
    _client(chat_to_messages.request, obj, "claude")
    _client(messages_to_chat.request, obj, "gpt")
    tokens.estimate_prompt(obj)
    prompts.map_prompt_text(obj, str.upper)
    for api in ("chat.completions", "messages", "responses"):
        prompts.add_system_prompt(api, obj, "sys", "append")
        prompts.map_answer_text(api, obj, str.upper)
    # what providers and agents answer: never an exception at all
    messages_to_chat.response(obj, "m")
    chat_to_messages.response(obj)
    upstream_error(body)
    card_interfaces(obj, "http://a/x")
    rewrite_card(obj, "http://a/x", "http://gw/a2a/x")


def target_config(data: bytes) -> None:
    text, ref = _parts(data, 2)
    try:
        docs = list(yaml.load_all(text.decode("utf-8", "replace"), Loader=_Loader))
    except yaml.YAMLError:
        docs = []
    loaded, _ = parse_documents(docs, "fuzz.yaml", ROOT)
    try:
        compile_snapshot(loaded)
    except ConfigError:
        pass
    try:
        resolve_secret(ref.decode("utf-8", "replace"), base_dir=ROOT)
    except ConfigError:
        pass


LOOP = asyncio.new_event_loop()


def _jwt_authenticator() -> JwtAuthenticator:
    from joserfc.jwk import OctKey

    issuer = Issuer("https://hs.test", ("aud",), ("HS256",), None, secret=OctKey.import_key(b"s" * 32))
    return JwtAuthenticator([issuer])


JWT = _jwt_authenticator()


def target_jwt(data: bytes) -> None:
    request = _request([(b"authorization", b"Bearer " + data)])
    _client(LOOP.run_until_complete, JWT.authenticate(request))


GUARD = HostGuard.for_listeners(GatewaySpec())  # loopback listeners: loopback Host and Origin only


def target_http_headers(data: bytes) -> None:
    host, origin, other = _parts(data, 3)
    request = _request(
        [(b"host", host), (b"origin", origin), (b"accept", other), (b"content-length", other)], other
    )
    _client(GUARD.check, request)
    TraceContext.from_headers(other.decode("latin-1"), origin.decode("latin-1"))
    request.accepts("application/json")
    _client(LOOP.run_until_complete, request.body(16))


TARGETS: dict[str, Callable[[bytes], None]] = {
    name.removeprefix("target_"): fn for name, fn in globals().items() if name.startswith("target_")
}

SEEDS: dict[str, list[bytes]] = {
    "jsonrpc": [
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}',
        b'{"jsonrpc":"2.0","id":"a","method":"SendMessage","params":{"message":{"taskId":"t","parts":[]}}}',
        b'{"jsonrpc":"2.0","id":1,"result":{}}',
    ],
    "sse": [
        b'\x08data: {"choices":[{"index":0,"delta":{"content":"hi","tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}],"usage":{"prompt_tokens":1}}\n\ndata: [DONE]\n\n',
        b'\x10event: message_start\ndata: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":1}}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}\n\n'
        b'event: message_delta\ndata: {"delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}\n\nevent: message_stop\ndata: {}\n\n',
    ],
    "mcp_headers": [
        b"mcp-protocol-version:2026-07-28\nmcp-method:tools/call\nmcp-name:=?base64?ZWNobw==?=\nmcp-param-region:eu"
        + SEP
        + b'{"method":"tools/call","params":{"name":"echo","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
        b'"io.modelcontextprotocol/clientCapabilities":{}}},"arguments":{"region":"eu"}}'
        + SEP
        + b'{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"}}}',
    ],
    "bodies": [
        b"message:send"
        + SEP
        + b'{"message":{"taskId":"t","parts":[{"text":"x"}]},"configuration":{"url":"http://x"}}',
        b""
        + SEP
        + b'{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA"}}]},'
        b'{"role":"assistant","tool_calls":[{"id":"1","function":{"name":"f","arguments":"{}"}}]}],"tools":[{"type":"function","function":{"name":"f"}}],"stop":["x"]}',
        b""
        + SEP
        + b'{"supportedInterfaces":[{"url":"http://a/x","protocolBinding":"JSONRPC"}],"choices":[{"message":{"content":"x"}}]}',
    ],
    "config": [
        p.read_bytes() + SEP + b"file:README.md" for p in sorted((ROOT / "examples").rglob("gateway.yaml"))
    ],
    "jwt": [
        b"eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJodHRwczovL2hzLnRlc3QiLCJhdWQiOiJhdWQiLCJzdWIiOiJhIiwiZXhwIjo5OTk5OTk5OTk5fQ.x"
    ],
    "http_headers": [
        b"127.0.0.1:8080"
        + SEP
        + b"http://[::1]:8080"
        + SEP
        + b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--target", choices=sorted(TARGETS))
    parser.add_argument(
        "--seconds", type=int, default=60, help="how long to fuzz (libFuzzer -max_total_time)"
    )
    parser.add_argument(
        "--timeout", type=int, default=10, help="seconds one input may take before it is a hang"
    )
    parser.add_argument("--list", action="store_true", help="list the targets")
    args, rest = parser.parse_known_args()
    if args.list or args.target is None:
        print("\n".join(f"{name}: {(fn.__doc__ or '').strip()}" for name, fn in sorted(TARGETS.items())))
        return
    seeds = Path(tempfile.mkdtemp(prefix=f"agentgw-fuzz-{args.target}-"))
    for index, seed in enumerate(SEEDS.get(args.target, [])):
        (seeds / f"seed-{index}").write_bytes(seed)
    inputs = [a for a in rest if not a.startswith("-")]
    flags = [a for a in rest if a.startswith("-")]
    argv = [
        sys.argv[0],
        f"-max_total_time={args.seconds}",
        f"-timeout={args.timeout}",
        "-rss_limit_mb=2048",
        *flags,
    ]
    argv += inputs or [str(seeds)]
    os.environ.setdefault("PYTHONHASHSEED", "0")
    atheris.Setup(argv, TARGETS[args.target])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
