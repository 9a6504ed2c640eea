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
from mockhub.services import llm, openai_responses, tokens
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
from mockhub.services.openai_wire import (
    bad,
    err,
    function_tools,
    json_schema_format,
    stream_reply,
    strict_schema_check,
    stub_error,
    tool_choice,
    tool_texts,
)
from mockhub.usage import Billed

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

    # Published list prices (USD per million tokens, standard tier) when this was written: an estimate.
    prices = llm.prices(
        {
            "gpt-4o": (2.50, 10.00),
            "gpt-4o-mini": (0.15, 0.60),
            "gpt-4.1": (2.00, 8.00),
            "gpt-4.1-mini": (0.40, 1.60),
            "gpt-4.1-nano": (0.10, 0.40),
            "gpt-5": (1.25, 10.00),
            "gpt-5-mini": (0.25, 2.00),
            "gpt-5-nano": (0.05, 0.40),
            "gpt-4-turbo": (10.00, 30.00),
            "gpt-4": (30.00, 60.00),
            "gpt-3.5-turbo": (0.50, 1.50),
            "o1": (15.00, 60.00),
            "o1-mini": (1.10, 4.40),
            "o3": (2.00, 8.00),
            "o3-mini": (1.10, 4.40),
            "o4-mini": (1.10, 4.40),
            "text-embedding-3-small": (0.02, 0.0),
            "text-embedding-3-large": (0.13, 0.0),
            "text-embedding-ada-002": (0.10, 0.0),
        }
    )

    @classmethod
    def summarize(cls, call: Call) -> str:
        return llm.summary(call)

    @classmethod
    def usage(cls, call: Call) -> Billed | None:
        if call.path.endswith("/embeddings"):
            return llm.billed(call, embedding=True)
        if call.path.endswith(("/chat/completions", "/responses")):
            return llm.billed(call)
        return None

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.credentials = llm.Credentials(ctx.pinned)
        self.tokens = tokens.tokenizer(ctx.settings.llm_tokenizer)

    async def start(self) -> None:
        self.ctx.spawn(llm.warm(self.tokens))

    stub_reply = llm.LlmTiming

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
        n = body.get("n")
        if n is not None:
            if not isinstance(n, int) or isinstance(n, bool):
                raise bad(
                    f"Invalid type for 'n': expected an integer, but got {type(n).__name__} instead.", "n", **data
                )
            if n < 1 or n > 128:
                side, bound, rel = ("below minimum", 1, ">=") if n < 1 else ("above maximum", 128, "<=")
                raise bad(
                    f"Invalid 'n': integer {side} value. Expected a value {rel} {bound}, but got {n} instead.",
                    "n",
                    **data,
                )
        turns: list[llm.Turn] = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise bad(f"Missing required parameter: 'messages[{i}].role'.", f"messages[{i}].role", **data)
        _check_tool_messages(messages, data)
        shape = chat_shape(body, messages, data)
        for message in messages:
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
            self.tokens,
        )
        data.update(conv.fields())
        data.update(shape.fields())
        data["last_tool_results"] = llm.trailing_tool_results(turns)
        data["n"] = n if isinstance(n, int) else 1
        return data

    # -- chat completions ----------------------------------------------------------------------
    async def chat(self, request: Request) -> Reply:
        body = request.json()
        data = request.data
        conv = llm.Conversation.from_data(data, self.tokens)
        shape = chat_shape(body, body["messages"], {})
        tool_results = data.get("last_tool_results") or []
        try:
            replies = [
                llm.shaped_reply(conv, request.stub, "call_", shape, tool_results, i) for i in range(data.get("n", 1))
            ]
        except llm.StubMismatch as exc:
            data.update(error="stub_mismatch", stub_error=str(exc))
            request.call.invalidate()
            return stub_error(str(exc))
        reply = replies[0]
        # A forced named function ends with `stop` on the real API; `required` with `tool_calls`.
        finishes = [
            "stop" if shape.tool_choice == "named" and r.finish == "tool_calls" else _FINISH.get(r.finish, r.finish)
            for r in replies
        ]
        finish = finishes[0]
        llm.record_reply(data, reply, "finish_reason", finish)
        if len(replies) > 1:
            data["replies"] = [r.text for r in replies]
            data["usage"]["output_tokens"] = sum(r.output_tokens for r in replies)
        request.call.invalidate()
        completion_id = llm.random_id("chatcmpl-")
        created = int(time.time())
        usage = _chat_usage(reply, sum(r.output_tokens for r in replies))
        timing = llm.Timing.of(self.ctx.settings, request.stub)
        # A plain answer is held its generation time; the header says how long, as OpenAI's does.
        wait = 0.0 if data["stream"] else timing.total(usage["completion_tokens"])
        headers = [
            ("x-request-id", llm.random_id("req_", 16)),
            ("openai-processing-ms", str(max(1, round(wait * 1000)))),
        ]
        if not data["stream"]:
            choices = []
            for index, (one, one_finish) in enumerate(zip(replies, finishes, strict=True)):
                message: dict[str, Any] = {
                    "role": "assistant",
                    "content": one.text if one.text or not one.tool_calls else None,
                    "refusal": None,
                    "annotations": [],
                }
                if one.tool_calls:
                    message["tool_calls"] = [
                        {"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
                        for t in one.tool_calls
                    ]
                choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": one_finish})
            obj = {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": conv.model,
                "choices": choices,
                "usage": usage,
                "service_tier": "default",
                "system_fingerprint": FINGERPRINT,
            }
            answer = json_reply(obj, headers=headers)
            answer.wait = wait
            return answer

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

        def chunk(delta: dict[str, Any], finish_reason: str | None = None, index: int = 0) -> bytes:
            obj: dict[str, Any] = {
                **base,
                "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                obj["usage"] = None
            return llm.sse(obj)

        frames = llm.Frames()
        for c, (one, one_finish) in enumerate(zip(replies, finishes, strict=True)):
            first_content = "" if one.text or not one.tool_calls else None
            frames.add(chunk({"role": "assistant", "content": first_content, "refusal": None}, index=c))
            for piece, n in zip(one.pieces, one.piece_tokens, strict=True):
                frames.add(chunk({"content": piece}, index=c), n)
            for i, tool in enumerate(one.tool_calls):
                head = {"index": i, "id": tool.id, "type": "function", "function": {"name": tool.name, "arguments": ""}}
                frames.add(chunk({"tool_calls": [head]}, index=c), llm.count_tokens(tool.name, self.tokens, conv.model))
                for fragment, n in llm.argument_pieces(conv, tool):
                    frames.add(chunk({"tool_calls": [{"index": i, "function": {"arguments": fragment}}]}, index=c), n)
            frames.add(chunk({}, one_finish, c))
        if include_usage:
            frames.add(llm.sse({**base, "choices": [], "usage": usage}))
        frames.add(b"data: [DONE]\n\n")
        return stream_reply(frames, timing, reply.chunk_delay_ms, headers)

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
        count = sum(max(llm.count_tokens(t, self.tokens, data["model"]), 1) for t in texts)
        usage = {"prompt_tokens": count, "total_tokens": count}
        data["usage"] = {"input_tokens": count}
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
        return openai_responses.parse(self._body(request), self.tokens)

    async def responses(self, request: Request) -> Reply:
        return openai_responses.respond(request, self.tokens, llm.Timing.of(self.ctx.settings, request.stub))


# --------------------------------------------------------------------------------------------------


def _chat_usage(reply: llm.LlmReply, output_tokens: int | None = None) -> dict[str, Any]:
    out = reply.output_tokens if output_tokens is None else output_tokens
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": out,
        "total_tokens": reply.input_tokens + out,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


_TOOL_ORPHAN = (
    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."
)


def _check_tool_messages(messages: list[Any], data: dict[str, Any]) -> None:
    """OpenAI's 400s for a broken agent loop: a tool message answering no call, a call left unanswered."""
    open_ids: list[str] = []  # the ids of the assistant tool_calls being answered
    answered: set[str] = set()
    asked_at = -1
    in_answers = False  # right after an assistant tool_calls message or its tool messages

    def unanswered() -> None:
        missing = [i for i in open_ids if i not in answered]
        if missing:
            raise bad(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(missing)}",
                f"messages.[{asked_at}].role",
                **data,
            )

    for i, message in enumerate(messages):
        role = message["role"]
        if role == "tool":
            if not in_answers:
                raise bad(_TOOL_ORPHAN, f"messages.[{i}].role", **data)
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise bad(
                    "Missing parameter 'tool_call_id': messages with role 'tool' must have a 'tool_call_id'.",
                    f"messages.[{i}].tool_call_id",
                    **data,
                )
            if call_id not in open_ids:
                raise bad(
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' of previous message.",
                    f"messages.[{i}].tool_call_id",
                    **data,
                )
            answered.add(call_id)
            continue
        if role == "function":
            continue  # the deprecated function-calling protocol has no ids to check
        unanswered()
        calls = message.get("tool_calls") if role == "assistant" else None
        in_answers = bool(calls)
        open_ids = [c["id"] for c in calls or () if isinstance(c, dict) and isinstance(c.get("id"), str)]
        answered = set()
        asked_at = i
    unanswered()


def chat_shape(body: dict[str, Any], messages: list[Any], data: dict[str, Any]) -> llm.Shape:
    """The shape a chat completion request demands (response_format, tools, tool_choice), or OpenAI's 400."""
    raw_tools = body.get("tools")
    tools = function_tools(raw_tools, flat=False)
    for i, tool in enumerate(tools):
        if tool.strict:
            strict_schema_check(f"function '{tool.name}'", tool.schema, f"tools[{i}].function.parameters", **data)
    choice, name = tool_choice(body.get("tool_choice"), tools, bool(raw_tools), False, **data)
    shape = llm.Shape(tool_choice=choice, tool_name=name, tools=tools)
    fmt = body.get("response_format")
    if fmt is None:
        return shape
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise bad(
            f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', and 'text'.",
            "response_format.type",
            "invalid_value",
            **data,
        )
    shape.format = str(kind)
    if kind == "json_object":
        if not any("json" in llm.text_of(m.get("content")).lower() for m in messages if isinstance(m, dict)):
            raise bad(
                "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
                "messages",
                **data,
            )
    elif kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict):
            raise bad(
                "Missing required parameter: 'response_format.json_schema'.",
                "response_format.json_schema",
                "missing_required_parameter",
                **data,
            )
        json_schema_format(shape, spec, "response_format.json_schema", "response_format", **data)
    return shape


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
