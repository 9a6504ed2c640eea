"""The Anthropic fake, driven with the official `anthropic` SDK (and httpx for the raw wire format)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from typing import Any

import anthropic
import httpx
import httpx2
import pytest
import support
from support import extra_hub

from mockhub.server import ThreadedHub

calls = partial(support.calls, service="anthropic")

MODEL = "claude-sonnet-5"
HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
TOOLS: list[Any] = [
    {
        "name": "page_oncall",
        "description": "Page the on-call engineer of a team",
        "input_schema": {"type": "object", "properties": {"team": {"type": "string"}}, "required": ["team"]},
    }
]


def client(server: ThreadedHub, max_retries: int = 0) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="sk-ant-test", max_retries=max_retries)


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def events(body: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each SSE frame; checks each frame's `event:` matches its data's `type`."""
    out: list[tuple[str, dict[str, Any]]] = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        data = json.loads(lines["data"])
        assert data["type"] == lines["event"]
        out.append((lines["event"], data))
    return out


def post(api: httpx.Client, path: str, **spec: Any) -> dict[str, Any]:
    r = api.post(path, json={"service": "anthropic", **spec})
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


@pytest.fixture(scope="module")
def pinned() -> Iterator[ThreadedHub]:
    with extra_hub(credentials="sk-ant-good") as running:
        yield running


def test_plain_message_is_deterministic_and_recorded(server: ThreadedHub, api: httpx.Client) -> None:
    claude = client(server)
    raw = claude.messages.with_raw_response.create(
        model=MODEL, max_tokens=256, system="You are terse.", messages=user("disk full on db-1")
    )
    assert raw.headers["request-id"].startswith("req_")
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.model == MODEL
    assert message.stop_reason == "end_turn"
    assert len(message.content) == 1
    block = message.content[0]
    assert block.type == "text" and block.text == "mock reply to: disk full on db-1"
    usage = message.usage
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0

    again = claude.messages.create(
        model=MODEL, max_tokens=256, system="You are terse.", messages=user("disk full on db-1")
    )
    assert again.content == message.content and again.usage == message.usage

    recorded = calls(api)
    assert len(recorded) == 2
    data = recorded[0]["data"]
    assert data["model"] == MODEL
    assert data["messages"] == user("disk full on db-1")
    assert data["system"] == "You are terse."
    assert data["stream"] is False
    assert data["max_tokens"] == 256
    assert data["reply"] == "mock reply to: disk full on db-1"
    assert data["stop_reason"] == "end_turn"
    assert recorded[0]["response"]["headers"]["request-id"] == raw.headers["request-id"]


def test_stream_events_in_documented_order(server: ThreadedHub, api: httpx.Client) -> None:
    claude = client(server)
    plain = claude.messages.create(model=MODEL, max_tokens=256, messages=user("summarise the incident"))
    with claude.messages.stream(model=MODEL, max_tokens=256, messages=user("summarise the incident")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert plain.content[0].type == "text"
    assert text == plain.content[0].text
    assert final.content[0].type == "text" and final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert final.usage.input_tokens == plain.usage.input_tokens

    call = calls(api)[-1]
    assert call["data"]["stream"] is True
    assert call["response"]["headers"]["content-type"].startswith("text/event-stream")
    names = [name for name, _ in events(call["response"]["body"])]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert len(names[3:-3]) > 3  # token-sized deltas


def test_tool_use_plain_and_streamed(server: ThreadedHub, api: httpx.Client) -> None:
    arguments = {"team": "db", "note": "replica lag 40s"}
    post(
        api,
        "/stubs",
        match={"contains": "lag"},
        reply={"tool_calls": [{"name": "page_oncall", "arguments": arguments}]},
    )
    claude = client(server)
    message = claude.messages.create(model=MODEL, max_tokens=256, tools=TOOLS, messages=user("db lag"))
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["tool_use"]
    tool = message.content[0]
    assert tool.type == "tool_use"
    assert tool.name == "page_oncall" and tool.input == arguments and tool.id.startswith("toolu_")

    with claude.messages.stream(model=MODEL, max_tokens=256, tools=TOOLS, messages=user("db lag")) as stream:
        final = stream.get_final_message()
    streamed = final.content[0]
    assert final.stop_reason == "tool_use"
    assert streamed.type == "tool_use" and streamed.input == arguments and streamed.id == tool.id

    body = calls(api)[-1]["response"]["body"]
    parsed = events(body)
    start = next(d for n, d in parsed if n == "content_block_start")
    assert start["content_block"] == {"type": "tool_use", "id": tool.id, "name": "page_oncall", "input": {}}
    deltas = [d["delta"] for n, d in parsed if n == "content_block_delta"]
    assert {d["type"] for d in deltas} == {"input_json_delta"}
    assert len(deltas) > 3
    assert json.loads("".join(d["partial_json"] for d in deltas)) == arguments
    assert calls(api)[0]["data"]["reply_tool_calls"] == [{"id": tool.id, "name": "page_oncall", "arguments": arguments}]


def test_text_and_tool_use_together(server: ThreadedHub, api: httpx.Client) -> None:
    post(
        api,
        "/stubs",
        reply={"content": "Paging now.", "tool_calls": [{"name": "page_oncall", "arguments": {"team": "x"}}]},
    )
    with client(server).messages.stream(model=MODEL, max_tokens=256, tools=TOOLS, messages=user("go")) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[0].type == "text" and final.content[0].text == "Paging now."


def test_sequence_agent_loop_with_tool_result(server: ThreadedHub, api: httpx.Client) -> None:
    post(
        api,
        "/stubs",
        match={"contains": "investigate"},
        sequence=[
            {"tool_calls": [{"name": "page_oncall", "arguments": {"team": "db"}}]},
            {"content": "Paged the db team."},
        ],
    )
    claude = client(server)
    messages: list[Any] = user("investigate the outage")
    first = claude.messages.create(model=MODEL, max_tokens=256, tools=TOOLS, messages=messages)
    tool = first.content[0]
    assert tool.type == "tool_use"
    messages += [
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "paged: ok"}]},
    ]
    second = claude.messages.create(model=MODEL, max_tokens=256, tools=TOOLS, messages=messages)
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text" and second.content[0].text == "Paged the db team."

    recorded = calls(api)
    assert [c["stub"]["index"] for c in recorded] == [0, 1]
    assert [c["data"]["has_tool_result"] for c in recorded] == [False, True]
    assert recorded[1]["data"]["tool_results"] == [{"id": tool.id, "content": "paged: ok"}]
    assert recorded[1]["data"]["last_user_message"] == "investigate the outage"


def test_stub_matching_on_model_and_tool_result(server: ThreadedHub, api: httpx.Client) -> None:
    post(api, "/stubs", match={"data": {"model": "claude-opus-5"}}, reply={"content": "opus here"})
    post(api, "/stubs", match={"data": {"has_tool_result": True}}, reply={"content": "saw the result"})
    claude = client(server)
    opus = claude.messages.create(model="claude-opus-5", max_tokens=50, messages=user("hi"))
    assert opus.content[0].type == "text" and opus.content[0].text == "opus here"
    plain = claude.messages.create(model=MODEL, max_tokens=50, messages=user("hi"))
    assert plain.content[0].type == "text" and plain.content[0].text == "mock reply to: hi"
    result = claude.messages.create(
        model=MODEL,
        max_tokens=50,
        messages=[
            *user("look it up"),
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"}]},
        ],
    )
    assert result.content[0].type == "text" and result.content[0].text == "saw the result"


def test_max_tokens_and_stop_sequences(server: ThreadedHub, api: httpx.Client) -> None:
    claude = client(server)
    short = claude.messages.create(model=MODEL, max_tokens=3, messages=user("a b c d"))
    assert short.stop_reason == "max_tokens"
    assert short.content[0].type == "text" and short.content[0].text == "mock reply to"
    assert short.usage.output_tokens == 3
    stopped = claude.messages.create(model=MODEL, max_tokens=100, stop_sequences=["STOP"], messages=user("go STOP now"))
    assert stopped.stop_reason == "stop_sequence"
    assert stopped.stop_sequence == "STOP"
    assert stopped.content[0].type == "text" and stopped.content[0].text == "mock reply to: go "


# -- errors, auth, faults --------------------------------------------------------------------------


def test_auth_headers(server: ThreadedHub, api: httpx.Client) -> None:
    body = {"model": MODEL, "max_tokens": 10, "messages": user("hi")}
    missing = api.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert missing.status_code == 401
    error = missing.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == "authentication_error"
    assert missing.headers["request-id"]
    assert api.post("/v1/messages", json=body, headers=HEADERS).status_code == 200
    bearer = {"authorization": "Bearer sk-ant-oauth", "anthropic-version": "2023-06-01"}
    assert api.post("/v1/messages", json=body, headers=bearer).status_code == 200
    no_version = api.post("/v1/messages", json=body, headers={"x-api-key": "k"})
    assert no_version.status_code == 400
    assert no_version.json()["error"]["type"] == "invalid_request_error"
    assert [c["response"]["status"] for c in calls(api)] == [401, 200, 200, 400]


def test_pinned_credentials_map_to_authentication_error(pinned: ThreadedHub) -> None:
    good = anthropic.Anthropic(base_url=pinned.url, api_key="sk-ant-good", max_retries=0)
    assert good.messages.create(model=MODEL, max_tokens=10, messages=user("hi")).content
    bad = anthropic.Anthropic(base_url=pinned.url, api_key="sk-ant-bad", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as err:
        bad.messages.create(model=MODEL, max_tokens=10, messages=user("hi"))
    assert err.value.status_code == 401
    assert isinstance(err.value.body, dict) and err.value.body["error"]["type"] == "authentication_error"


def test_bad_requests(server: ThreadedHub, api: httpx.Client) -> None:
    claude = client(server)
    with pytest.raises(anthropic.BadRequestError) as err:
        claude.post("/v1/messages", body={"model": MODEL, "messages": user("x")}, cast_to=object)
    assert err.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
        "request_id": err.value.request_id,
    }
    bad_json = api.post("/v1/messages", content=b"{nope", headers={**HEADERS, "content-type": "application/json"})
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("spec", "status", "error_type", "exception"),
    [
        ({"preset": "rate_limited"}, 429, "rate_limit_error", anthropic.RateLimitError),
        ({"preset": "server_error"}, 500, "api_error", anthropic.InternalServerError),
        ({"preset": "overloaded"}, 529, "overloaded_error", anthropic.OverloadedError),
        ({"preset": "unauthorized"}, 401, "authentication_error", anthropic.AuthenticationError),
        ({"status": 404}, 404, "not_found_error", anthropic.NotFoundError),
        ({"status": 413}, 413, "request_too_large", anthropic.APIStatusError),
    ],
)
def test_error_shapes_map_to_sdk_exceptions(
    server: ThreadedHub,
    api: httpx.Client,
    spec: dict[str, Any],
    status: int,
    error_type: str,
    exception: type[anthropic.APIStatusError],
) -> None:
    post(api, "/faults", action="error", **spec)
    with pytest.raises(exception) as err:
        client(server).messages.create(model=MODEL, max_tokens=10, messages=user("x"))
    assert err.value.status_code == status
    assert isinstance(err.value.body, dict)
    assert err.value.body["type"] == "error" and err.value.body["error"]["type"] == error_type
    assert err.value.request_id and err.value.request_id.startswith("req_")


def test_sdk_retries_succeed_after_two_faults(server: ThreadedHub, api: httpx.Client) -> None:
    post(api, "/faults", action="error", preset="overloaded", times=2)
    message = client(server, max_retries=2).messages.create(model=MODEL, max_tokens=50, messages=user("retry me"))
    assert message.content[0].type == "text" and message.content[0].text == "mock reply to: retry me"
    recorded = calls(api)
    assert [c["response"]["status"] for c in recorded] == [529, 529, 200]
    assert recorded[0]["response"]["headers"]["retry-after-ms"]


def test_rate_limit_error_when_faults_outlast_retries(server: ThreadedHub, api: httpx.Client) -> None:
    post(api, "/faults", action="error", preset="rate_limited", times=3)
    with pytest.raises(anthropic.RateLimitError):
        client(server, max_retries=2).messages.create(model=MODEL, max_tokens=50, messages=user("x"))
    recorded = calls(api)
    assert len(recorded) == 3 and all(c["fault"]["preset"] == "rate_limited" for c in recorded)
    faults = api.get("/faults").json()
    listed = faults["faults"] if isinstance(faults, dict) else faults
    assert listed[0]["fired"] == 3


def test_cut_stream_is_seen_as_truncated_and_recorded(server: ThreadedHub, api: httpx.Client) -> None:
    post(api, "/faults", action="cut_stream", after_chunks=4)
    seen: list[str] = []
    # This SDK lets a transport error mid-stream through unwrapped (httpx2's, not APIConnectionError).
    with (
        pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)),
        client(server).messages.stream(model=MODEL, max_tokens=256, messages=user("tell me a story")) as stream,
    ):
        for event in stream:
            seen.append(event.type)
    assert "message_stop" not in seen
    call = calls(api)[0]
    assert call["fault"]["action"] == "cut_stream"
    assert "4 chunks" in call["fault"]["reason"]
    assert [name for name, _ in events(call["response"]["body"])] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
    ]


def test_malformed_chunk(server: ThreadedHub, api: httpx.Client) -> None:
    post(api, "/faults", action="malformed", after_chunks=3)
    with (
        pytest.raises(json.JSONDecodeError),
        client(server).messages.stream(model=MODEL, max_tokens=256, messages=user("hello")) as stream,
    ):
        for _ in stream:
            pass
    assert calls(api)[0]["fault"]["action"] == "malformed"


def test_count_tokens_matches_message_usage(server: ThreadedHub, api: httpx.Client) -> None:
    claude = client(server)
    messages = user("how many tokens is this prompt?")
    counted = claude.messages.count_tokens(model=MODEL, system="Be brief.", tools=TOOLS, messages=messages)
    sent = claude.messages.create(model=MODEL, max_tokens=64, system="Be brief.", tools=TOOLS, messages=messages)
    assert counted.input_tokens == sent.usage.input_tokens > 0
    assert [c["path"] for c in calls(api)] == ["/v1/messages/count_tokens", "/v1/messages"]


def test_async_client_streams(server: ThreadedHub, api: httpx.Client) -> None:
    import asyncio

    async def run() -> str:
        claude = anthropic.AsyncAnthropic(base_url=server.url, api_key="k", max_retries=0)
        async with claude, claude.messages.stream(model=MODEL, max_tokens=64, messages=user("async hi")) as stream:
            return "".join([t async for t in stream.text_stream])

    assert asyncio.run(run()) == "mock reply to: async hi"
