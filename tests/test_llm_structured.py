"""Structured outputs, tool choice, `n` and conversation checks of the LLM fakes, with the official SDKs."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any, Literal

import anthropic
import httpx
import jsonschema
import openai
import pytest
import support
from pydantic import BaseModel, Field

from mockhub.server import ThreadedHub
from mockhub.services import json_schema

MODEL = "gpt-4o-mini"
CLAUDE = "claude-sonnet-4-5"


class Address(BaseModel):
    street: str = Field(min_length=3)
    zip: str | None


class Incident(BaseModel):
    id: uuid.UUID
    title: str
    severity: Literal["low", "high"]
    opened: datetime.datetime
    owner_email: str = Field(json_schema_extra={"format": "email"})
    tags: list[str] = Field(min_length=2)
    count: int = Field(ge=5, le=9)
    site: Address


def oai(server: ThreadedHub) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0)


def claude(server: ThreadedHub) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="sk-ant-test", max_retries=0)


PAGE: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "page_oncall",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {"team": {"type": "string", "enum": ["db", "web"]}, "urgent": {"type": "boolean"}},
            "required": ["team", "urgent"],
            "additionalProperties": False,
        },
    },
}


# -- the generator and validator -------------------------------------------------------------------


def test_generated_documents_validate_with_jsonschema_and_pydantic() -> None:
    from openai.lib._pydantic import to_strict_json_schema

    class Node(BaseModel):
        name: str
        children: list[Node] = []

    for model in (Incident, Node):
        for schema in (model.model_json_schema(), to_strict_json_schema(model)):
            for variant in range(3):
                doc = json_schema.example(schema, variant)
                jsonschema.validate(doc, schema, format_checker=jsonschema.FormatChecker())
                model.model_validate(doc)
                assert json_schema.problems(doc, schema) == []
            assert json_schema.example(schema, 1) == json_schema.example(schema, 1)
            assert json_schema.example(schema, 0) != json_schema.example(schema, 1)
    schema = to_strict_json_schema(Incident)
    found = json_schema.problems({"title": 3, "severity": "mid", "extra": 1}, schema, limit=50)
    assert "$: missing required property 'id'" in found
    assert "$.title: expected string, got integer" in found
    assert any(p.startswith("$.severity:") for p in found)
    assert "$: unexpected property 'extra'" in found


# -- OpenAI chat completions -----------------------------------------------------------------------


def test_chat_parse_with_a_pydantic_model_gets_a_valid_document(server: ThreadedHub, api: httpx.Client) -> None:
    client = oai(server)
    first = client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "summarize the outage"}], response_format=Incident
    )
    parsed = first.choices[0].message.parsed
    assert isinstance(parsed, Incident)
    assert parsed.severity in ("low", "high") and 5 <= parsed.count <= 9 and len(parsed.tags) >= 2
    assert first.choices[0].finish_reason == "stop"
    again = client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "summarize the outage"}], response_format=Incident
    )
    assert again.choices[0].message.content == first.choices[0].message.content
    data = support.calls(api, "openai")[-1]["data"]
    assert data["response_format"]["type"] == "json_schema" and data["response_format"]["name"] == "Incident"

    # Streaming gives the same document in pieces.
    with client.chat.completions.stream(
        model=MODEL, messages=[{"role": "user", "content": "summarize the outage"}], response_format=Incident
    ) as stream:
        deltas = [e for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert len(deltas) > 3
    assert final.choices[0].message.parsed == parsed


def test_chat_json_object_needs_the_word_json_and_answers_an_object(server: ThreadedHub, api: httpx.Client) -> None:
    client = oai(server)
    result = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "answer in JSON"}], response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(result.choices[0].message.content or ""), dict)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "answer"}], response_format={"type": "json_object"}
        )
    assert "must contain the word 'json'" in info.value.message


def test_strict_schema_must_be_closed(server: ThreadedHub, api: httpx.Client) -> None:
    loose = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    with pytest.raises(openai.BadRequestError) as info:
        oai(server).chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "x"}],
            response_format={"type": "json_schema", "json_schema": {"name": "A", "schema": loose, "strict": True}},
        )
    assert "Invalid schema for response_format 'A'" in info.value.message
    assert "'additionalProperties' is required to be supplied and to be false" in info.value.message


def test_chat_tool_choice_forces_a_call_with_valid_arguments(server: ThreadedHub, api: httpx.Client) -> None:
    client = oai(server)
    messages: list[Any] = [{"role": "user", "content": "db is down"}]
    named = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        tools=[PAGE],
        tool_choice={"type": "function", "function": {"name": "page_oncall"}},
    )
    call = named.choices[0].message.tool_calls
    assert call is not None and call[0].function.name == "page_oncall"  # type: ignore[union-attr]
    args = json.loads(call[0].function.arguments)  # type: ignore[union-attr]
    assert args["team"] in ("db", "web") and isinstance(args["urgent"], bool)
    assert named.choices[0].finish_reason == "stop"  # what OpenAI answers for a forced named function
    required = client.chat.completions.create(model=MODEL, messages=messages, tools=[PAGE], tool_choice="required")
    assert required.choices[0].finish_reason == "tool_calls"
    assert required.choices[0].message.tool_calls is not None
    auto = client.chat.completions.create(model=MODEL, messages=messages, tools=[PAGE])
    assert auto.choices[0].message.tool_calls is None

    stream = client.chat.completions.create(
        model=MODEL, messages=messages, tools=[PAGE], tool_choice="required", stream=True
    )
    chunks = list(stream)
    fragments = "".join(
        tc.function.arguments or ""
        for c in chunks
        if c.choices
        for tc in c.choices[0].delta.tool_calls or ()
        if tc.function is not None
    )
    assert json.loads(fragments) == json.loads(required.choices[0].message.tool_calls[0].function.arguments)  # type: ignore[union-attr]

    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL, messages=messages, tools=[PAGE], tool_choice={"type": "function", "function": {"name": "x"}}
        )
    assert "Tool choice 'x' not found" in info.value.message
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=messages, tool_choice="required")


def test_stub_that_does_not_fit_the_schema_is_a_clear_error(server: ThreadedHub, api: httpx.Client) -> None:
    bad = support.add_stub(api, "openai", reply={"content": "not json at all"})
    client = oai(server)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.parse(
            model=MODEL, messages=[{"role": "user", "content": "x"}], response_format=Incident
        )
    assert f"stub {bad['id']}" in info.value.message and "not JSON" in info.value.message
    assert support.calls(api, "openai")[-1]["data"]["error"] == "stub_mismatch"
    api.delete(f"/stubs/{bad['id']}")
    wrong = support.add_stub(api, "openai", reply={"content": json.dumps({"title": "t"})})
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.parse(
            model=MODEL, messages=[{"role": "user", "content": "x"}], response_format=Incident
        )
    assert f"stub {wrong['id']}" in info.value.message and "missing required property 'id'" in info.value.message
    api.delete(f"/stubs/{wrong['id']}")
    good = Incident.model_validate(json_schema.example(Incident.model_json_schema(), 2))
    support.add_stub(api, "openai", reply={"content": good.model_dump_json()})
    result = client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "x"}], response_format=Incident
    )
    assert result.choices[0].message.parsed == good


def test_stub_text_under_forced_tool_choice_is_an_error(server: ThreadedHub, api: httpx.Client) -> None:
    support.add_stub(api, "openai", reply={"content": "I'd rather chat"})
    with pytest.raises(openai.InternalServerError) as info:
        oai(server).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], tools=[PAGE], tool_choice="required"
        )
    assert "tool_choice demands a tool call" in info.value.message


def test_n_returns_n_distinct_choices(server: ThreadedHub, api: httpx.Client) -> None:
    client = oai(server)
    result = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], n=3)
    assert [c.index for c in result.choices] == [0, 1, 2]
    texts = [c.message.content for c in result.choices]
    assert len(set(texts)) == 3 and texts[0] == "mock reply to: hi"
    again = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], n=3)
    assert [c.message.content for c in again.choices] == texts
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], n=3, stream=True)
    joined = ["", "", ""]
    for chunk in stream:
        for choice in chunk.choices:
            joined[choice.index] += choice.delta.content or ""
    assert joined == texts
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], n=0)


# -- OpenAI Responses ------------------------------------------------------------------------------


def test_responses_parse_with_text_format(server: ThreadedHub, api: httpx.Client) -> None:
    client = oai(server)
    result = client.responses.parse(model=MODEL, input="summarize the outage", text_format=Incident)
    assert isinstance(result.output_parsed, Incident)
    forced = client.responses.create(
        model=MODEL,
        input="db down",
        tools=[{"type": "function", **PAGE["function"]}],
        tool_choice={"type": "function", "name": "page_oncall"},
    )
    call = forced.output[0]
    assert call.type == "function_call" and call.name == "page_oncall"
    assert json.loads(call.arguments)["team"] in ("db", "web")


# -- Anthropic -------------------------------------------------------------------------------------

TOOL: dict[str, Any] = {
    "name": "page_oncall",
    "description": "Page a team",
    "input_schema": {
        "type": "object",
        "properties": {"team": {"type": "string", "enum": ["db", "web"]}},
        "required": ["team"],
    },
}


def test_anthropic_forced_tool_choice(server: ThreadedHub, api: httpx.Client) -> None:
    client = claude(server)
    msgs: list[Any] = [{"role": "user", "content": "db down"}]
    for choice in ({"type": "tool", "name": "page_oncall"}, {"type": "any"}):
        result = client.messages.create(model=CLAUDE, max_tokens=200, messages=msgs, tools=[TOOL], tool_choice=choice)  # type: ignore[arg-type]
        assert result.stop_reason == "tool_use"
        block = result.content[0]
        assert block.type == "tool_use" and block.name == "page_oncall"
        assert block.input["team"] in ("db", "web")  # type: ignore[index]
    auto = client.messages.create(model=CLAUDE, max_tokens=200, messages=msgs, tools=[TOOL])
    assert auto.stop_reason == "end_turn"
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(
            model=CLAUDE, max_tokens=200, messages=msgs, tools=[TOOL], tool_choice={"type": "tool", "name": "nope"}
        )
    assert "Tool 'nope' not found in provided tools" in str(info.value)


class Ticket(BaseModel):
    title: str
    severity: Literal["low", "high"]
    site: Address


def test_anthropic_parse_with_output_format(server: ThreadedHub, api: httpx.Client) -> None:
    result = claude(server).messages.parse(
        model=CLAUDE, max_tokens=1000, messages=[{"role": "user", "content": "summarize"}], output_format=Ticket
    )
    assert isinstance(result.parsed_output, Ticket)


# -- conversation checks ---------------------------------------------------------------------------


def test_openai_tool_message_must_answer_a_call(server: ThreadedHub, api: httpx.Client) -> None:
    client = oai(server)
    call = {"id": "call_1", "type": "function", "function": {"name": "page_oncall", "arguments": "{}"}}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "call_1", "content": "ok"}],
        )
    assert (
        "messages with role 'tool' must be a response to a preceeding message with 'tool_calls'" in info.value.message
    )
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "user", "content": "x"},
                {"role": "assistant", "tool_calls": [call]},
                {"role": "user", "content": "y"},
            ],
        )
    assert "did not have response messages: call_1" in info.value.message
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[])
    ok = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "paged db"},
        ],
    )
    assert ok.choices[0].message.content == "mock reply to tool result: paged db"
    assert [c["data"].get("error") for c in support.calls(api, "openai")][:3] == ["invalid", "invalid", "empty_array"]


def test_anthropic_conversation_checks(server: ThreadedHub, api: httpx.Client) -> None:
    client = claude(server)
    use = {"type": "tool_use", "id": "toolu_1", "name": "page_oncall", "input": {}}
    bad: list[Any] = [
        [],
        [{"role": "assistant", "content": "hi"}],
        [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}]}],
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": [use]}, {"role": "user", "content": "y"}],
    ]
    for messages in bad:
        with pytest.raises(anthropic.BadRequestError):
            client.messages.create(model=CLAUDE, max_tokens=10, messages=messages)
    r = api.post(
        "/v1/messages",
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
        json={"model": CLAUDE, "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 400 and r.json()["error"]["message"] == "max_tokens: Field required"
    # Consecutive user messages are one turn, as the API combines them.
    ok = client.messages.create(
        model=CLAUDE,
        max_tokens=100,
        tools=[TOOL],
        messages=[
            {"role": "user", "content": "x"},
            {"role": "user", "content": "and y"},
            {"role": "assistant", "content": [use]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "paged"}]},
        ],
    )
    assert ok.content[0].type == "text" and ok.content[0].text == "mock reply to tool result: paged"


# -- langchain -------------------------------------------------------------------------------------


def test_langchain_with_structured_output(server: ThreadedHub, api: httpx.Client) -> None:
    from langchain_anthropic import ChatAnthropic
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(model=MODEL, base_url=server.url + "/v1", api_key="sk-test", max_retries=0)  # type: ignore[arg-type]
    # json_mode is left out: there the schema is only in the prompt, so no API can honour it.
    for method in ("json_schema", "function_calling"):
        out = chat.with_structured_output(Ticket, method=method).invoke("summarize the outage in json")  # type: ignore[arg-type]
        assert isinstance(out, Ticket), method
    assert isinstance(chat.with_structured_output(Ticket).invoke("summarize"), Ticket)
    claude_chat = ChatAnthropic(model=CLAUDE, base_url=server.url, api_key="sk-ant-test", max_retries=0)  # type: ignore[call-arg,arg-type]
    assert isinstance(claude_chat.with_structured_output(Ticket).invoke("summarize"), Ticket)


def test_streams_carry_the_same_structured_content(server: ThreadedHub, api: httpx.Client) -> None:
    msgs: list[Any] = [{"role": "user", "content": "db down"}]
    client = claude(server)
    choice: Any = {"type": "tool", "name": "page_oncall"}
    plain = client.messages.create(model=CLAUDE, max_tokens=200, messages=msgs, tools=[TOOL], tool_choice=choice)
    with client.messages.stream(
        model=CLAUDE, max_tokens=200, messages=msgs, tools=[TOOL], tool_choice=choice
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use" and plain.content[0].type == "tool_use"
    assert final.content[0].input == plain.content[0].input

    openai_client = oai(server)
    with openai_client.responses.stream(model=MODEL, input="summarize", text_format=Ticket) as events:
        done = events.get_final_response()
    assert isinstance(done.output_parsed, Ticket)
    assert (
        done.output_parsed
        == openai_client.responses.parse(model=MODEL, input="summarize", text_format=Ticket).output_parsed
    )


def test_responses_stub_must_fit_text_format(server: ThreadedHub, api: httpx.Client) -> None:
    rule = support.add_stub(api, "openai", reply={"content": '{"title": 1}'})
    with pytest.raises(openai.InternalServerError) as info:
        oai(server).responses.parse(model=MODEL, input="summarize", text_format=Ticket)
    assert f"stub {rule['id']}" in info.value.message and "$.title: expected string" in info.value.message
