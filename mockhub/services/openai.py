"""The OpenAI fake: chat completions (plain, streamed, tools), embeddings, models and the Responses API.

Point the SDK at it with `OpenAI(base_url="http://host:8080/v1", api_key="anything")`. Reply selection
and token counts are shared with the Anthropic fake (`services/llm.py`); this module speaks the wire
format the `openai` SDK parses (`types/chat`, `types/responses`, `_streaming.py`).
"""

from __future__ import annotations

import time
from typing import Any

from mockhub.journal import Call
from mockhub.rules import Preset
from mockhub.services import llm, openai_responses
from mockhub.services.base import (
    AppUrl,
    BadRequest,
    EnvVar,
    Reply,
    Request,
    Route,
    Service,
    ServiceContext,
    json_reply,
    route,
)
from mockhub.services.openai_wire import bad, err, stream_reply, tool_texts

__all__ = ["OpenAIService"]

FINGERPRINT = "fp_mockhub"
_FINISH = {"stop": "stop", "tool_calls": "tool_calls", "length": "length", "stop_sequence": "stop"}
_EMBEDDING_DIMS = {"text-embedding-3-large": 3072, "text-embedding-3-small": 1536, "text-embedding-ada-002": 1536}
_MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "o3-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
)
_MODELS_CREATED = 1_700_000_000
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP "
    "library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
)
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using "
    "Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
# Retry hints small enough that an SDK's retries take milliseconds (the SDK prefers retry-after-ms).
_RETRY_HEADERS = [("retry-after", "1"), ("retry-after-ms", "20")]
_PRESETS: dict[str, tuple[int, str, str, str | None]] = {
    "rate_limited": (
        429,
        "rate_limit_error",
        "Rate limit reached for requests per min (RPM). Please try again in 20ms.",
        "rate_limit_exceeded",
    ),
    "server_error": (
        500,
        "server_error",
        "The server had an error while processing your request. Sorry about that!",
        None,
    ),
    "unavailable": (503, "server_error", "The server is overloaded or not ready yet.", None),
    # OpenAI has no 529: an overloaded engine answers 503.
    "overloaded": (503, "server_error", "The engine is currently overloaded, please try again later.", None),
    "unauthorized": (401, "invalid_request_error", "Incorrect API key provided.", "invalid_api_key"),
}


class OpenAIService(Service):
    """OpenAI's REST API at `/v1/...`."""

    name = "openai"
    label = "OpenAI"
    color = "#0c8599"
    hosts = ("api.openai.com",)
    urls = {"openai_base": AppUrl(path="/v1", description="`OpenAI(base_url=...)` (includes /v1, as the SDK expects)")}
    env = (
        EnvVar(name="OPENAI_BASE_URL", value="{urls.openai_base}"),
        EnvVar(name="OPENAI_API_KEY", value="sk-mockhub"),
    )
    secret_headers = ("openai-organization", "openai-project")

    @classmethod
    def summarize(cls, call: Call) -> str:
        return llm.summary(call)

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.credentials = llm.Credentials(ctx.pinned)

    def routes(self) -> list[Route]:
        return [
            route("POST", "/v1/chat/completions", self.chat, self.parse_chat),
            route("POST", "/v1/embeddings", self.embeddings, self.parse_embeddings, reply_stubs=False),
            route("GET", "/v1/models", self.models, self.parse_auth, reply_stubs=False),
            route("GET", "/v1/models/{model}", self.model, self.parse_auth, reply_stubs=False),
            route("POST", "/v1/responses", self.responses, self.parse_responses),
        ]

    # -- provider shapes -----------------------------------------------------------------------
    def error(self, status: int, message: str, code: str | None = None) -> Reply:
        return err(
            status,
            message,
            _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            None,
            code,
        )

    def preset(self, name: Preset, request: Request) -> Reply:
        status, type_, message, code = _PRESETS[name]
        reply = err(status, message, type_, None, code)
        if status == 429 or status >= 500:
            reply.headers.extend(_RETRY_HEADERS)
        if status == 429:
            reply.headers.extend([("x-ratelimit-limit-requests", "60"), ("x-ratelimit-remaining-requests", "0")])
        return reply

    # -- parsing (before rules) ----------------------------------------------------------------
    def _authenticate(self, request: Request) -> None:
        key = llm.bearer(request.header("authorization"))
        problem = self.credentials.problem(key)
        if problem == "missing":
            raise BadRequest(err(401, _NO_KEY, "invalid_request_error"), {"error": "missing_api_key"})
        if problem == "invalid":
            shown = f"{key[:3]}*****{key[-4:]}" if key and len(key) > 8 else "*****"
            message = f"Incorrect API key provided: {shown}. You can find your API key at https://platform.openai.com/account/api-keys."
            raise BadRequest(
                err(401, message, "invalid_request_error", None, "invalid_api_key"),
                {"error": "invalid_api_key"},
            )

    def _body(self, request: Request) -> dict[str, Any]:
        self._authenticate(request)
        try:
            body = request.json()
        except ValueError:
            raise bad(_BAD_JSON, code="invalid_json") from None
        if not isinstance(body, dict):
            raise bad(_BAD_JSON, code="invalid_json")
        return body

    def parse_auth(self, request: Request) -> dict[str, Any]:
        self._authenticate(request)
        return {}

    def parse_chat(self, request: Request) -> dict[str, Any]:
        body = self._body(request)
        model = body.get("model")
        messages = body.get("messages")
        stream = bool(body.get("stream"))
        data: dict[str, Any] = {"model": model, "messages": messages, "stream": stream, "tools": body.get("tools")}
        if not model or not isinstance(model, str):
            raise bad("you must provide a model parameter", **data)
        if messages is None:
            raise bad("Missing required parameter: 'messages'.", "messages", "missing_required_parameter", **data)
        if not isinstance(messages, list) or not messages:
            raise bad(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                "but got an empty array instead.",
                "messages",
                "empty_array",
                **data,
            )
        if body.get("stream_options") is not None and not stream:
            raise bad(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
                "invalid_value",
                **data,
            )
        turns: list[llm.Turn] = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise bad(f"Missing required parameter: 'messages[{i}].role'.", f"messages[{i}].role", **data)
            role = message["role"]
            if role in ("tool", "function"):
                turns.append(llm.Turn("tool", llm.text_of(message.get("content")), message.get("tool_call_id")))
                continue
            text = llm.text_of(message.get("content"))
            for tc in message.get("tool_calls") or ():
                function = tc.get("function") if isinstance(tc, dict) else None
                if isinstance(function, dict):
                    text += f"{function.get('name', '')}({function.get('arguments', '')})"
            turns.append(llm.Turn("system" if role == "developer" else role, text))
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        stop = body.get("stop")
        conv = llm.conversation(
            model,
            turns,
            tool_texts(body.get("tools")),
            max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None,
            [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else (),
        )
        data.update(conv.fields())
        return data

    # -- chat completions ----------------------------------------------------------------------
    async def chat(self, request: Request) -> Reply:
        body = request.json()
        data = request.data
        conv = llm.Conversation.from_data(data)
        reply = llm.choose_reply(conv, request.stub, "call_")
        finish = _FINISH.get(reply.finish, reply.finish)
        llm.record_reply(data, reply, "finish_reason", finish)
        request.call.invalidate()
        completion_id = llm.random_id("chatcmpl-")
        created = int(time.time())
        usage = _chat_usage(reply)
        headers = [("x-request-id", llm.random_id("req_", 16)), ("openai-processing-ms", "1")]
        if not data["stream"]:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": reply.text if reply.text or not reply.tool_calls else None,
                "refusal": None,
                "annotations": [],
            }
            if reply.tool_calls:
                message["tool_calls"] = [
                    {"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
                    for t in reply.tool_calls
                ]
            obj = {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": conv.model,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": usage,
                "service_tier": "default",
                "system_fingerprint": FINGERPRINT,
            }
            return json_reply(obj, headers=headers)

        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        base = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": conv.model,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            obj: dict[str, Any] = {
                **base,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                obj["usage"] = None
            return llm.sse(obj)

        first_content = "" if reply.text or not reply.tool_calls else None
        frames = [chunk({"role": "assistant", "content": first_content, "refusal": None})]
        frames.extend(chunk({"content": piece}) for piece in reply.pieces)
        for i, tool in enumerate(reply.tool_calls):
            head = {"index": i, "id": tool.id, "type": "function", "function": {"name": tool.name, "arguments": ""}}
            frames.append(chunk({"tool_calls": [head]}))
            frames.extend(
                chunk({"tool_calls": [{"index": i, "function": {"arguments": fragment}}]})
                for fragment in llm.tokenize(tool.arguments)
            )
        frames.append(chunk({}, finish))
        if include_usage:
            frames.append(llm.sse({**base, "choices": [], "usage": usage}))
        frames.append(b"data: [DONE]\n\n")
        return stream_reply(frames, reply.chunk_delay_ms, headers)

    # -- embeddings ----------------------------------------------------------------------------
    def parse_embeddings(self, request: Request) -> dict[str, Any]:
        body = self._body(request)
        model = body.get("model")
        raw = body.get("input")
        fmt = body.get("encoding_format", "float")
        dims = body.get("dimensions")
        data: dict[str, Any] = {"model": model, "input": raw, "encoding_format": fmt, "dimensions": dims}
        if not model or not isinstance(model, str):
            raise bad("you must provide a model parameter", **data)
        if raw is None:
            raise bad("Missing required parameter: 'input'.", "input", "missing_required_parameter", **data)
        texts = _embedding_inputs(raw)
        if texts is None or not texts or any(t == "" for t in texts):
            raise bad(
                "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
                "input",
                **data,
            )
        if fmt not in ("float", "base64"):
            raise bad(
                f"Invalid value: '{fmt}'. Supported values are: 'float' and 'base64'.",
                "encoding_format",
                "invalid_value",
                **data,
            )
        if dims is not None:
            if not isinstance(dims, int) or isinstance(dims, bool) or dims < 1:
                raise bad(
                    "Invalid 'dimensions': integer below minimum value. "
                    f"Expected a value >= 1, but got {dims} instead.",
                    "dimensions",
                    **data,
                )
            if model == "text-embedding-ada-002":
                raise bad("This model does not support specifying dimensions.", "dimensions", **data)
        return data

    async def embeddings(self, request: Request) -> Reply:
        data = request.data
        texts = _embedding_inputs(data["input"]) or []
        dims = data["dimensions"] or _EMBEDDING_DIMS.get(data["model"], 1536)
        items: list[dict[str, Any]] = []
        for i, text in enumerate(texts):
            vector = llm.embedding(text, dims)
            value: Any = llm.embedding_base64(vector) if data["encoding_format"] == "base64" else vector
            items.append({"object": "embedding", "index": i, "embedding": value})
        tokens = sum(max(llm.count_tokens(t), 1) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        data["usage"] = {"input_tokens": tokens}
        obj = {"object": "list", "data": items, "model": data["model"], "usage": usage}
        return json_reply(obj, headers=[("x-request-id", llm.random_id("req_", 16))])

    # -- models --------------------------------------------------------------------------------
    async def models(self, request: Request) -> Reply:
        return json_reply({"object": "list", "data": [_model(m) for m in _MODELS]})

    async def model(self, request: Request) -> Reply:
        # Any model id exists here: the fake accepts every model name in requests too.
        return json_reply(_model(request.path_params["model"]))

    # -- responses -----------------------------------------------------------------------------
    def parse_responses(self, request: Request) -> dict[str, Any]:
        return openai_responses.parse(self._body(request))

    async def responses(self, request: Request) -> Reply:
        return openai_responses.respond(request)


# --------------------------------------------------------------------------------------------------


def _chat_usage(reply: llm.LlmReply) -> dict[str, Any]:
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _embedding_inputs(raw: Any) -> list[str] | None:
    """Every input to embed as text (token arrays as their numbers); None when the shape is wrong."""
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw:
        if all(isinstance(x, str) for x in raw):
            return list(raw)
        if all(isinstance(x, int) for x in raw):
            return [" ".join(map(str, raw))]
        if all(isinstance(x, list) and x and all(isinstance(y, int) for y in x) for x in raw):
            return [" ".join(map(str, x)) for x in raw]
    return None


def _model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": _MODELS_CREATED, "owned_by": "mockhub"}
