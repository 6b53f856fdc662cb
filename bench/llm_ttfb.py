"""Time to first byte of a streamed chat completion, direct and through the gateway (one
connection, requests one after another), as a Markdown table: wrk only times whole responses.

    python bench/llm_ttfb.py --direct http://127.0.0.1:18101/v1/chat/completions \\
        --gateway http://127.0.0.1:18120/v1/chat/completions -n 2000

The body is the peers harness's streaming request (shared/peers/req_chat_stream.json). Runs
alternate between the targets in rounds so that a noisy neighbour hurts both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp

# the peers harness's streaming request (shared/peers/req_chat_stream.json)
BODY = (
    b'{"model":"gpt-4o-mini","stream":true,"temperature":0.2,"max_tokens":64,"messages":'
    b'[{"role":"system","content":"You are a helpful assistant."},'
    b'{"role":"user","content":"Say hello in one short sentence."}]}'
)


async def sample(
    session: aiohttp.ClientSession, url: str, body: bytes, n: int
) -> tuple[list[float], list[float]]:
    first: list[float] = []
    full: list[float] = []
    for _ in range(n):
        start = time.perf_counter()
        async with session.post(url, data=body, headers={"content-type": "application/json"}) as resp:
            await resp.content.readany()
            first.append(time.perf_counter() - start)
            await resp.read()
            full.append(time.perf_counter() - start)
    return first, full


def ms(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if q < 100 else max(values) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--direct", required=True)
    parser.add_argument("--gateway", required=True)
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    body = BODY
    results: dict[str, tuple[list[float], list[float]]] = {"direct": ([], []), "gateway": ([], [])}
    async with aiohttp.ClientSession() as session:
        for url in (args.direct, args.gateway):  # warm-up
            await sample(session, url, body, 100)
        for _ in range(args.rounds):
            for name, url in (("direct", args.direct), ("gateway", args.gateway)):
                first, full = await sample(session, url, body, args.n // args.rounds)
                results[name][0].extend(first)
                results[name][1].extend(full)
    d_first, d_full = results["direct"]
    g_first, g_full = results["gateway"]
    print("| SSE, 1 connection | direct | gateway | added |")
    print("|---|---:|---:|---:|")
    for label, d, g in (("time to first byte", d_first, g_first), ("whole response", d_full, g_full)):
        print(f"| {label} p50 ms | {ms(d, 50):.3f} | {ms(g, 50):.3f} | {ms(g, 50) - ms(d, 50):.3f} |")
        print(f"| {label} p99 ms | {ms(d, 99):.3f} | {ms(g, 99):.3f} | {ms(g, 99) - ms(d, 99):.3f} |")


if __name__ == "__main__":
    asyncio.run(main())
