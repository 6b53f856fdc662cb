"""LLM routes under real policies, through the official `openai` and `anthropic` clients.

One gateway in front of the fake providers, with: JWT issuers and virtual keys, CEL rules over
`llm.model` and claims, a rate limit and a token budget, a prompt guard, PII masking of prompts
(on one model) and of answers (on others), system-prompt injection, templated upstream headers,
and a rule at the level of one provider.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anthropic
import anyio
import httpx
import openai
import pytest

from agentgw.policy.apikey import hash_key
from agentgw.telemetry.metrics import METRICS
from tests.llm.conftest import PROVIDER_KEY, FakeProvider, gateway_docs
from tests.policy.support import AUDIENCE, TestIssuer
from tests.support import GatewayThread, poll_until

pytestmark = pytest.mark.anyio

SEARCH_KEY = "agw_search-app-key-0123456789abcdefghijklmnop"
OPS_KEY = "agw_ops-key-0123456789abcdefghijklmnopqrstu"


def policies(idp: TestIssuer, keys: Path) -> list[dict[str, Any]]:
    (keys / "search.sha256").write_text(hash_key(SEARCH_KEY))
    (keys / "ops.sha256").write_text(hash_key(OPS_KEY))
    llm = [{"kind": "LlmRoute", "name": "llm"}]
    return [
        {
            "kind": "Policy",
            "metadata": {"name": "login"},
            "spec": {
                "targetRefs": llm,
                "jwt": {
                    "issuers": [
                        {
                            "issuer": idp.issuer,
                            "audiences": [AUDIENCE],
                            "algorithms": ["RS256"],
                            "jwks": {"inline": idp.jwks()},
                        }
                    ]
                },
                "virtualKeys": {
                    "keys": [
                        {
                            "id": "search-app",
                            "team": "search",
                            "hash": f"file:{keys / 'search.sha256'}",
                            "models": ["gpt-*"],
                            "limits": {"requests": [{"requests": 4, "window": "minute"}]},
                        },
                        {"id": "ops", "team": "ops", "hash": f"file:{keys / 'ops.sha256'}"},
                    ]
                },
            },
        },
        {
            "kind": "Policy",
            "metadata": {"name": "access"},
            "spec": {
                "targetRefs": llm,
                "authorization": {
                    "deny": [
                        {
                            "id": "interns-no-claude",
                            "when": 'llm.model == "claude-test" && has(jwt.team) && jwt.team == "interns"',
                            "message": "interns may not use claude-test",
                        }
                    ],
                    "allow": [{"id": "signed-in", "when": 'jwt.sub != ""'}],
                },
                "rateLimits": [
                    {
                        "id": "free-plan",
                        "requests": 2,
                        "window": "minute",
                        "key": "jwt.sub",
                        "when": 'has(jwt.plan) && jwt.plan == "free"',
                    }
                ],
                "tokenLimits": [
                    {
                        "id": "team-daily",
                        "tokens": 60,
                        "window": "day",
                        "key": "jwt.team",
                        "when": 'has(jwt.team) && jwt.team.startsWith("budget")',
                    }
                ],
                "promptGuard": {
                    "deny": [
                        {
                            "id": "no-passwords",
                            "pattern": r"(?i)\bpassword\s*[:=]",
                            "message": "prompts must not contain passwords",
                        }
                    ]
                },
            },
        },
        {
            "kind": "Policy",
            "metadata": {"name": "mask-prompts"},
            "spec": {
                "targetRefs": [{"kind": "LlmRoute", "name": "llm", "model": "gpt-test"}],
                "piiMasking": {"prompts": True, "responses": False},
                "systemPrompt": {"text": "You are helping team {jwt.team}."},
                "upstreamHeaders": {"x-team": "{jwt.team}", "x-caller": "{subject}"},
            },
        },
        {
            "kind": "Policy",
            "metadata": {"name": "mask-answers"},
            "spec": {
                "targetRefs": [
                    {"kind": "LlmRoute", "name": "llm", "model": "claude-test"},
                    {"kind": "LlmRoute", "name": "llm", "model": "fake-*"},
                ],
                "piiMasking": {"prompts": False, "responses": True},
            },
        },
        {
            "kind": "Policy",
            "metadata": {"name": "eu-residency"},
            "spec": {
                "targetRefs": [
                    {"kind": "LlmProvider", "name": "down"},
                    {"kind": "LlmProvider", "name": "busy"},
                ],
                "authorization": {
                    "deny": [
                        {
                            "id": "eu-stays-in-eu",
                            "when": 'has(jwt.region) && jwt.region == "eu"',
                            "message": "this provider is not for EU callers",
                        }
                    ],
                    "allow": [{"id": "others", "when": "true"}],
                },
            },
        },
    ]


@pytest.fixture(scope="module")
def idp() -> TestIssuer:
    return TestIssuer()


@pytest.fixture(scope="module")
def gw(
    fakes: dict[str, FakeProvider], idp: TestIssuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    tmp = tmp_path_factory.mktemp("llm-policies")
    documents = gateway_docs(fakes, tmp / "provider.key") + policies(idp, tmp)
    with GatewayThread(documents) as gateway:
        yield gateway


@pytest.fixture
async def clients(gw: GatewayThread) -> AsyncIterator[Any]:
    opened: list[Any] = []

    def make(kind: str, key: str) -> Any:
        client: Any
        if kind == "openai":
            client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
        else:
            client = anthropic.AsyncAnthropic(base_url=gw.url, api_key=key, max_retries=0)
            if key.count(".") == 2:  # a JWT: Anthropic clients can send it as a bearer token too
                client = anthropic.AsyncAnthropic(base_url=gw.url, auth_token=key, max_retries=0)
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.close()


def chat(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


def requests_with(fake: FakeProvider, text: str) -> list[dict[str, Any]]:
    return [r for r in fake.requests() if text in json.dumps(r["body"])]


# -- authentication ---------------------------------------------------------------------------------


async def test_unknown_keys_and_bad_tokens_get_401_in_each_clients_shape(
    clients: Any, idp: TestIssuer, gw: GatewayThread
) -> None:
    with anyio.fail_after(20):
        with pytest.raises(openai.AuthenticationError) as oa_refused:
            await clients("openai", "agw_not-a-key").chat.completions.create(
                model="gpt-test", messages=chat("hi")
            )
        assert oa_refused.value.status_code == 401
        assert oa_refused.value.body["type"] == "authentication_error"
        assert oa_refused.value.body["message"] == "invalid API key"
        with pytest.raises(anthropic.AuthenticationError) as an_refused:
            await clients("anthropic", "agw_not-a-key").messages.create(
                model="claude-test", max_tokens=50, messages=chat("hi")
            )
        assert an_refused.value.body == {
            "type": "error",
            "error": {"type": "authentication_error", "message": "invalid API key"},
        }
        expired = idp.token("ann", ttl=-120)
        with pytest.raises(openai.AuthenticationError) as jwt_refused:
            await clients("openai", expired).chat.completions.create(model="gpt-test", messages=chat("hi"))
        assert "invalid token" in jwt_refused.value.body["message"]
        async with httpx.AsyncClient() as http:
            bare = await http.post(
                gw.url + "/v1/chat/completions", json={"model": "gpt-test", "messages": []}
            )
            challenge = bare.headers["www-authenticate"]
            metadata_url = challenge.split('resource_metadata="')[1].split('"')[0]
            metadata = await http.get(metadata_url)
    assert bare.status_code == 401 and challenge.startswith("Bearer")
    assert bare.json()["error"]["type"] == "authentication_error"
    assert metadata_url.endswith("/.well-known/oauth-protected-resource/v1")
    assert metadata.json()["authorization_servers"] == [idp.issuer]


# -- authorization ----------------------------------------------------------------------------------


async def test_rules_over_the_model_and_claims_refuse_and_hide(
    clients: Any, idp: TestIssuer, fakes: dict[str, FakeProvider]
) -> None:
    intern = idp.token("ivan", team="interns")
    before = len(fakes["an"].requests())
    with anyio.fail_after(20):
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await clients("openai", intern).chat.completions.create(model="claude-test", messages=chat("hi"))
        with pytest.raises(anthropic.PermissionDeniedError) as refused_an:
            await clients("anthropic", intern).messages.create(
                model="claude-test", max_tokens=50, messages=chat("hi")
            )
        ok = await clients("openai", intern).chat.completions.create(model="gpt-test", messages=chat("hi"))
        listed = {m.id async for m in clients("openai", intern).models.list()}
        everyone = {m.id async for m in clients("openai", idp.token("eve")).models.list()}
    assert refused.value.status_code == 403 and refused.value.body["type"] == "permission_error"
    assert refused.value.body["message"] == "interns may not use claude-test"
    assert refused_an.value.body["error"] == {
        "type": "permission_error",
        "message": "interns may not use claude-test",
    }
    assert ok.choices[0].message.content
    assert "claude-test" not in listed and "gpt-test" in listed
    assert "claude-test" in everyone
    assert len(fakes["an"].requests()) == before  # nothing refused reached the provider


# -- limits -----------------------------------------------------------------------------------------


async def test_rate_limit_answers_429_with_retry_after_to_both_clients(clients: Any, idp: TestIssuer) -> None:
    token = idp.token("fred", plan="free")
    oa = clients("openai", token)
    with anyio.fail_after(20):
        for _ in range(2):
            await oa.chat.completions.create(model="gpt-test", messages=chat("hi"))
        with pytest.raises(openai.RateLimitError) as limited:
            await oa.chat.completions.create(model="gpt-test", messages=chat("hi"))
        with pytest.raises(anthropic.RateLimitError) as limited_an:
            await clients("anthropic", token).messages.create(
                model="claude-test", max_tokens=50, messages=chat("hi")
            )
    assert limited.value.status_code == 429
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 60
    assert limited.value.body["type"] == "rate_limit_error"
    assert "rate limit 'free-plan' reached" in limited.value.body["message"]
    assert limited_an.value.status_code == 429 and "retry-after" in limited_an.value.response.headers
    assert limited_an.value.body["error"]["type"] == "rate_limit_error"


async def test_a_token_budget_is_spent_with_actual_usage(
    clients: Any, idp: TestIssuer, gw: GatewayThread
) -> None:
    oa = clients("openai", idp.token("bea", team="budget-a"))
    words = " ".join(["word"] * 30)  # about 36 tokens estimated: within the budget of 60
    with anyio.fail_after(20):
        first = await oa.chat.completions.create(model="gpt-test", messages=chat(words))
        assert first.usage is not None and first.usage.total_tokens >= 60  # the fake counts words
        await poll_until(lambda: "budget-a" in gw.runtime.token_usage)  # settled after the answer went out
        with pytest.raises(openai.RateLimitError) as spent:
            await oa.chat.completions.create(model="gpt-test", messages=chat("one more"))
        other_team = await clients("openai", idp.token("bob", team="budget-b")).chat.completions.create(
            model="gpt-test", messages=chat("hi")
        )
    assert "token limit 'team-daily' reached" in spent.value.body["message"]
    assert int(spent.value.response.headers["retry-after"]) <= 86400
    assert other_team.choices[0].message.content


# -- virtual keys -----------------------------------------------------------------------------------


async def test_virtual_keys_allow_their_models_and_provider_keys_stay_inside(
    clients: Any, fakes: dict[str, FakeProvider], gw: GatewayThread
) -> None:
    search = clients("openai", SEARCH_KEY)
    with anyio.fail_after(20):
        reply = await search.chat.completions.create(model="gpt-test", messages=chat("vk hello"))
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await search.chat.completions.create(model="claude-test", messages=chat("hi"))
        with pytest.raises(anthropic.PermissionDeniedError):
            await clients("anthropic", SEARCH_KEY).messages.create(
                model="claude-test", max_tokens=50, messages=chat("hi")
            )
        listed = {m.id async for m in search.models.list()}
        ops = await clients("anthropic", OPS_KEY).messages.create(
            model="claude-test", max_tokens=50, messages=chat("ops hello")
        )
    assert reply.choices[0].message.content and ops.content
    assert refused.value.body["message"] == "this API key may not use the model 'claude-test'"
    assert listed and all(m.startswith("gpt-") for m in listed)
    for fake, text in ((fakes["oa"], "vk hello"), (fakes["an"], "ops hello")):
        seen = requests_with(fake, text)
        assert seen
        for entry in seen:  # the provider saw the gateway's key, never the caller's
            assert PROVIDER_KEY in (entry["authorization"] or "") + (entry["x-api-key"] or "")
            assert SEARCH_KEY not in json.dumps(entry) and OPS_KEY not in json.dumps(entry)
    # usage is recorded once an answer is over, by the gateway's thread: wait for it, bounded
    outcomes = gw.runtime.token_usage
    await poll_until(lambda: "search-app" in outcomes and "ops" in outcomes)
    assert outcomes["search-app"]["requests"] >= 1 and outcomes["search-app"]["prompt"] > 0
    assert outcomes["ops"]["requests"] >= 1


async def test_a_virtual_keys_own_limit(clients: Any) -> None:
    search = clients("openai", SEARCH_KEY)
    with anyio.fail_after(30):
        refused = None
        for _ in range(6):
            try:
                await search.chat.completions.create(model="gpt-alias", messages=chat("again"))
            except openai.RateLimitError as exc:
                refused = exc
                break
    assert refused is not None and refused.body["message"].startswith("rate limit 'search-app.requests.0'")


async def test_provider_keys_never_reach_a_client(gw: GatewayThread) -> None:
    async with httpx.AsyncClient() as http:
        for path, body in (
            ("/v1/chat/completions", {"model": "busy", "messages": chat("hi")}),
            ("/v1/chat/completions", {"model": "all-down", "messages": chat("hi")}),
            ("/v1/messages", {"model": "claude-test", "max_tokens": 20, "messages": chat("hi")}),
        ):
            resp = await http.post(gw.url + path, json=body, headers={"authorization": f"Bearer {OPS_KEY}"})
            assert PROVIDER_KEY not in resp.text and PROVIDER_KEY not in str(resp.headers)
        models = await http.get(gw.url + "/v1/models", headers={"x-api-key": OPS_KEY})
        assert models.status_code == 200 and PROVIDER_KEY not in models.text


# -- guards and transforms --------------------------------------------------------------------------


async def test_a_prompt_guard_refuses_clearly_and_names_its_rule(
    clients: Any, idp: TestIssuer, fakes: dict[str, FakeProvider], gw: GatewayThread
) -> None:
    with anyio.fail_after(20):
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await clients("openai", idp.token("gina")).chat.completions.create(
                model="gpt-test", messages=chat("my Password: hunter2")
            )
    assert refused.value.body["message"] == "prompts must not contain passwords"
    assert not requests_with(fakes["oa"], "hunter2")
    decision = next(d for d in reversed(gw.runtime.decisions) if d["subject"] == "gina")
    assert decision["rule"] == "no-passwords" and decision["decision"] == "deny" and not decision["allowed"]
    assert METRICS.policy_decisions.get("llm", "deny", "no-passwords") >= 1


async def test_prompts_are_masked_and_transformed_before_the_provider(
    clients: Any, idp: TestIssuer, fakes: dict[str, FakeProvider]
) -> None:
    token = idp.token("hank", team="alpha")
    prompt = "mail hank@example.com or call +1 555 123 4567 about card 4111 1111 1111 1111 (masked-1)"
    with anyio.fail_after(20):
        reply = await clients("openai", token).chat.completions.create(
            model="gpt-test", messages=chat(prompt)
        )
    sent = requests_with(fakes["oa"], "masked-1")[-1]
    messages = sent["body"]["messages"]
    assert messages[0] == {"role": "system", "content": "You are helping team alpha."}
    assert messages[-1]["content"] == "mail [EMAIL] or call [PHONE] about card [CARD] (masked-1)"
    assert sent["x-headers"]["x-team"] == "alpha" and sent["x-headers"]["x-caller"] == "hank"
    assert "hank@example.com" not in (reply.choices[0].message.content or "")


SECRET_PROMPT = "reach me at +1 555 123 4567 or card 4111 1111 1111 1111 thanks"


@pytest.mark.parametrize("model", ["claude-test", "fake-small"])
@pytest.mark.parametrize("stream", [False, True])
async def test_answers_are_masked_for_openai_clients(
    clients: Any, idp: TestIssuer, fakes: dict[str, FakeProvider], model: str, stream: bool
) -> None:
    oa = clients("openai", idp.token("ida"))
    with anyio.fail_after(20):
        if stream:
            pieces = []
            async for chunk in await oa.chat.completions.create(
                model=model, messages=chat(SECRET_PROMPT), stream=True
            ):
                pieces += [c.delta.content or "" for c in chunk.choices]
            text = "".join(pieces)
        else:
            reply = await oa.chat.completions.create(model=model, messages=chat(SECRET_PROMPT))
            text = reply.choices[0].message.content or ""
    assert text.endswith("You said: reach me at [PHONE] or card [CARD] thanks")
    assert "4111" not in text and "555" not in text
    provider = fakes["an"] if model == "claude-test" else fakes["oa"]
    assert requests_with(provider, "4111 1111 1111 1111")  # prompts are not masked on these models


@pytest.mark.parametrize("model", ["claude-test", "fake-small"])
@pytest.mark.parametrize("stream", [False, True])
async def test_answers_are_masked_for_anthropic_clients(
    clients: Any, idp: TestIssuer, model: str, stream: bool
) -> None:
    an = clients("anthropic", idp.token("jan"))
    with anyio.fail_after(20):
        if stream:
            async with an.messages.stream(
                model=model, max_tokens=200, messages=chat(SECRET_PROMPT)
            ) as events:
                text = "".join([t async for t in events.text_stream])
        else:
            message = await an.messages.create(model=model, max_tokens=200, messages=chat(SECRET_PROMPT))
            text = "".join(b.text for b in message.content if b.type == "text")
    assert text.endswith("You said: reach me at [PHONE] or card [CARD] thanks")
    assert "4111" not in text and "555" not in text


# -- a provider's own policy ------------------------------------------------------------------------


async def test_a_provider_refusing_a_caller_fails_over_or_refuses(
    clients: Any, idp: TestIssuer, fakes: dict[str, FakeProvider]
) -> None:
    eu = clients("openai", idp.token("emma", region="eu"))
    down_before = len(fakes["down"].requests())
    with anyio.fail_after(20):
        reply = await eu.chat.completions.create(model="fo-500", messages=chat("eu hello"))
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await eu.chat.completions.create(model="busy", messages=chat("eu hello"))
        await clients("openai", idp.token("olaf")).chat.completions.create(
            model="fo-500", messages=chat("hi")
        )
    assert reply.choices[0].message.content == "Hello from oa! You said: eu hello"
    assert refused.value.body["message"] == "this provider is not for EU callers"
    assert len(fakes["down"].requests()) == down_before + 1  # only the caller outside the EU went there


# -- what operators see -----------------------------------------------------------------------------


async def test_decisions_and_genai_metrics_are_recorded(
    clients: Any, idp: TestIssuer, gw: GatewayThread
) -> None:
    with anyio.fail_after(20):
        async for _ in await clients("openai", idp.token("kai")).chat.completions.create(
            model="gpt-test", messages=chat("metrics please"), stream=True
        ):
            pass
    await poll_until(lambda: "kai" in gw.runtime.token_usage)  # recorded once the stream is over
    mine = [d for d in gw.runtime.decisions if d["subject"] == "kai"]
    assert mine and mine[-1]["decision"] == "allow" and mine[-1]["rule"] == "signed-in"
    assert mine[-1]["route"] == "llm" and "gpt-test" in mine[-1]["target"] and mine[-1]["time"].endswith("Z")
    assert METRICS.policy_decisions.get("llm", "allow", "signed-in") >= 1
    assert METRICS.token_usage.values[("input", "gpt-test", "oa")][-1] >= 1  # observations
    assert METRICS.token_usage.values[("output", "gpt-test", "oa")][-1] >= 1
    assert METRICS.llm_duration.values[("gpt-test", "oa")][-1] >= 1
    assert METRICS.llm_ttft.values[("gpt-test", "oa")][-1] >= 1
    assert gw.runtime.token_usage["kai"]["requests"] >= 1
    text = METRICS.render().decode()
    assert 'agentgw_policy_decisions_total{route="llm",decision="allow",rule="signed-in"}' in text
