"""The Anthropic fake: the Messages API (plain, streamed, tools) at `/v1/messages`.

Point the SDK at it with `Anthropic(base_url="http://host:8080", api_key="anything")`. Reply
selection and token counts are shared with the OpenAI fake (`services/llm.py`); this module speaks
the wire format the `anthropic` SDK parses (`types/message.py`, `_streaming.py`, `lib/streaming`).
"""

from __future__ import annotations

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
)
from mockhub.usage import Billed

__all__ = ["AnthropicService"]

_STOP = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens", "stop_sequence": "stop_sequence"}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_PRESETS: dict[str, tuple[int, str]] = {
    "rate_limited": (
        429,
        "Number of requests has exceeded your per-minute rate limit "
        "(https://docs.anthropic.com/en/api/rate-limits). Please try again later.",
    ),
    "server_error": (500, "Internal server error"),
    "unavailable": (503, "Service unavailable"),
    "overloaded": (529, "Overloaded"),
    "unauthorized": (401, "invalid x-api-key"),
}
# Retry hints small enough that the SDK's retries take milliseconds (it prefers retry-after-ms).
_RETRY_HEADERS = [("retry-after", "1"), ("retry-after-ms", "20")]


def _err(status: int, message: str, type_: str | None = None) -> Reply:
    request_id = llm.random_id("req_", 12)
    error_type = type_ or _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    obj = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}
    return json_reply(obj, status, [("request-id", request_id)])


def _bad(message: str, **data: Any) -> BadRequest:
    return BadRequest(_err(400, message), {"error": "invalid_request_error", **data})


class AnthropicService(Service):
    """Anthropic's Messages API."""

    name = "anthropic"
    label = "Anthropic"
    color = "#b3541e"
    hosts = ("api.anthropic.com",)
    urls = {"anthropic_base": AppUrl(path="", description="`Anthropic(base_url=...)` (without /v1: the SDK adds it)")}
    env = (
        EnvVar(name="ANTHROPIC_BASE_URL", value="{urls.anthropic_base}"),
        EnvVar(name="ANTHROPIC_API_KEY", value="sk-ant-mockhub"),
    )

    # Published list prices (USD per million tokens) when this was written: an estimate.
    prices = llm.prices(
        {
            "claude-opus-4-5": (5.00, 25.00),
            "claude-opus-4": (15.00, 75.00),
            "claude-sonnet-4": (3.00, 15.00),
            "claude-haiku-4": (1.00, 5.00),
            "claude-3-7-sonnet": (3.00, 15.00),
            "claude-3-5-sonnet": (3.00, 15.00),
            "claude-3-5-haiku": (0.80, 4.00),
            "claude-3-opus": (15.00, 75.00),
            "claude-3-haiku": (0.25, 1.25),
        }
    )

    @classmethod
    def summarize(cls, call: Call) -> str:
        return llm.summary(call)

    @classmethod
    def usage(cls, call: Call) -> Billed | None:
        return llm.billed(call) if call.path.endswith("/v1/messages") else None

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.credentials = llm.Credentials(ctx.pinned)
        self.tokens = tokens.tokenizer(ctx.settings.llm_tokenizer)

    async def start(self) -> None:
        self.ctx.spawn(llm.warm(self.tokens))

    stub_reply = llm.LlmTiming

    def routes(self) -> list[Route]:
        return [
            route("POST", "/v1/messages", self.messages, self.parse),
            route("POST", "/v1/messages/count_tokens", self.count_tokens, self.parse_count, reply_stubs=False),
        ]

    # -- provider shapes -----------------------------------------------------------------------
    def error(self, status: int, message: str, code: str | None = None) -> Reply:
        return _err(status, message)

    def preset(self, name: Preset, request: Request) -> Reply:
        status, message = _PRESETS[name]
        reply = _err(status, message)
        if status == 429 or status >= 500:
            reply.headers.extend(_RETRY_HEADERS)
        if status == 429:
            reply.headers.extend(
                [("anthropic-ratelimit-requests-limit", "50"), ("anthropic-ratelimit-requests-remaining", "0")]
            )
        return reply

    # -- parsing (before rules) ----------------------------------------------------------------
    def parse(self, request: Request, count_only: bool = False) -> dict[str, Any]:
        # The SDK sends its key as `x-api-key`, or as `Authorization: Bearer` (recent SDKs, OAuth tokens).
        key = request.header("x-api-key") or llm.bearer(request.header("authorization"))
        problem = self.credentials.problem(key)
        if problem is not None:
            message = "x-api-key header is required" if problem == "missing" else "invalid x-api-key"
            raise BadRequest(_err(401, message), {"error": "authentication_error"})
        if not request.header("anthropic-version"):
            raise _bad("anthropic-version: header is required")
        try:
            body = request.json()
        except ValueError:
            raise _bad("There was an error parsing the body of your request as JSON.") from None
        if not isinstance(body, dict):
            raise _bad("There was an error parsing the body of your request as JSON.")
        model = body.get("model")
        messages = body.get("messages")
        max_tokens = body.get("max_tokens")
        data: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "system": body.get("system"),
            "stream": bool(body.get("stream")),
            "tools": body.get("tools"),
        }
        if not model or not isinstance(model, str):
            raise _bad("model: Field required", **data)
        if messages is None:
            raise _bad("messages: Field required", **data)
        if not isinstance(messages, list):
            raise _bad("messages: Input should be a valid list", **data)
        if count_only:
            max_tokens = None
        elif max_tokens is None:
            raise _bad("max_tokens: Field required", **data)
        elif not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise _bad("max_tokens: Input should be greater than or equal to 1", **data)
        _check_conversation(messages, data)
        shape = messages_shape(body, data)
        turns: list[llm.Turn] = []
        system = body.get("system")
        if system:
            turns.append(llm.Turn("system", llm.text_of(system)))
        for i, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if role not in ("user", "assistant"):
                raise _bad(f"messages.{i}.role: Input should be 'user' or 'assistant'", **data)
            turns.extend(_turns(role, message.get("content")))
        stop = body.get("stop_sequences")
        conv = llm.conversation(
            model,
            turns,
            [orjson.dumps(t).decode() for t in body.get("tools") or () if isinstance(t, dict)],
            max_tokens,
            stop if isinstance(stop, list) else (),
            self.tokens,
        )
        data.update(conv.fields())
        data.update(shape.fields())
        data["last_tool_results"] = llm.trailing_tool_results(turns)
        return data

    def parse_count(self, request: Request) -> dict[str, Any]:
        # The same request as /v1/messages, minus `max_tokens`, which counting does not need.
        return self.parse(request, count_only=True)

    # -- answering -----------------------------------------------------------------------------
    async def count_tokens(self, request: Request) -> Reply:
        tokens = request.data["usage"]["input_tokens"]
        return json_reply({"input_tokens": tokens}, headers=[("request-id", llm.random_id("req_"))])

    async def messages(self, request: Request) -> Reply:
        data = request.data
        conv = llm.Conversation.from_data(data, self.tokens)
        try:
            shape = messages_shape(request.json(), {})
            reply = llm.shaped_reply(conv, request.stub, "toolu_", shape, data.get("last_tool_results") or [])
        except llm.StubMismatch as exc:
            data.update(error="stub_mismatch", stub_error=str(exc))
            request.call.invalidate()
            failed = _err(500, str(exc), "mockhub_stub_error")
            failed.headers.append(("x-should-retry", "false"))
            return failed
        stop_reason = _STOP.get(reply.finish, reply.finish)
        llm.record_reply(data, reply, "stop_reason", stop_reason)
        request.call.invalidate()
        message_id = llm.random_id("msg_")
        request_id = llm.random_id("req_")
        headers = [("request-id", request_id)]
        timing = llm.Timing.of(self.ctx.settings, request.stub)
        usage = {
            "input_tokens": reply.input_tokens,
            "output_tokens": reply.output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "service_tier": "standard",
        }
        has_text = bool(reply.text) or not reply.tool_calls
        message: dict[str, Any] = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": conv.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        if not data["stream"]:
            content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if has_text else []
            content.extend({"type": "tool_use", "id": t.id, "name": t.name, "input": t.input} for t in reply.tool_calls)
            message.update(content=content, stop_reason=stop_reason, stop_sequence=reply.stop_sequence)
            answer = json_reply(message, headers=headers)
            answer.wait = timing.total(reply.output_tokens)
            return answer

        def event(type_: str, **fields: Any) -> bytes:
            return llm.sse({"type": type_, **fields}, type_)

        frames = llm.Frames()
        frames.add(event("message_start", message={**message, "usage": {**usage, "output_tokens": 1}}))
        index = 0
        if has_text:
            frames.add(event("content_block_start", index=0, content_block={"type": "text", "text": ""}))
            frames.add(event("ping"))
            for piece, n in zip(reply.pieces, reply.piece_tokens, strict=True):
                frames.add(event("content_block_delta", index=0, delta={"type": "text_delta", "text": piece}), n)
            frames.add(event("content_block_stop", index=0))
            index = 1
        for tool in reply.tool_calls:
            block = {"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}}
            frames.add(event("content_block_start", index=index, content_block=block), self.tokens.count(tool.name))
            if index == 0:
                frames.add(event("ping"))
            for fragment, n in [("", 0), *llm.argument_pieces(conv, tool)]:
                delta = {"type": "input_json_delta", "partial_json": fragment}
                frames.add(event("content_block_delta", index=index, delta=delta), n)
            frames.add(event("content_block_stop", index=index))
            index += 1
        delta_usage = {
            "input_tokens": reply.input_tokens,
            "output_tokens": reply.output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        frames.add(
            event(
                "message_delta",
                delta={"stop_reason": stop_reason, "stop_sequence": reply.stop_sequence},
                usage=delta_usage,
            )
        )
        frames.add(event("message_stop"))
        return Reply(
            200,
            b"",
            [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache"), *headers],
            stream=frames.stream(timing, reply.chunk_delay_ms),
        )


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _check_conversation(messages: list[Any], data: dict[str, Any]) -> None:
    """Anthropic's 400s for the shape of a conversation: empty, not opened by the user, broken tool loops.

    Consecutive messages of one role are one turn (the API combines them), so a tool_result answers the
    tool_use blocks of the assistant turn before its own turn.
    """
    if not messages:
        raise _bad("messages: at least one message is required", **data)
    first = messages[0]
    if isinstance(first, dict) and first.get("role") == "assistant":
        raise _bad('messages: first message must use the "user" role', **data)
    # Turns: runs of one role, with the index of their first message.
    turns: list[tuple[str, list[tuple[int, dict[str, Any]]]]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if not turns or turns[-1][0] != role:
            turns.append((str(role), []))
        turns[-1][1].append((i, message))
    for t, (role, members) in enumerate(turns):
        if role != "user":
            continue
        before = turns[t - 1] if t else None
        asked = (
            {b.get("id") for _, m in before[1] for b in _blocks(m.get("content")) if b.get("type") == "tool_use"}
            if before is not None
            else set()
        )
        answered: set[Any] = set()
        for i, message in members:
            for j, block in enumerate(_blocks(message.get("content"))):
                if block.get("type") != "tool_result":
                    continue
                use_id = block.get("tool_use_id")
                if use_id not in asked:
                    raise _bad(
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {use_id}. "
                        "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
                        **data,
                    )
                answered.add(use_id)
        missing = [str(x) for x in asked if x not in answered]
        if missing and before is not None:
            raise _bad(
                f"messages.{before[1][0][0]}: `tool_use` ids were found without `tool_result` blocks immediately "
                f"after: {', '.join(sorted(missing))}. Each `tool_use` block must have a corresponding `tool_result` "
                "block in the next message.",
                **data,
            )


def messages_shape(body: dict[str, Any], data: dict[str, Any]) -> llm.Shape:
    """The shape a Messages request demands (tools, tool_choice, output_config.format), or Anthropic's 400."""
    tools: list[llm.ToolSpec] = []
    raw_tools = body.get("tools")
    for tool in raw_tools if isinstance(raw_tools, list) else ():
        if isinstance(tool, dict) and isinstance(tool.get("name"), str) and isinstance(tool.get("input_schema"), dict):
            tools.append(llm.ToolSpec(tool["name"], tool["input_schema"], tool.get("strict") is True))
    shape = llm.Shape(tools=tools)
    choice = body.get("tool_choice")
    if choice is not None:
        kind = choice.get("type") if isinstance(choice, dict) else None
        if kind not in ("auto", "any", "tool", "none"):
            raise _bad(
                f"tool_choice: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
                "'auto', 'any', 'tool', 'none'",
                **data,
            )
        if kind == "tool":
            name = choice.get("name")
            if not isinstance(name, str):
                raise _bad("tool_choice.tool.name: Field required", **data)
            if name not in {t.name for t in tools} and name not in {
                t.get("name") for t in raw_tools or () if isinstance(t, dict)
            }:
                raise _bad(f"Tool '{name}' not found in provided tools", **data)
            shape.tool_choice, shape.tool_name = "named", name
        elif kind == "any":
            if not raw_tools:
                raise _bad("tool_choice: tool_choice.type 'any' may only be specified while providing tools", **data)
            shape.tool_choice = "required"
        else:
            shape.tool_choice = str(kind)
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise _bad("output_config.format.json_schema.schema: Field required", **data)
        shape.format, shape.schema = "json_schema", schema
    return shape


def _turns(role: str, content: Any) -> list[llm.Turn]:
    """One message as turns: its text, then each tool result it carries (they answer the model's tool_use)."""
    if isinstance(content, str):
        return [llm.Turn(role, content)]
    if not isinstance(content, list):
        return [llm.Turn(role, "")]
    texts: list[str] = []
    results: list[llm.Turn] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_result":
            results.append(llm.Turn("tool", llm.text_of(block.get("content")), block.get("tool_use_id")))
        elif kind == "tool_use":
            texts.append(f"{block.get('name', '')}({orjson.dumps(block.get('input', {})).decode()})")
    turns = [llm.Turn(role, "\n".join(texts))] if texts or not results else []
    return turns + results
