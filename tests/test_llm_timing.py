"""LLM timing: time to first token and tokens per second, from a stub's reply or the `llm_*` settings.

Only loose lower bounds are asserted (a loaded CI machine may be slower, never faster); the 2.2 s
figure of a 100-token stream at 200 ms + 50 tokens/s is measured by `python -m bench --only llm`.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types as genai_types
from support import extra_hub

from mockhub.client import MockHub
from mockhub.server import ThreadedHub
from mockhub.services.llm import Timing

ASK = [{"role": "user", "content": "status?"}]


@pytest.fixture(autouse=True)
def _clean(api: httpx.Client) -> None:
    """Each test starts from an empty journal and no rules (`api` resets the session's server)."""


def oai(url: str, timeout: float = 30) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0, timeout=timeout)


def first_and_last(chunks: Any) -> tuple[float, float, list[Any]]:
    """Seconds from now to the first and the last chunk of an iterator, and the chunks."""
    start = time.perf_counter()
    got, first = [], None
    for chunk in chunks:
        if first is None:
            first = time.perf_counter() - start
        got.append(chunk)
    assert first is not None and first >= 0.1
    return first, time.perf_counter() - start, got


def test_a_stub_paces_a_stream_first_token_then_tokens_per_second(server: ThreadedHub, ns: str) -> None:
    hub = MockHub(server.url, namespace=ns)
    content = "one two three four five six seven eight nine ten"  # 10 tokens in cl100k and the approximation
    with hub.stub("openai", reply={"content": content, "ttft_ms": 150, "tokens_per_s": 100}):
        start = time.perf_counter()
        stream = oai(f"{server.url}/ns/{ns}").chat.completions.create(model="gpt-4o", messages=ASK, stream=True)
        first, last, chunks = first_and_last(stream)
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(texts) == content and len(texts) == 10
    # Nothing before the time to first token; then 9 more tokens, 10 ms each.
    assert time.perf_counter() - start >= first >= 0.14
    assert last >= 0.14 + 9 * 0.01 * 0.9
    [call] = hub.calls("openai")
    assert call.duration_ms >= 0  # recorded at once, completed when the stream ended
    assert call.data["reply"] == content


def test_a_plain_answer_waits_what_its_stream_would_take(server: ThreadedHub, ns: str) -> None:
    hub = MockHub(server.url, namespace=ns)
    with hub.stub("openai", reply={"content": "a b c d e f g h i j k", "ttft_ms": 100, "tokens_per_s": 100}):
        start = time.perf_counter()
        answer = oai(f"{server.url}/ns/{ns}").chat.completions.create(model="gpt-4o", messages=ASK)
        took = time.perf_counter() - start
    assert answer.usage is not None and answer.usage.completion_tokens == 11
    assert took >= 0.1 + 10 * 0.01 * 0.9
    [call] = hub.calls("openai")
    assert call.duration_ms >= 190  # the wait is part of the call, recorded before the answer was sent


def test_a_timing_only_reply_keeps_the_default_answer(server: ThreadedHub, ns: str) -> None:
    hub = MockHub(server.url, namespace=ns)
    with hub.stub("openai", reply={"ttft_ms": 150}):
        start = time.perf_counter()
        answer = oai(f"{server.url}/ns/{ns}").chat.completions.create(model="gpt-4o", messages=ASK)
        took = time.perf_counter() - start
    assert answer.choices[0].message.content == "mock reply to: status?"
    assert took >= 0.14


def test_responses_streams_are_paced(server: ThreadedHub, ns: str) -> None:
    hub = MockHub(server.url, namespace=ns)
    with hub.stub("openai", reply={"ttft_ms": 150, "tokens_per_s": 200}):
        client = oai(f"{server.url}/ns/{ns}")
        with client.responses.stream(model="gpt-4.1", input="hello") as events:
            start = time.perf_counter()
            deltas = []
            first = None
            for event in events:
                if event.type == "response.output_text.delta":
                    first = first or time.perf_counter() - start
                    deltas.append(event.delta)
            final = events.get_final_response()
    assert "".join(deltas) == final.output_text == "mock reply to: hello"
    assert final.usage is not None and final.usage.output_tokens == len(deltas)
    assert first is not None and first >= 0.1


def test_the_settings_pace_every_llm_fake() -> None:
    with extra_hub(llm_ttft_ms=150, llm_tokens_per_s=1000) as running:
        start = time.perf_counter()
        client = anthropic.Anthropic(base_url=running.url, api_key="sk-ant", max_retries=0)
        with client.messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=ASK) as stream:
            text = "".join(stream.text_stream)
        assert text == "mock reply to: status?" and time.perf_counter() - start >= 0.14

        start = time.perf_counter()
        client.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=ASK)
        assert time.perf_counter() - start >= 0.14

        google = genai.Client(api_key="AIza", http_options=genai_types.HttpOptions(base_url=running.url))
        start = time.perf_counter()
        first, _, chunks = first_and_last(google.models.generate_content_stream(model="gemini-2.5-flash", contents="x"))
        assert "".join(c.text or "" for c in chunks) == "mock reply to: x"
        assert first >= 0.14
        start = time.perf_counter()
        google.models.generate_content(model="gemini-2.5-flash", contents="x")
        assert time.perf_counter() - start >= 0.14

        # A stub's timing wins over the settings: zero here means at once.
        with MockHub(running.url).stub("openai", reply={"ttft_ms": 0, "tokens_per_s": 0}):
            start = time.perf_counter()
            oai(running.url).chat.completions.create(model="gpt-4o", messages=ASK)
            assert time.perf_counter() - start < 0.14 + 1.0  # generous: the point is the next line
        start = time.perf_counter()
        oai(running.url).chat.completions.create(model="gpt-4o", messages=ASK)
        assert time.perf_counter() - start >= 0.14


def test_a_slow_answer_does_not_hold_up_other_requests(server: ThreadedHub, ns: str) -> None:
    hub = MockHub(server.url, namespace=ns)
    done = threading.Event()
    with hub.stub("openai", match={"data": {"last_user_message": "slow"}}, reply={"ttft_ms": 1500}):

        def slow() -> None:
            oai(f"{server.url}/ns/{ns}").chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "slow"}], stream=False
            )
            done.set()

        worker = threading.Thread(target=slow)
        worker.start()
        try:
            time.sleep(0.1)
            start = time.perf_counter()
            quick = oai(f"{server.url}/ns/{ns}").chat.completions.create(model="gpt-4o", messages=ASK)
            assert time.perf_counter() - start < 1.0
            assert quick.choices[0].message.content == "mock reply to: status?"
            assert not done.is_set()
        finally:
            worker.join(10)
    assert done.is_set()


def test_a_client_that_gives_up_during_the_wait_is_recorded_as_such(server: ThreadedHub, ns: str) -> None:
    hub = MockHub(server.url, namespace=ns)
    with hub.stub("openai", reply={"ttft_ms": 3000}):
        with pytest.raises(openai.APITimeoutError):
            oai(f"{server.url}/ns/{ns}", timeout=0.3).chat.completions.create(model="gpt-4o", messages=ASK)
        [call] = hub.wait_for("openai", timeout=5)
    assert call.response is None
    assert "the client left after" in call.data["timing"]
    assert hub.usage().requests == 0


def test_timing_fields_are_checked(server: ThreadedHub, ns: str) -> None:
    for service in ("openai", "anthropic", "gemini"):
        for bad in ({"ttft_ms": -1}, {"tokens_per_s": -5}, {"jitter": 1.5}, {"ttft_ms": "soon"}, {"ttft": 5}):
            stub = {"service": service, "match": {"namespace": ns}, "reply": bad}
            answer = httpx.post(f"{server.url}/stubs", json=stub)
            assert answer.status_code == 422, (service, bad)
            assert next(iter(bad)) in answer.json()["error"]["message"]
    # Only the LLM fakes know them.
    answer = httpx.post(f"{server.url}/stubs", json={"service": "slack", "reply": {"ttft_ms": 5}})
    assert answer.status_code == 422
    assert MockHub(server.url, namespace=ns).stubs() == []


def test_a_sequence_paces_each_reply_its_own_way(server: ThreadedHub, ns: str) -> None:
    hub = MockHub(server.url, namespace=ns)
    client = oai(f"{server.url}/ns/{ns}")
    with hub.stub("openai", sequence=[{"content": "slow", "ttft_ms": 200}, {"content": "fast"}]):
        start = time.perf_counter()
        assert client.chat.completions.create(model="gpt-4o", messages=ASK).choices[0].message.content == "slow"
        assert time.perf_counter() - start >= 0.19
        assert client.chat.completions.create(model="gpt-4o", messages=ASK).choices[0].message.content == "fast"


def test_jitter_with_a_seed_repeats() -> None:
    timing = Timing(ttft_ms=200, tokens_per_s=50, jitter=0.5, seed=7)
    tokens = [0, 1, 1, 0, 2, 1, 0]
    waits = timing.waits(tokens)
    assert waits == timing.waits(tokens)  # the same seed, the same pacing
    assert 0.1 <= waits[0] <= 0.3 and waits[0] != 0.2
    assert waits[3] == waits[6] == 0.0  # frames without tokens go at once
    assert 0.02 <= waits[4] <= 0.06  # two tokens at 20 ms each, ±50%
    assert Timing(ttft_ms=200, tokens_per_s=50, jitter=0.5, seed=8).waits(tokens) != waits
    plain = Timing(ttft_ms=200, tokens_per_s=50)
    assert plain.waits(tokens) == [0.2, 0.0, 0.02, 0.0, 0.04, 0.02, 0.0]
    assert plain.total(101) == pytest.approx(2.2)
    assert Timing().waits(tokens) == [0.0] * len(tokens) and Timing().total(100) == 0


def test_timing_on_the_stub_itself_from_the_api_the_client_and_a_stub_file(
    server: ThreadedHub, ns: str, tmp_path: Path
) -> None:
    # POST /stubs with timing beside the reply, or alone (then the default answer is paced).
    stub = {"service": "anthropic", "match": {"namespace": ns}, "ttft_ms": 150, "tokens_per_s": 1000}
    added = httpx.post(f"{server.url}/stubs", json=stub)
    assert added.status_code == 201, added.text
    assert added.json()["ttft_ms"] == 150 and added.json()["reply"] == {
        "content": None,
        "tool_calls": [],
        "finish_reason": None,
    }
    claude = anthropic.Anthropic(base_url=f"{server.url}/ns/{ns}", api_key="sk-ant", max_retries=0)
    start = time.perf_counter()
    message = claude.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=ASK)
    assert time.perf_counter() - start >= 0.14
    assert message.content[0].type == "text" and message.content[0].text == "mock reply to: status?"

    # The client's keyword options; a reply's own field wins over the stub's.
    hub = MockHub(server.url, namespace=ns)
    hub.clear_stubs()
    with hub.stub("openai", sequence=[{"content": "a"}, {"content": "b", "ttft_ms": 0}], ttft_ms=150):
        client = oai(f"{server.url}/ns/{ns}")
        start = time.perf_counter()
        assert client.chat.completions.create(model="gpt-4o", messages=ASK).choices[0].message.content == "a"
        assert time.perf_counter() - start >= 0.14
        start = time.perf_counter()
        assert client.chat.completions.create(model="gpt-4o", messages=ASK).choices[0].message.content == "b"
    assert httpx.post(f"{server.url}/stubs", json={"service": "openai", "ttft_ms": -1}).status_code == 422

    # A stub file entry of timing alone is a stub.
    (tmp_path / "slow.yaml").write_text("- {service: openai, ttft_ms: 150}\n")
    with extra_hub(stubs=tmp_path) as running:
        start = time.perf_counter()
        answer = oai(running.url).chat.completions.create(model="gpt-4o", messages=ASK)
        assert time.perf_counter() - start >= 0.14
        assert answer.choices[0].message.content == "mock reply to: status?"


def test_jittered_settings_and_gemini_without_alt_sse() -> None:
    with extra_hub(llm_ttft_ms=200, llm_jitter=0.5, llm_seed=3) as running:
        # Jitter ±50% around 200 ms: never under 100 ms; the same seed, the same wait each time.
        took = []
        for _ in range(2):
            start = time.perf_counter()
            oai(running.url).chat.completions.create(model="gpt-4o", messages=ASK)
            took.append(time.perf_counter() - start)
        assert min(took) >= 0.095
        expected = Timing(200, 0, 0.5, 3).total(1)
        assert 0.1 <= expected <= 0.3 and min(took) >= expected * 0.95
        # A stream asked for without alt=sse is one JSON array, sent once all of it is "generated".
        start = time.perf_counter()
        answer = httpx.post(
            f"{running.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent",
            headers={"x-goog-api-key": "AIza-test"},
            json={"contents": [{"parts": [{"text": "hi"}]}]},
            timeout=10,
        )
        assert answer.status_code == 200 and isinstance(answer.json(), list)
        assert time.perf_counter() - start >= 0.095
