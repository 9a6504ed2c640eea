"""The OpenAI fake, driven with the official `openai` SDK (and httpx for the raw wire format)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import openai
import pytest
import support
from support import extra_hub

from mockhub.server import ThreadedHub

calls = partial(support.calls, service="openai")
stub = partial(support.add_stub, service="openai")
fault = partial(support.add_fault, service="openai")

MODEL = "gpt-4o-mini"
AUTH = {"authorization": "Bearer sk-test"}
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "page_oncall",
            "description": "Page the on-call engineer of a team",
            "parameters": {"type": "object", "properties": {"team": {"type": "string"}}, "required": ["team"]},
        },
    }
]


def client(server: ThreadedHub, max_retries: int = 0, prefix: str = "") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + prefix + "/v1", api_key="sk-test", max_retries=max_retries)


def user(text: str) -> list[Any]:
    return [{"role": "system", "content": "You are terse."}, {"role": "user", "content": text}]


def frames(text: str) -> list[str]:
    """The `data:` payloads of an SSE body, in order."""
    return [block.removeprefix("data: ") for block in text.split("\n\n") if block.startswith("data: ")]


@pytest.fixture(scope="module")
def pinned() -> Iterator[ThreadedHub]:
    """A second mockhub that accepts only the key `sk-good`."""
    with extra_hub(credentials="sk-good, sk-other") as running:
        yield running


# -- chat completions ------------------------------------------------------------------------------


def test_plain_chat_completion_is_deterministic_and_recorded(server: ThreadedHub, api: httpx.Client) -> None:
    oai = client(server)
    first = oai.chat.completions.create(model=MODEL, messages=user("disk full on db-1"))
    assert first.object == "chat.completion"
    assert first.id.startswith("chatcmpl-")
    assert first.model == MODEL
    choice = first.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "mock reply to: disk full on db-1"
    assert choice.finish_reason == "stop"
    assert choice.message.tool_calls is None
    assert first.usage is not None
    assert first.usage.completion_tokens > 0 and first.usage.prompt_tokens > first.usage.completion_tokens
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens

    second = oai.chat.completions.create(model=MODEL, messages=user("disk full on db-1"))
    assert second.choices[0].message.content == choice.message.content
    assert second.usage == first.usage
    longer = oai.chat.completions.create(model=MODEL, messages=user("disk full on db-1 and db-2 and db-3"))
    assert longer.usage is not None and longer.usage.prompt_tokens > first.usage.prompt_tokens

    recorded = calls(api)
    assert len(recorded) == 3
    data = recorded[0]["data"]
    assert data["model"] == MODEL
    assert data["messages"] == user("disk full on db-1")
    assert data["stream"] is False
    assert data["reply"] == "mock reply to: disk full on db-1"
    assert data["last_user_message"] == "disk full on db-1"
    assert data["has_tool_result"] is False
    assert data["finish_reason"] == "stop"
    assert data["usage"] == {"input_tokens": first.usage.prompt_tokens, "output_tokens": first.usage.completion_tokens}
    assert recorded[0]["response"]["status"] == 200
    assert recorded[0]["headers"]["authorization"] == "Bearer sk-test"
    # The reply text is searchable like the request.
    assert len(calls(api, contains="mock reply to: disk full on db-1 and")) == 1


def test_streamed_chat_assembles_to_the_plain_reply(server: ThreadedHub, api: httpx.Client) -> None:
    oai = client(server)
    plain = oai.chat.completions.create(model=MODEL, messages=user("summarise the incident, please"))
    chunks = list(
        oai.chat.completions.create(model=MODEL, messages=user("summarise the incident, please"), stream=True)
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert len(chunks) > 4  # token-sized pieces, not one blob
    assembled = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert assembled == plain.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert all(c.usage is None for c in chunks)

    call = calls(api)[-1]
    assert call["data"]["stream"] is True
    assert call["data"]["reply"] == assembled
    body = call["response"]["body"]
    assert body.endswith("data: [DONE]\n\n")
    # Without stream_options the chunks carry no `usage` key at all.
    assert all("usage" not in json.loads(f) for f in frames(body)[:-1])


def test_stream_helper_and_include_usage(server: ThreadedHub, api: httpx.Client) -> None:
    oai = client(server)
    with oai.chat.completions.stream(
        model=MODEL, messages=user("status of db-1?"), stream_options={"include_usage": True}
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta" and e.delta]
        final = stream.get_final_completion()
    assert "".join(deltas) == "mock reply to: status of db-1?"
    assert final.choices[0].message.content == "mock reply to: status of db-1?"
    assert final.usage is not None and final.usage.completion_tokens == len(deltas)

    payloads = [f for f in frames(calls(api)[-1]["response"]["body"]) if f != "[DONE]"]
    parsed = [json.loads(p) for p in payloads]
    assert parsed[-1]["choices"] == []
    assert parsed[-1]["usage"]["total_tokens"] == final.usage.total_tokens
    assert all(p["usage"] is None for p in parsed[:-1])


def test_stream_options_without_stream_is_rejected(server: ThreadedHub, api: httpx.Client) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client(server).chat.completions.create(model=MODEL, messages=user("x"), stream_options={"include_usage": True})
    assert err.value.param == "stream_options"


def test_stubbed_tool_call_plain(server: ThreadedHub, api: httpx.Client) -> None:
    stub(
        api,
        match={"contains": "database"},
        reply={"tool_calls": [{"name": "page_oncall", "arguments": {"team": "db"}}]},
    )
    oai = client(server)
    result = oai.chat.completions.create(model=MODEL, messages=user("the database is down"), tools=TOOLS)
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "page_oncall"
    assert isinstance(call.function.arguments, str)
    assert json.loads(call.function.arguments) == {"team": "db"}

    # A message that does not match gets the default reply.
    other = oai.chat.completions.create(model=MODEL, messages=user("all good"), tools=TOOLS)
    assert other.choices[0].message.content == "mock reply to: all good"

    recorded = calls(api)
    assert recorded[0]["stub"]["id"].startswith("s_")
    assert recorded[0]["data"]["tools"] == TOOLS
    assert recorded[0]["data"]["reply_tool_calls"] == [
        {"id": call.id, "name": "page_oncall", "arguments": {"team": "db"}}
    ]
    assert recorded[1]["stub"] is None


def test_stubbed_tool_call_streamed(server: ThreadedHub, api: httpx.Client) -> None:
    arguments = {"team": "db", "severity": "critical", "note": "replica lag 40s"}
    stub(api, reply={"content": "Paging now.", "tool_calls": [{"name": "page_oncall", "arguments": arguments}]})
    oai = client(server)
    with oai.chat.completions.stream(model=MODEL, messages=user("db lag"), tools=TOOLS) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    assert message.content == "Paging now."
    assert message.tool_calls is not None
    assert message.tool_calls[0].function.name == "page_oncall"
    assert json.loads(message.tool_calls[0].function.arguments) == arguments

    chunks = list(oai.chat.completions.create(model=MODEL, messages=user("db lag"), tools=TOOLS, stream=True))
    tool_deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    head = tool_deltas[0]
    assert head.index == 0 and head.id and head.function is not None and head.function.name == "page_oncall"
    assert len(tool_deltas) > 3  # arguments arrive in fragments
    assert all(tc.index == 0 and tc.id is None for tc in tool_deltas[1:])
    fragments = "".join(tc.function.arguments or "" for tc in tool_deltas if tc.function is not None)
    assert json.loads(fragments) == arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_stub_sequence_drives_an_agent_loop(server: ThreadedHub, api: httpx.Client) -> None:
    stub(
        api,
        match={"contains": "investigate"},
        sequence=[
            {"tool_calls": [{"name": "page_oncall", "arguments": {"team": "db"}, "id": "call_fixed1"}]},
            {"content": "Paged the db team."},
        ],
    )
    oai = client(server)
    messages: list[Any] = user("investigate the outage")
    first = oai.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    tool_call = first.choices[0].message.tool_calls
    assert tool_call is not None and tool_call[0].id == "call_fixed1"
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": "call_fixed1", "content": "paged: ok"},
    ]
    second = oai.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == "Paged the db team."
    assert second.choices[0].finish_reason == "stop"

    recorded = calls(api)
    assert [c["stub"]["index"] for c in recorded] == [0, 1]
    assert recorded[0]["data"]["has_tool_result"] is False
    assert recorded[1]["data"]["has_tool_result"] is True
    assert recorded[1]["data"]["tool_results"] == [{"id": "call_fixed1", "content": "paged: ok"}]
    assert recorded[1]["data"]["last_user_message"] == "investigate the outage"


def test_stubs_match_on_model_regex_and_tool_result(server: ThreadedHub, api: httpx.Client) -> None:
    stub(api, match={"data": {"model": "gpt-4.1"}}, reply={"content": "from the big model"})
    stub(api, match={"regex": r"ticket #\d+"}, reply={"content": "ticket noted"})
    stub(api, match={"data": {"has_tool_result": True}}, reply={"content": "tool result seen"})
    oai = client(server)

    def ask(messages: list[Any], model: str = MODEL) -> str | None:
        return oai.chat.completions.create(model=model, messages=messages).choices[0].message.content

    assert ask(user("hello"), model="gpt-4.1") == "from the big model"
    assert ask(user("hello")) == "mock reply to: hello"
    assert ask(user("see ticket #4521")) == "ticket noted"
    assert ask(user("see ticket #abc")) == "mock reply to: see ticket #abc"
    with_result = [
        *user("look it up"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    assert ask(with_result) == "tool result seen"


def test_max_tokens_truncates_with_finish_reason_length(server: ThreadedHub, api: httpx.Client) -> None:
    result = client(server).chat.completions.create(model=MODEL, messages=user("a b c d e f g"), max_tokens=3)
    assert result.choices[0].finish_reason == "length"
    assert result.choices[0].message.content == "mock reply to"
    assert result.usage is not None and result.usage.completion_tokens == 3


def test_chunk_delay_paces_the_stream(server: ThreadedHub, api: httpx.Client) -> None:
    stub(api, reply={"content": "one two three four five"}, chunk_delay_ms=40)
    stream = client(server).chat.completions.create(model=MODEL, messages=user("go"), stream=True)
    arrivals = [time.monotonic() for _ in stream]
    assert len(arrivals) == 7  # role chunk, 5 words, finish chunk
    # Paced: never faster than the delay between chunks (a lower bound, not a speed claim).
    assert arrivals[-1] - arrivals[0] >= 0.04 * 5


# -- embeddings and models -------------------------------------------------------------------------


def test_embeddings_base64_default_and_float_agree(server: ThreadedHub, api: httpx.Client) -> None:
    oai = client(server)
    texts = ["disk full on db-1", "disk full on db-2", "the weather is lovely today"]
    default = oai.embeddings.create(model="text-embedding-3-small", input=texts)  # SDK asks for base64
    floats = oai.embeddings.create(model="text-embedding-3-small", input=texts, encoding_format="float")
    assert [d.index for d in default.data] == [0, 1, 2]
    for a, b in zip(default.data, floats.data, strict=True):
        assert len(a.embedding) == len(b.embedding) == 1536
        assert a.embedding == pytest.approx(b.embedding, rel=1e-5, abs=1e-6)
        assert math.sqrt(sum(x * x for x in b.embedding)) == pytest.approx(1.0, abs=1e-6)
    v1, v2, v3 = (d.embedding for d in floats.data)
    dot = lambda x, y: sum(p * q for p, q in zip(x, y, strict=True))  # noqa: E731
    # Deterministic, and texts sharing words are closer than unrelated ones.
    assert oai.embeddings.create(model="text-embedding-3-small", input=texts[0], encoding_format="float").data[
        0
    ].embedding == pytest.approx(v1)
    assert dot(v1, v2) > dot(v1, v3) + 0.2
    assert default.usage.prompt_tokens > 0 and default.usage.total_tokens == default.usage.prompt_tokens

    recorded = calls(api)
    assert recorded[0]["data"]["encoding_format"] == "base64"
    assert recorded[1]["data"]["encoding_format"] == "float"
    assert recorded[0]["data"]["input"] == texts
    assert isinstance(json.loads(recorded[0]["response"]["body"])["data"][0]["embedding"], str)


def test_embeddings_dimensions_and_validation(server: ThreadedHub, api: httpx.Client) -> None:
    oai = client(server)
    small = oai.embeddings.create(model="text-embedding-3-large", input="hi", dimensions=256)
    assert len(small.data[0].embedding) == 256
    assert len(oai.embeddings.create(model="text-embedding-3-large", input="hi").data[0].embedding) == 3072
    with pytest.raises(openai.BadRequestError) as err:
        oai.embeddings.create(model="text-embedding-ada-002", input="hi", dimensions=256)
    assert "dimensions" in err.value.message
    with pytest.raises(openai.BadRequestError):
        oai.embeddings.create(model="text-embedding-3-small", input="")


def test_reply_stubs_leave_embeddings_alone(server: ThreadedHub, api: httpx.Client) -> None:
    stub(api, sequence=[{"content": "first"}, {"content": "second"}])
    oai = client(server)
    assert oai.chat.completions.create(model=MODEL, messages=user("a")).choices[0].message.content == "first"
    oai.embeddings.create(model="text-embedding-3-small", input="between turns")
    oai.models.list()
    assert oai.chat.completions.create(model=MODEL, messages=user("b")).choices[0].message.content == "second"
    assert [c["stub"] is not None for c in calls(api)] == [True, False, False, True]


def test_models_list_and_retrieve(server: ThreadedHub, api: httpx.Client) -> None:
    oai = client(server)
    ids = [m.id for m in oai.models.list()]
    assert "gpt-4o" in ids and "text-embedding-3-small" in ids
    model = oai.models.retrieve("my-finetune")
    assert model.id == "my-finetune" and model.object == "model"


# -- responses API ---------------------------------------------------------------------------------


def test_responses_plain_and_streamed(server: ThreadedHub, api: httpx.Client) -> None:
    oai = client(server)
    plain = oai.responses.create(model=MODEL, input="write a haiku about disks", instructions="be poetic")
    assert plain.object == "response"
    assert plain.status == "completed"
    assert plain.output_text == "mock reply to: write a haiku about disks"
    assert plain.usage is not None and plain.usage.total_tokens == plain.usage.input_tokens + plain.usage.output_tokens

    events = list(oai.responses.create(model=MODEL, input="write a haiku about disks", stream=True))
    types = [e.type for e in events]
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == plain.output_text
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == plain.output_text

    with oai.responses.stream(model=MODEL, input="write a haiku about disks") as stream:
        final = stream.get_final_response()
    assert final.output_text == plain.output_text

    recorded = calls(api, path="/v1/responses")
    assert recorded[0]["data"]["instructions"] == "be poetic"
    assert recorded[0]["data"]["reply"] == plain.output_text


def test_responses_tool_call_round_trip(server: ThreadedHub, api: httpx.Client) -> None:
    stub(
        api,
        match={"data": {"has_tool_result": False}},
        reply={"tool_calls": [{"name": "lookup", "arguments": {"q": "db"}}]},
    )
    oai = client(server)
    tools: list[Any] = [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]
    first = oai.responses.create(model=MODEL, input="find the db owner", tools=tools)
    call = first.output[0]
    assert call.type == "function_call"
    assert call.name == "lookup" and json.loads(call.arguments) == {"q": "db"}

    streamed = list(oai.responses.create(model=MODEL, input="find the db owner", tools=tools, stream=True))
    args = "".join(e.delta for e in streamed if e.type == "response.function_call_arguments.delta")
    assert json.loads(args) == {"q": "db"}

    second = oai.responses.create(
        model=MODEL,
        tools=tools,
        input=[
            {"role": "user", "content": "find the db owner"},
            {"type": "function_call", "call_id": call.call_id, "name": "lookup", "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "alice"},
        ],
    )
    assert second.output_text == "mock reply to tool result: alice"
    assert calls(api)[-1]["data"]["has_tool_result"] is True


# -- errors, auth, faults --------------------------------------------------------------------------


def test_missing_key_gets_openai_401_shape(server: ThreadedHub, api: httpx.Client) -> None:
    r = api.post("/v1/chat/completions", json={"model": MODEL, "messages": user("x")})
    assert r.status_code == 401
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert "API key" in error["message"]
    assert calls(api)[0]["response"]["status"] == 401


def test_pinned_credentials_map_to_authentication_error(pinned: ThreadedHub) -> None:
    good = openai.OpenAI(base_url=pinned.url + "/v1", api_key="sk-good", max_retries=0)
    assert good.chat.completions.create(model=MODEL, messages=user("hi")).choices[0].message.content
    bad = openai.OpenAI(base_url=pinned.url + "/v1", api_key="sk-wrong-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        bad.chat.completions.create(model=MODEL, messages=user("hi"))
    assert err.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_bad_requests_map_to_bad_request_error(server: ThreadedHub, api: httpx.Client) -> None:
    oai = client(server)
    with pytest.raises(openai.BadRequestError) as missing_model:
        oai.chat.completions.create(model="", messages=user("x"))
    assert missing_model.value.type == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as missing_messages:
        oai.post("/chat/completions", body={"model": MODEL}, cast_to=object)
    assert missing_messages.value.param == "messages"
    assert missing_messages.value.code == "missing_required_parameter"

    r = api.post("/v1/chat/completions", content=b"{not json", headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 400
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert [c["response"]["status"] for c in calls(api)] == [400, 400, 400]


def test_sdk_retries_succeed_after_two_rate_limits(server: ThreadedHub, api: httpx.Client) -> None:
    fault(api, action="error", preset="rate_limited", times=2)
    result = client(server, max_retries=2).chat.completions.create(model=MODEL, messages=user("retry me"))
    assert result.choices[0].message.content == "mock reply to: retry me"
    recorded = calls(api)
    assert len(recorded) == 3
    assert [c["response"]["status"] for c in recorded] == [429, 429, 200]
    assert [c["fault"]["preset"] if c["fault"] else None for c in recorded] == ["rate_limited", "rate_limited", None]
    headers = recorded[0]["response"]["headers"]
    assert headers["retry-after-ms"] and headers["retry-after"]
    assert json.loads(recorded[0]["response"]["body"])["error"]["code"] == "rate_limit_exceeded"
    assert [c["headers"].get("x-stainless-retry-count") for c in recorded] == ["0", "1", "2"]


def test_rate_limit_error_when_faults_outlast_retries(server: ThreadedHub, api: httpx.Client) -> None:
    fault(api, action="error", preset="rate_limited", times=None)
    with pytest.raises(openai.RateLimitError) as err:
        client(server, max_retries=2).chat.completions.create(model=MODEL, messages=user("x"))
    assert err.value.status_code == 429
    assert len(calls(api)) == 3


@pytest.mark.parametrize(
    ("preset", "status", "exception"),
    [
        ("server_error", 500, openai.InternalServerError),
        ("unavailable", 503, openai.InternalServerError),
        ("overloaded", 503, openai.InternalServerError),
        ("unauthorized", 401, openai.AuthenticationError),
    ],
)
def test_presets_in_openai_shape(
    server: ThreadedHub, api: httpx.Client, preset: str, status: int, exception: type[openai.APIStatusError]
) -> None:
    fault(api, action="error", preset=preset)
    with pytest.raises(exception) as err:
        client(server).chat.completions.create(model=MODEL, messages=user("x"))
    assert err.value.status_code == status
    assert isinstance(err.value.body, dict) and "message" in err.value.body


def test_cut_stream_is_seen_as_truncated_and_recorded(server: ThreadedHub, api: httpx.Client) -> None:
    fault(api, action="cut_stream", after_chunks=3)
    stream = client(server).chat.completions.create(model=MODEL, messages=user("a long story please"), stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert len(received) == 3
    call = calls(api)[0]
    assert call["fault"]["action"] == "cut_stream"
    assert "3 chunks" in call["fault"]["reason"]
    assert len(frames(call["response"]["body"])) == 3
    assert call["data"]["reply"] == "mock reply to: a long story please"


def test_malformed_chunk_breaks_the_sdk_parser(server: ThreadedHub, api: httpx.Client) -> None:
    fault(api, action="malformed", after_chunks=2)
    stream = client(server).chat.completions.create(model=MODEL, messages=user("hello"), stream=True)
    received = 0
    with pytest.raises(json.JSONDecodeError):
        for _ in stream:
            received += 1
    assert received == 2
    call = calls(api)[0]
    assert call["fault"]["action"] == "malformed"
    assert "broken" in call["fault"]["reason"]


def test_malformed_plain_answer_is_truncated_json(server: ThreadedHub, api: httpx.Client) -> None:
    fault(api, action="malformed", after_chunks=0)
    with pytest.raises(json.JSONDecodeError):
        client(server).chat.completions.create(model=MODEL, messages=user("hello"))
    call = calls(api)[0]
    assert call["response"]["status"] == 200
    assert call["response"]["body"].startswith('{"id":"chatcmpl-')
    with pytest.raises(json.JSONDecodeError):
        json.loads(call["response"]["body"])


def test_namespaced_base_url(server: ThreadedHub, api: httpx.Client) -> None:
    client(server, prefix="/ns/team-a").chat.completions.create(model=MODEL, messages=user("hi"))
    recorded = calls(api, namespace="team-a")
    assert len(recorded) == 1 and recorded[0]["path"] == "/v1/chat/completions"


def test_async_client_plain_and_streamed(server: ThreadedHub, api: httpx.Client) -> None:
    import asyncio

    async def run() -> tuple[str | None, str]:
        async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0) as oai:
            plain = await oai.chat.completions.create(model=MODEL, messages=user("async hello"))
            stream = await oai.chat.completions.create(model=MODEL, messages=user("async hello"), stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream])
            return plain.choices[0].message.content, text

    plain, streamed = asyncio.run(run())
    assert plain == streamed == "mock reply to: async hello"
