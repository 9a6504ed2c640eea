"""The Gemini fake, driven with the official `google-genai` SDK (and httpx for the raw wire format)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from typing import Literal

import httpx
import httpx2
import pytest
import support
from google import genai
from google.genai import errors, types
from pydantic import BaseModel
from support import add_fault, add_stub, extra_hub

from mockhub.server import ThreadedHub

calls = partial(support.calls, service="gemini")

MODEL = "gemini-2.5-flash"
KEY = {"x-goog-api-key": "test-key"}
PAGE_ONCALL = types.FunctionDeclaration(
    name="page_oncall",
    description="Page the on-call engineer of a team",
    parameters=types.Schema(type=types.Type.OBJECT, properties={"team": types.Schema(type=types.Type.STRING)}),
)


def client(server: ThreadedHub, version: str | None = None, retries: int | None = None) -> genai.Client:
    retry = types.HttpRetryOptions(attempts=retries, initial_delay=0.01, max_delay=0.02) if retries else None
    options = types.HttpOptions(base_url=server.url, api_version=version, retry_options=retry)
    made = genai.Client(api_key="test-key", http_options=options)
    # A Client closes its connections when collected: `client(server).models.x()` must keep it alive.
    _ALIVE.append(made)
    return made


_ALIVE: list[genai.Client] = []


@pytest.fixture(scope="module")
def pinned() -> Iterator[ThreadedHub]:
    with extra_hub(credentials="good-key") as running:
        yield running


def test_generate_content_is_deterministic_and_recorded(server: ThreadedHub, api: httpx.Client) -> None:
    gemini = client(server)
    config = types.GenerateContentConfig(system_instruction="You are terse.", temperature=0.2)
    response = gemini.models.generate_content(model=MODEL, contents="disk full on db-1", config=config)
    assert response.text == "mock reply to: disk full on db-1"
    assert response.model_version == MODEL
    assert response.response_id
    [candidate] = response.candidates or []
    assert candidate.finish_reason == types.FinishReason.STOP
    assert candidate.content is not None and candidate.content.role == "model"
    usage = response.usage_metadata
    assert usage is not None and usage.prompt_token_count and usage.candidates_token_count
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    again = gemini.models.generate_content(model=MODEL, contents="disk full on db-1", config=config)
    assert again.text == response.text and again.usage_metadata == usage
    call = calls(api)[0]
    # The SDK's default API version, given only a base_url, is v1.
    assert call["path"] == f"/v1/models/{MODEL}:generateContent"
    data = call["data"]
    assert data["model"] == MODEL and data["stream"] is False
    assert data["last_user_message"] == "disk full on db-1"
    assert data["system"] == {"parts": [{"text": "You are terse."}], "role": "user"}
    assert data["generation_config"] == {"temperature": 0.2}
    assert data["reply"] == response.text and data["finish_reason"] == "STOP"
    assert data["usage"] == {"input_tokens": usage.prompt_token_count, "output_tokens": usage.candidates_token_count}
    assert call["summary"] == f"{MODEL}: disk full on db-1 → mock reply to: disk full on db-1"
    assert support.calls(api, contains="disk full on db-1")[0]["service"] == "gemini"


def test_v1beta_and_query_key(server: ThreadedHub, api: httpx.Client) -> None:
    response = client(server, version="v1beta").models.generate_content(model=MODEL, contents="beta")
    assert response.text == "mock reply to: beta"
    body = {"contents": [{"role": "user", "parts": [{"text": "by key"}]}]}
    raw = httpx.post(f"{server.url}/v1beta/models/{MODEL}:generateContent?key=abc", json=body)
    assert raw.status_code == 200, raw.text
    assert raw.json()["candidates"][0]["content"]["parts"] == [{"text": "mock reply to: by key"}]
    assert [c["path"] for c in calls(api)][::-1] == [
        f"/v1beta/models/{MODEL}:generateContent",
        f"/v1beta/models/{MODEL}:generateContent",
    ]


def test_stream_over_sse(server: ThreadedHub, api: httpx.Client) -> None:
    chunks = list(client(server).models.generate_content_stream(model=MODEL, contents="stream this please"))
    assert "".join(c.text or "" for c in chunks) == "mock reply to: stream this please"
    assert len(chunks) > 3
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert all(c.candidates and c.candidates[0].finish_reason is None for c in chunks[:-1])
    assert last.usage_metadata and last.usage_metadata.candidates_token_count
    [call] = calls(api)
    assert call["path"].endswith(":streamGenerateContent") and call["data"]["stream"] is True
    assert call["data"]["alt"] == "sse" and call["data"]["reply"] == "mock reply to: stream this please"
    # The raw frames: `data: {GenerateContentResponse}` per chunk, text/event-stream.
    body = {"contents": [{"parts": [{"text": "raw"}]}]}
    with httpx.stream(
        "POST", f"{server.url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse", json=body, headers=KEY
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        frames = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    assert "".join(f["candidates"][0]["content"]["parts"][0]["text"] for f in frames) == "mock reply to: raw"
    assert frames[-1]["candidates"][0]["finishReason"] == "STOP"


def test_stream_without_alt_sse_is_a_json_array(server: ThreadedHub, api: httpx.Client) -> None:
    body = {"contents": [{"parts": [{"text": "array"}]}]}
    r = httpx.post(f"{server.url}/v1beta/models/{MODEL}:streamGenerateContent", json=body, headers=KEY)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    chunks = r.json()
    assert isinstance(chunks, list) and len(chunks) > 1
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == "mock reply to: array"
    assert chunks[-1]["usageMetadata"]["totalTokenCount"] > chunks[-1]["usageMetadata"]["promptTokenCount"]


def test_count_tokens_matches_the_prompt_count(server: ThreadedHub, api: httpx.Client) -> None:
    gemini = client(server)
    counted = gemini.models.count_tokens(model=MODEL, contents="how many tokens is this")
    generated = gemini.models.generate_content(model=MODEL, contents="how many tokens is this")
    assert counted.total_tokens and generated.usage_metadata
    assert counted.total_tokens == generated.usage_metadata.prompt_token_count
    assert calls(api)[0]["path"] == f"/v1/models/{MODEL}:countTokens"
    assert calls(api)[0]["response"]["status"] == 200


def test_embed_content_single_and_batch(server: ThreadedHub, api: httpx.Client) -> None:
    gemini = client(server)
    one = gemini.models.embed_content(model="gemini-embedding-001", contents="disk full")
    assert one.embeddings and len(one.embeddings) == 1
    vector = one.embeddings[0].values or []
    assert len(vector) == 3072 and abs(sum(v * v for v in vector) - 1) < 1e-6
    many = gemini.models.embed_content(
        model="text-embedding-004", contents=["disk full", "disk is full"], config={"output_dimensionality": 16}
    )
    assert many.embeddings and [len(e.values or []) for e in many.embeddings] == [16, 16]
    config = {"output_dimensionality": 16}
    again = gemini.models.embed_content(model="text-embedding-004", contents="disk full", config=config)
    assert again.embeddings and again.embeddings[0].values == many.embeddings[0].values
    data = calls(api)[-1]["data"]
    assert data["input"] == ["disk full"] and data["batch"] is True and data["dimensions"] == 16
    # The single-request method, which the SDK does not use but other clients do.
    body = {"content": {"parts": [{"text": "disk full"}]}, "outputDimensionality": 16}
    r = httpx.post(f"{server.url}/v1beta/models/text-embedding-004:embedContent", json=body, headers=KEY)
    assert r.status_code == 200 and r.json()["embedding"]["values"] == many.embeddings[0].values


def test_models_list_and_get(server: ThreadedHub, api: httpx.Client) -> None:
    gemini = client(server)
    names = [m.name for m in gemini.models.list(config={"page_size": 2})]
    assert "models/gemini-2.5-flash" in names and "models/gemini-embedding-001" in names
    assert len(names) == len(set(names)) > 2  # paged through nextPageToken
    model = gemini.models.get(model=MODEL)
    assert model.name == f"models/{MODEL}" and model.supported_actions and "generateContent" in model.supported_actions
    assert {c["path"] for c in calls(api)} >= {"/v1/models", f"/v1/models/{MODEL}"}


def test_v1_models_tells_gemini_and_openai_apart(server: ThreadedHub, api: httpx.Client) -> None:
    openai_list = httpx.get(f"{server.url}/v1/models", headers={"authorization": "Bearer sk-test"})
    assert openai_list.status_code == 200 and openai_list.json()["object"] == "list"
    google_list = httpx.get(f"{server.url}/v1/models", headers=KEY)
    assert google_list.status_code == 200 and "models" in google_list.json()
    by_query = httpx.get(f"{server.url}/v1/models/{MODEL}?key=abc")
    assert by_query.json()["name"] == f"models/{MODEL}"
    openai_model = httpx.get(f"{server.url}/v1/models/gpt-4o", headers={"authorization": "Bearer sk-test"})
    assert openai_model.json()["object"] == "model"
    services = [c["service"] for c in support.calls(api)][::-1]
    assert services == ["openai", "gemini", "gemini", "openai"]


def test_stub_text_and_finish_reason(server: ThreadedHub, api: httpx.Client) -> None:
    add_stub(api, "gemini", reply={"content": "critical", "finish_reason": "max_tokens"})
    response = client(server).models.generate_content(model=MODEL, contents="classify")
    assert response.text == "critical"
    assert response.candidates and response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    add_stub(api, "gemini", reply={"finish_reason": "SAFETY"})
    blocked = client(server).models.generate_content(model=MODEL, contents="something bad")
    assert blocked.candidates and blocked.candidates[0].finish_reason == types.FinishReason.SAFETY
    assert blocked.candidates[0].content is None and blocked.text is None
    assert blocked.candidates[0].safety_ratings


def test_stub_tool_calls_are_function_call_parts(server: ThreadedHub, api: httpx.Client) -> None:
    add_stub(api, "gemini", reply={"tool_calls": [{"name": "page_oncall", "arguments": {"team": "db"}}]})
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[PAGE_ONCALL])])
    response = client(server).models.generate_content(model=MODEL, contents="db-1 is down", config=config)
    [call] = response.function_calls or []
    assert call.name == "page_oncall" and call.args == {"team": "db"}
    assert response.candidates and response.candidates[0].finish_reason == types.FinishReason.STOP
    data = calls(api)[0]["data"]
    declared = PAGE_ONCALL.model_dump(mode="json", exclude_none=True, by_alias=True)
    assert data["tools"] == [{"functionDeclarations": [declared]}]
    assert [(t["name"], t["arguments"]) for t in data["reply_tool_calls"]] == [("page_oncall", {"team": "db"})]
    # Streamed, the function call arrives whole in the last chunk.
    chunks = list(client(server).models.generate_content_stream(model=MODEL, contents="db-1 is down", config=config))
    assert [(c.name, c.args) for ch in chunks for c in ch.function_calls or []] == [("page_oncall", {"team": "db"})]


def test_automatic_function_calling_runs_the_tool_then_answers(server: ThreadedHub, api: httpx.Client) -> None:
    paged: list[str] = []

    def page_oncall(team: str) -> dict[str, str]:
        """Page the on-call engineer of a team."""
        paged.append(team)
        return {"status": "paged"}

    add_stub(
        api,
        "gemini",
        sequence=[
            {"tool_calls": [{"name": "page_oncall", "arguments": {"team": "db"}}]},
            {"content": "db on-call paged"},
        ],
    )
    config = types.GenerateContentConfig(tools=[page_oncall])
    response = client(server).models.generate_content(model=MODEL, contents="db-1 is down", config=config)
    assert paged == ["db"] and response.text == "db on-call paged"
    first, second = calls(api)
    assert first["data"]["has_tool_result"] is False
    assert second["data"]["has_tool_result"] is True
    assert second["data"]["tool_results"] == [{"id": "page_oncall", "content": '{"result":{"status":"paged"}}'}]
    # With automatic function calling off, the SDK hands the call back instead.
    add_stub(api, "gemini", reply={"tool_calls": [{"name": "page_oncall", "arguments": {"team": "web"}}]})
    off = types.GenerateContentConfig(
        tools=[page_oncall], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)
    )
    handed = client(server).models.generate_content(model=MODEL, contents="web is down", config=off)
    assert paged == ["db"] and handed.function_calls and handed.function_calls[0].args == {"team": "web"}


class Incident(BaseModel):
    severity: Literal["low", "high"]
    summary: str
    hosts: list[str]
    count: int


def test_json_mode_answers_json_shaped_by_the_schema(server: ThreadedHub, api: httpx.Client) -> None:
    config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=Incident)
    response = client(server).models.generate_content(model=MODEL, contents="classify disk full", config=config)
    reply = "mock reply to: classify disk full"
    assert response.parsed == Incident(severity="low", summary=reply, hosts=[reply], count=0)
    plain = types.GenerateContentConfig(response_mime_type="application/json")
    assert json.loads(client(server).models.generate_content(model=MODEL, contents="x", config=plain).text or "") == (
        "mock reply to: x"
    )
    # A stub's content is answered as given.
    add_stub(api, "gemini", reply={"content": '{"severity": "high", "summary": "s", "hosts": [], "count": 2}'})
    stubbed = client(server).models.generate_content(model=MODEL, contents="classify", config=config)
    assert stubbed.parsed == Incident(severity="high", summary="s", hosts=[], count=2)
    assert calls(api)[0]["data"]["response_mime_type"] == "application/json"


def test_validation_errors_are_google_shaped(server: ThreadedHub, api: httpx.Client) -> None:
    gemini = client(server)
    url = f"{server.url}/v1beta/models/{MODEL}:generateContent"
    # The SDK refuses empty contents itself; a plain client gets Google's answer.
    empty = httpx.post(url, json={"contents": []}, headers=KEY)
    assert empty.status_code == 400
    assert empty.json() == {
        "error": {
            "code": 400,
            "message": "* GenerateContentRequest.contents: contents is not specified\n",
            "status": "INVALID_ARGUMENT",
        }
    }
    with pytest.raises(errors.ClientError) as missing:
        gemini.models.generate_content(model="no such model", contents="hi")
    assert missing.value.code == 404 and missing.value.status == "NOT_FOUND"
    assert missing.value.message and "is not found for API version v1" in missing.value.message
    with pytest.raises(errors.ClientError) as wrong_kind:
        gemini.models.embed_content(model=MODEL, contents="hi")
    assert wrong_kind.value.code == 404 and "not supported for batchEmbedContents" in str(wrong_kind.value.message)
    unknown = httpx.post(url, json={"contents": [{"parts": [{"text": "x"}]}], "temprature": 1}, headers=KEY)
    assert unknown.status_code == 400
    error = unknown.json()["error"]
    assert error["message"] == 'Invalid JSON payload received. Unknown name "temprature": Cannot find field.'
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    no_parts = httpx.post(url, json={"contents": [{"role": "user", "parts": []}]}, headers=KEY)
    assert no_parts.json()["error"]["message"].startswith("* GenerateContentRequest.contents[0].parts:")
    bad_role = httpx.post(url, json={"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, headers=KEY)
    assert bad_role.status_code == 400 and "valid role" in bad_role.json()["error"]["message"]
    recorded = calls(api)
    assert len(recorded) == 6 and all(c["data"]["error"] for c in recorded)
    assert recorded[0]["data"]["error"] == "INVALID_ARGUMENT"


def test_malformed_json(server: ThreadedHub, api: httpx.Client) -> None:
    r = httpx.post(
        f"{server.url}/v1beta/models/{MODEL}:generateContent",
        content=b'{"contents": [',
        headers={**KEY, "content-type": "application/json"},
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and error["message"].startswith("Invalid JSON payload received.")
    [call] = calls(api)
    assert call["data"]["error"] == "INVALID_ARGUMENT" and call["body"] == '{"contents": ['
    # The server is still answering.
    assert client(server).models.generate_content(model=MODEL, contents="after").text == "mock reply to: after"


def test_auth_errors(server: ThreadedHub, pinned: ThreadedHub, api: httpx.Client) -> None:
    r = httpx.post(f"{server.url}/v1beta/models/{MODEL}:generateContent", json={"contents": []})
    assert r.status_code == 403
    assert r.json() == {
        "error": {
            "code": 403,
            "message": "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
            "status": "PERMISSION_DENIED",
        }
    }
    assert httpx.get(f"{server.url}/v1beta/models").status_code == 403
    assert calls(api)[0]["data"]["error"] == "PERMISSION_DENIED"
    wrong = genai.Client(api_key="bad-key", http_options=types.HttpOptions(base_url=pinned.url))
    with pytest.raises(errors.ClientError) as bad:
        wrong.models.generate_content(model=MODEL, contents="hi")
    assert bad.value.code == 400 and bad.value.status == "INVALID_ARGUMENT"
    assert bad.value.message == "API key not valid. Please pass a valid API key."
    assert bad.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    good = genai.Client(api_key="good-key", http_options=types.HttpOptions(base_url=pinned.url))
    assert good.models.generate_content(model=MODEL, contents="hi").text == "mock reply to: hi"


@pytest.mark.parametrize(
    ("preset", "error", "code", "status"),
    [
        ("rate_limited", errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
        ("server_error", errors.ServerError, 500, "INTERNAL"),
        ("unavailable", errors.ServerError, 503, "UNAVAILABLE"),
        ("overloaded", errors.ServerError, 503, "UNAVAILABLE"),
        ("unauthorized", errors.ClientError, 400, "INVALID_ARGUMENT"),
    ],
)
def test_presets(
    server: ThreadedHub, api: httpx.Client, preset: str, error: type[errors.APIError], code: int, status: str
) -> None:
    add_fault(api, "gemini", action="error", preset=preset)
    with pytest.raises(error) as raised:
        client(server).models.generate_content(model=MODEL, contents="hi")
    assert raised.value.code == code and raised.value.status == status
    if preset == "rate_limited":
        assert raised.value.details["error"]["details"][-1]["retryDelay"] == "1s"
    [call] = calls(api)
    assert call["response"]["status"] == code and call["fault"]


def test_sdk_retries_a_transient_preset_then_succeeds(server: ThreadedHub, api: httpx.Client) -> None:
    add_fault(api, "gemini", action="error", preset="unavailable", times=1)
    response = client(server, retries=3).models.generate_content(model=MODEL, contents="retry me")
    assert response.text == "mock reply to: retry me"
    assert [c["response"]["status"] for c in calls(api)] == [503, 200]


def test_fault_with_custom_status_and_a_cut_stream(server: ThreadedHub, api: httpx.Client) -> None:
    add_fault(api, "gemini", action="error", status=404, times=1)
    with pytest.raises(errors.ClientError) as raised:
        client(server).models.generate_content(model=MODEL, contents="hi")
    assert raised.value.code == 404 and raised.value.status == "NOT_FOUND"
    assert str(raised.value.message).startswith("mockhub fault f_")
    add_fault(api, "gemini", action="cut_stream", after_chunks=2)
    received: list[str] = []
    with pytest.raises(httpx2.RemoteProtocolError):  # the SDK's transport: the body ends short
        for chunk in client(server).models.generate_content_stream(model=MODEL, contents="a long reply to cut"):
            received.append(chunk.text or "")
    assert received == ["mock", " reply"]
    [_, cut] = calls(api)
    assert cut["fault"]["action"] == "cut_stream"
