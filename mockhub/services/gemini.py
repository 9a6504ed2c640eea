"""The Google Gemini fake: the Gemini Developer API (`generativelanguage.googleapis.com`) under `/v1beta` and `/v1`.

Point the SDK at it with `genai.Client(api_key="anything", http_options=HttpOptions(base_url="http://host:8080"))`
(it then calls `/v1/models/...`; `api_version="v1beta"` calls `/v1beta/...`). Reply selection and token
counts are shared with the OpenAI and Anthropic fakes (`services/llm.py`); this module speaks the wire
format `google-genai` parses (`models.py`'s `_GenerateContentResponse_from_mldev`, `_api_client.py`'s SSE
reader, `errors.py`). `GET /v1/models` is also OpenAI's path: this fake claims it only when the request
carries a Google API key (`x-goog-api-key` or `?key=`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import orjson

from mockhub.journal import Call
from mockhub.rules import Preset
from mockhub.services import llm, tokens
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
    scope_header,
)
from mockhub.services.tokens import Tokenizer
from mockhub.usage import Billed

__all__ = ["GeminiService"]

VERSIONS = ("v1beta", "v1")
_FINISH = {"stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS", "stop_sequence": "STOP"}
# Finish reasons after which the real API sends a candidate without content.
_BLOCKED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "INVALID_ARGUMENT",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
_BAD_KEY = "API key not valid. Please pass a valid API key."
_HELP = {
    "@type": "type.googleapis.com/google.rpc.Help",
    "links": [
        {
            "description": "Learn more about Gemini API quotas",
            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
        }
    ],
}
_PRESETS: dict[str, tuple[int, str, list[dict[str, Any]]]] = {
    "rate_limited": (
        429,
        "You exceeded your current quota, please check your plan and billing details. For more information on "
        "this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
        [_HELP, {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}],
    ),
    "server_error": (
        500,
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
        [],
    ),
    "unavailable": (503, "The service is currently unavailable.", []),
    # Gemini has no 529: an overloaded model answers 503 UNAVAILABLE.
    "overloaded": (503, "The model is overloaded. Please try again later.", []),
    # A wrong key is a 400 INVALID_ARGUMENT (API_KEY_INVALID) at Google, not a 401.
    "unauthorized": (400, _BAD_KEY, []),
}
# The request fields of each method (proto JSON accepts camelCase and snake_case alike); others are refused.
_GENERATE_FIELDS = {
    "model",
    "contents",
    "systemInstruction",
    "generationConfig",
    "tools",
    "toolConfig",
    "safetySettings",
    "cachedContent",
    "labels",
    "serviceTier",
    "store",
}
_COUNT_FIELDS = {"contents", "generateContentRequest"}
_EMBED_FIELDS = {"model", "content", "taskType", "title", "outputDimensionality"}
_BATCH_FIELDS = {"requests"}
# Model ids look like gemini-2.5-flash, gemini-embedding-001, gemma-3-27b-it.
_MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_MODELS: tuple[tuple[str, str, int, int], ...] = (
    ("gemini-2.5-pro", "Gemini 2.5 Pro", 1_048_576, 65_536),
    ("gemini-2.5-flash", "Gemini 2.5 Flash", 1_048_576, 65_536),
    ("gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite", 1_048_576, 65_536),
    ("gemini-2.0-flash", "Gemini 2.0 Flash", 1_048_576, 8_192),
    ("gemini-embedding-001", "Gemini Embedding 001", 2_048, 1),
    ("text-embedding-004", "Text Embedding 004", 2_048, 1),
)
_GENERATE_METHODS = ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]
_EMBED_METHODS = ["embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent"]
_PAGE_SIZE = 50


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _get(obj: Mapping[str, Any], name: str) -> Any:
    """A field by its camelCase name or its snake_case one (Google's JSON parser takes both)."""
    value = obj.get(name)
    return obj.get(_snake(name)) if value is None else value


def _err(status: int, message: str, details: list[dict[str, Any]] | None = None) -> Reply:
    error: dict[str, Any] = {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}
    if details:
        error["details"] = details
    return json_reply({"error": error}, status)


def _bad(message: str, details: list[dict[str, Any]] | None = None, **data: Any) -> BadRequest:
    return BadRequest(_err(400, message, details), {"error": "INVALID_ARGUMENT", "error_message": message, **data})


def _is_embedding(model: str) -> bool:
    return "embedding" in model


def _dims(model: str) -> int:
    return 3072 if model.startswith("gemini-embedding") else 768


def _google_key(scope: Mapping[str, Any]) -> bool:
    """Whether a request to a path OpenAI shares (`GET /v1/models`) carries a Google API key."""
    if scope_header(scope, b"x-goog-api-key"):
        return True
    query: bytes = scope.get("query_string", b"")
    return any(part.startswith(b"key=") for part in query.split(b"&"))


class GeminiService(Service):
    """Google's Gemini API (generateContent, streams, function calls, tokens, embeddings, models)."""

    name = "gemini"
    label = "Google Gemini"
    color = "#4285f4"
    hosts = ("generativelanguage.googleapis.com",)
    urls = {
        "gemini_base": AppUrl(
            path="", description="`genai.Client(http_options=HttpOptions(base_url=...))` (the SDK adds /v1 or /v1beta)"
        )
    }
    env = (
        EnvVar(name="GOOGLE_GEMINI_BASE_URL", value="{urls.gemini_base}"),
        EnvVar(name="GEMINI_API_KEY", value="mockhub-gemini-key"),
    )
    secret_headers = ("x-goog-api-key",)
    secret_params = ("key",)  # `?key=` is the API key too

    # Published list prices (USD per million tokens, prompts up to 200k tokens) when this was written.
    prices = llm.prices(
        {
            "gemini-2.5-pro": (1.25, 10.00),
            "gemini-2.5-flash": (0.30, 2.50),
            "gemini-2.5-flash-lite": (0.10, 0.40),
            "gemini-2.0-flash": (0.10, 0.40),
            "gemini-2.0-flash-lite": (0.075, 0.30),
            "gemini-1.5-pro": (1.25, 5.00),
            "gemini-1.5-flash": (0.075, 0.30),
            "gemini-embedding-001": (0.15, 0.0),
            "text-embedding-004": (0.0, 0.0),
        }
    )

    @classmethod
    def summarize(cls, call: Call) -> str:
        return llm.summary(call)

    @classmethod
    def usage(cls, call: Call) -> Billed | None:
        if call.path.endswith((":embedContent", ":batchEmbedContents")):
            return llm.billed(call, embedding=True)
        if call.path.endswith((":generateContent", ":streamGenerateContent")):
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
        out: list[Route] = []
        for v in VERSIONS:
            # OpenAI answers `GET /v1/models` too: there this fake claims only requests with a Google key.
            accepts = _google_key if v == "v1" else None
            base = f"/{v}/models/{{model}}"
            out += [
                route("POST", f"{base}:generateContent", self.generate, self.parse_generate),
                route("POST", f"{base}:streamGenerateContent", self.generate, self.parse_stream),
                route("POST", f"{base}:countTokens", self.count_tokens, self.parse_count, reply_stubs=False),
                route("POST", f"{base}:embedContent", self.embed, self.parse_embed, reply_stubs=False),
                route("POST", f"{base}:batchEmbedContents", self.embed, self.parse_batch_embed, reply_stubs=False),
                route("GET", f"/{v}/models", self.models, self.parse_list, reply_stubs=False, accepts=accepts),
                route("GET", base, self.model, self.parse_get, reply_stubs=False, accepts=accepts),
            ]
        return out

    # -- provider shapes -----------------------------------------------------------------------
    def error(self, status: int, message: str, code: str | None = None) -> Reply:
        return _err(status, message)

    def preset(self, name: Preset, request: Request) -> Reply:
        status, message, details = _PRESETS[name]
        if name == "unauthorized":
            return _err(status, message, _key_details())
        return _err(status, message, details)

    # -- parsing (before rules) ----------------------------------------------------------------
    def _authenticate(self, request: Request) -> None:
        key = request.header("x-goog-api-key")
        if not key:
            given = request.query.get("key")
            key = given[0] if given else None
        key = key or llm.bearer(request.header("authorization"))
        problem = self.credentials.problem(key)
        if problem == "missing":
            raise BadRequest(_err(403, _NO_KEY), {"error": "PERMISSION_DENIED"})
        if problem == "invalid":
            raise BadRequest(_err(400, _BAD_KEY, _key_details()), {"error": "API_KEY_INVALID"})

    def _body(self, request: Request, fields: set[str], data: dict[str, Any]) -> dict[str, Any]:
        self._authenticate(request)
        try:
            body = request.json()
        except ValueError:
            snippet = request.body[:60].decode("utf-8", "replace")
            raise _bad(f"Invalid JSON payload received. Unexpected token.\n{snippet}\n^", **data) from None
        if not isinstance(body, dict):
            raise _bad('Invalid JSON payload received. Unknown name "": Root element must be a message.', **data)
        allowed = fields | {_snake(f) for f in fields}
        unknown = [k for k in body if k not in allowed]
        if unknown:
            descriptions = [f'Invalid JSON payload received. Unknown name "{k}": Cannot find field.' for k in unknown]
            violations = [{"description": d} for d in descriptions]
            raise _bad(
                "\n".join(descriptions),
                [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations}],
                **data,
            )
        return body

    def _model(self, request: Request, method: str, embedding: bool) -> str:
        """The model id of the path, or Google's 404 for a name no model has (or one that cannot do `method`)."""
        model = request.path_params["model"]
        version = request.path.split("/", 2)[1]
        ok = _MODEL_ID.match(model) is not None and _is_embedding(model) == embedding
        if not ok:
            message = (
                f"models/{model} is not found for API version {version}, or is not supported for {method}. "
                "Call ListModels to see the list of available models and their supported methods."
            )
            raise BadRequest(_err(404, message), {"error": "NOT_FOUND", "model": model, "error_message": message})
        return model

    def parse_generate(self, request: Request, stream: bool = False) -> dict[str, Any]:
        model = request.path_params["model"]
        data: dict[str, Any] = {"model": model, "stream": stream}
        body = self._body(request, _GENERATE_FIELDS, data)
        data.update(self._request_fields(body))
        self._model(request, "streamGenerateContent" if stream else "generateContent", embedding=False)
        if stream:
            alt = request.query.get("alt")
            data["alt"] = alt[0] if alt else None
        data.update(_conversation(model, body, "GenerateContentRequest", data, self.tokens).fields())
        return data

    def parse_stream(self, request: Request) -> dict[str, Any]:
        return self.parse_generate(request, stream=True)

    @staticmethod
    def _request_fields(body: Mapping[str, Any]) -> dict[str, Any]:
        config = _get(body, "generationConfig")
        config = config if isinstance(config, dict) else {}
        return {
            "messages": _get(body, "contents"),
            "system": _get(body, "systemInstruction"),
            "tools": _get(body, "tools"),
            "tool_config": _get(body, "toolConfig"),
            "generation_config": config or None,
            "safety_settings": _get(body, "safetySettings"),
            "candidate_count": _get(config, "candidateCount"),
            "response_mime_type": _get(config, "responseMimeType"),
        }

    def parse_count(self, request: Request) -> dict[str, Any]:
        model = request.path_params["model"]
        data: dict[str, Any] = {"model": model}
        body = self._body(request, _COUNT_FIELDS, data)
        self._model(request, "countTokens", embedding=_is_embedding(model))
        inner = _get(body, "generateContentRequest")
        where = "CountTokensRequest"
        if isinstance(inner, dict):
            body, where = inner, "GenerateContentRequest"
        data.update(self._request_fields(body))
        data.update(_conversation(model, body, where, data, self.tokens).fields())
        return data

    def parse_embed(self, request: Request) -> dict[str, Any]:
        model = request.path_params["model"]
        data: dict[str, Any] = {"model": model, "batch": False}
        body = self._body(request, _EMBED_FIELDS, data)
        self._model(request, "embedContent", embedding=True)
        content = _get(body, "content")
        if not isinstance(content, dict):
            raise _bad("* EmbedContentRequest.content: content is not specified\n", **data)
        dims = _get(body, "outputDimensionality")
        data.update(
            input=[_parts_text(content.get("parts"))],
            task_type=_get(body, "taskType"),
            dimensions=dims,
        )
        _check_dims(dims, "EmbedContentRequest", data)
        return data

    def parse_batch_embed(self, request: Request) -> dict[str, Any]:
        model = request.path_params["model"]
        data: dict[str, Any] = {"model": model, "batch": True}
        body = self._body(request, _BATCH_FIELDS, data)
        self._model(request, "batchEmbedContents", embedding=True)
        requests = _get(body, "requests")
        if not isinstance(requests, list) or not requests:
            raise _bad("* BatchEmbedContentsRequest.requests: requests is not specified\n", **data)
        texts: list[str] = []
        dims: Any = None
        for i, item in enumerate(requests):
            where = f"BatchEmbedContentsRequest.requests[{i}]"
            if not isinstance(item, dict):
                raise _bad(f"* {where}: must be an EmbedContentRequest\n", **data)
            named = _get(item, "model")
            if named not in (None, f"models/{model}", model):
                raise _bad(
                    f"* {where}.model: the model of each request must be the model of the URL (models/{model})\n",
                    **data,
                )
            content = _get(item, "content")
            if not isinstance(content, dict):
                raise _bad(f"* {where}.content: content is not specified\n", **data)
            texts.append(_parts_text(content.get("parts")))
            dims = _get(item, "outputDimensionality") or dims
            _check_dims(_get(item, "outputDimensionality"), where, data)
        data.update(input=texts, task_type=_get(requests[0], "taskType"), dimensions=dims)
        return data

    def parse_list(self, request: Request) -> dict[str, Any]:
        self._authenticate(request)
        return {}

    def parse_get(self, request: Request) -> dict[str, Any]:
        self._authenticate(request)
        model = request.path_params["model"]
        if _MODEL_ID.match(model) is None:
            message = f"models/{model} is not found for API version {request.path.split('/', 2)[1]}."
            raise BadRequest(_err(404, message), {"error": "NOT_FOUND", "model": model})
        return {"model": model}

    # -- answering -----------------------------------------------------------------------------
    async def generate(self, request: Request) -> Reply:
        data = request.data
        conv = llm.Conversation.from_data(data, self.tokens)
        reply = llm.choose_reply(conv, request.stub, "call_")
        if not reply.stubbed and data.get("response_mime_type") == "application/json":
            # JSON mode: the default reply is JSON (shaped by the response schema), so `response.parsed` works.
            config = data.get("generation_config") or {}
            schema = _get(config, "responseJsonSchema") or _get(config, "responseSchema")
            text = orjson.dumps(_instance(schema, reply.text)).decode()
            cut = self.tokens.pieces(text, conv.model)
            reply = replace(
                reply,
                text=text,
                pieces=[p for p, _ in cut],
                piece_tokens=[n for _, n in cut],
                output_tokens=max(sum(n for _, n in cut), 1),
            )
        finish = _FINISH.get(reply.finish, reply.finish.upper())
        llm.record_reply(data, reply, "finish_reason", finish)
        request.call.invalidate()
        count = data.get("candidate_count")
        n = count if isinstance(count, int) and not isinstance(count, bool) and 1 <= count <= 8 else 1
        response_id = llm.random_id("", 11)
        base = {"modelVersion": conv.model, "responseId": response_id}
        usage = {
            "promptTokenCount": reply.input_tokens,
            "candidatesTokenCount": reply.output_tokens * n,
            "totalTokenCount": reply.input_tokens + reply.output_tokens * n,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": reply.input_tokens}],
        }
        if n > 1:
            data["usage"]["output_tokens"] = reply.output_tokens * n
        calls = [_function_call(t, request) for t in reply.tool_calls]
        # A blocked answer (a stub's finish_reason SAFETY without content) has no parts at all.
        bare = not calls and finish not in _BLOCKED
        text_parts = [{"text": reply.text}] if reply.text or bare else []

        def candidates(parts: list[dict[str, Any]], last: bool) -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            for i in range(n):
                candidate: dict[str, Any] = {}
                if not (last and finish in _BLOCKED and not parts):
                    candidate["content"] = {"parts": parts, "role": "model"}
                if last:
                    candidate["finishReason"] = finish
                    if finish in _BLOCKED:
                        candidate["safetyRatings"] = _blocked_ratings()
                candidate["index"] = i
                out.append(candidate)
            return out

        timing = llm.Timing.of(self.ctx.settings, request.stub)
        if not data["stream"]:
            obj = {"candidates": candidates(text_parts + calls, True), "usageMetadata": usage, **base}
            answer = json_reply(obj)
            answer.wait = timing.total(reply.output_tokens * n)
            return answer

        # A stream: one chunk per token of text, the function calls whole in the last chunk (as Gemini does).
        groups: list[list[dict[str, Any]]] = [[{"text": piece}] for piece in reply.pieces]
        weights = list(reply.piece_tokens)
        if calls:
            groups.append(calls)
            weights.append(sum(llm.tool_tokens(conv, t) for t in reply.tool_calls))
        if not groups:
            groups.append(text_parts)
            weights.append(0)
        partial_usage = {"promptTokenCount": reply.input_tokens, "totalTokenCount": reply.input_tokens}
        chunks = [
            {
                "candidates": candidates(parts, i == len(groups) - 1),
                "usageMetadata": usage if i == len(groups) - 1 else partial_usage,
                **base,
            }
            for i, parts in enumerate(groups)
        ]
        if data.get("alt") != "sse":
            # Without alt=sse the real API answers one JSON array of the chunks, once all are generated.
            answer = json_reply(chunks)
            answer.wait = timing.total(reply.output_tokens * n)
            return answer
        frames = llm.Frames()
        for chunk, weight in zip(chunks, weights, strict=True):
            frames.add(llm.sse(chunk), weight * n)
        return Reply(
            200,
            b"",
            [("content-type", "text/event-stream"), ("cache-control", "no-cache")],
            stream=frames.stream(timing, reply.chunk_delay_ms),
        )

    async def count_tokens(self, request: Request) -> Reply:
        tokens = request.data["usage"]["input_tokens"]
        return json_reply({"totalTokens": tokens, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}]})

    async def embed(self, request: Request) -> Reply:
        data = request.data
        dims = data["dimensions"] or _dims(data["model"])
        vectors = [{"values": llm.embedding(text, dims)} for text in data["input"]]
        data["usage"] = {
            "input_tokens": sum(max(llm.count_tokens(t, self.tokens, data.get("model")), 1) for t in data["input"])
        }
        if data["batch"]:
            return json_reply({"embeddings": vectors})
        return json_reply({"embedding": vectors[0]})

    async def models(self, request: Request) -> Reply:
        query = request.query
        try:
            size = int(query.get("pageSize", [str(_PAGE_SIZE)])[0]) or _PAGE_SIZE
            start = int(query.get("pageToken", ["0"])[0] or 0)
        except ValueError:
            return _err(400, "Invalid value at 'page_size' (TYPE_INT32)")
        page = _MODELS[start : start + size]
        obj: dict[str, Any] = {"models": [_model_info(m[0]) for m in page]}
        if start + size < len(_MODELS):
            obj["nextPageToken"] = str(start + size)
        return json_reply(obj)

    async def model(self, request: Request) -> Reply:
        # Any well-formed model id exists here: the fake accepts every such model name in requests too.
        return json_reply(_model_info(request.path_params["model"]))


# --------------------------------------------------------------------------------------------------


def _key_details() -> list[dict[str, Any]]:
    return [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        },
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": _BAD_KEY},
    ]


def _blocked_ratings() -> list[dict[str, Any]]:
    return [
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
        {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
        {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
        {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
    ]


def _function_call(tool: llm.ToolUse, request: Request) -> dict[str, Any]:
    """A `functionCall` part; an `id` only when the stub gave one (the Developer API sends none of its own)."""
    call: dict[str, Any] = {"name": tool.name, "args": tool.input}
    stub = request.stub.reply if request.stub is not None else None
    if stub is not None and any(tc.id == tool.id for tc in stub.tool_calls):
        call["id"] = tool.id
    return {"functionCall": call}


def _check_dims(dims: Any, where: str, data: dict[str, Any]) -> None:
    if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or dims < 1):
        raise _bad(f"* {where}.output_dimensionality: must be a positive integer\n", **data)


def _parts_text(parts: Any) -> str:
    if not isinstance(parts, list):
        return ""
    return "\n".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


def _conversation(
    model: str, body: Mapping[str, Any], where: str, data: dict[str, Any], tokens: Tokenizer
) -> llm.Conversation:
    """The neutral view of `contents` (+ system instruction, tools), raising Google's 400 for what it refuses."""
    contents = _get(body, "contents")
    if not isinstance(contents, list) or not contents:
        raise _bad(f"* {where}.contents: contents is not specified\n", **data)
    turns: list[llm.Turn] = []
    system = _get(body, "systemInstruction")
    if isinstance(system, dict):
        turns.append(llm.Turn("system", _parts_text(system.get("parts"))))
    elif isinstance(system, str):
        turns.append(llm.Turn("system", system))
    for i, content in enumerate(contents):
        if not isinstance(content, dict):
            raise _bad(f"* {where}.contents[{i}]: must be a Content object\n", **data)
        role = content.get("role") or "user"
        if role not in ("user", "model", "function"):
            raise _bad("Please use a valid role: user, model.", **data)
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise _bad(f"* {where}.contents[{i}].parts: contents.parts must not be empty.\n", **data)
        texts: list[str] = []
        results: list[llm.Turn] = []
        for j, part in enumerate(parts):
            if not isinstance(part, dict) or not part:
                raise _bad(
                    f"* {where}.contents[{i}].parts[{j}].data: required oneof field 'data' must have one "
                    "initialized field\n",
                    **data,
                )
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            call = _get(part, "functionCall")
            if isinstance(call, dict):
                texts.append(f"{call.get('name', '')}({orjson.dumps(call.get('args') or {}).decode()})")
            response = _get(part, "functionResponse")
            if isinstance(response, dict):
                text = orjson.dumps(response.get("response") or {}).decode()
                results.append(llm.Turn("tool", text, response.get("id") or response.get("name")))
        if texts or not results:
            turns.append(llm.Turn("assistant" if role == "model" else "user", "\n".join(texts)))
        turns.extend(results)
    config = _get(body, "generationConfig")
    config = config if isinstance(config, dict) else {}
    max_tokens = _get(config, "maxOutputTokens")
    stop = _get(config, "stopSequences")
    tools = _get(body, "tools")
    return llm.conversation(
        model,
        turns,
        [orjson.dumps(t).decode() for t in tools] if isinstance(tools, list) else (),
        max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > 0 else None,
        stop if isinstance(stop, list) else (),
        tokens,
    )


def _instance(schema: Any, text: str) -> Any:
    """The smallest value `schema` (Gemini's Schema or a JSON schema) allows, its strings the default reply."""
    if not isinstance(schema, dict):
        return text
    for key in ("anyOf", "any_of", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return _instance(options[0], text)
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = schema.get("type")
    kind = (kind[0] if isinstance(kind, list) and kind else kind or "").lower()
    properties = schema.get("properties")
    if kind == "object" or (not kind and isinstance(properties, dict)):
        props = properties if isinstance(properties, dict) else {}
        return {name: _instance(sub, text) for name, sub in props.items()}
    if kind == "array":
        return [_instance(schema.get("items"), text)]
    return {"integer": 0, "number": 0, "boolean": False, "null": None}.get(kind, text)


def _model_info(model: str) -> dict[str, Any]:
    known = {m[0]: m for m in _MODELS}
    _, display, inputs, outputs = known.get(model, (model, model, 1_048_576, 65_536))
    info: dict[str, Any] = {
        "name": f"models/{model}",
        "version": "001",
        "displayName": display,
        "description": f"{display} (mockhub)",
        "inputTokenLimit": inputs,
        "outputTokenLimit": outputs,
    }
    if _is_embedding(model):
        info["supportedGenerationMethods"] = list(_EMBED_METHODS)
    else:
        info.update(
            supportedGenerationMethods=list(_GENERATE_METHODS),
            temperature=1,
            topP=0.95,
            topK=64,
            maxTemperature=2,
            thinking=model.startswith("gemini-2.5"),
        )
    return info
