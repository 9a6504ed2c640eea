"""The Responses API (`POST /v1/responses`) of the OpenAI fake: the request's data and the reply.

Functions, not a second fake: `OpenAIService` authenticates and routes, then calls `parse` and `respond`.
The wire format is what the `openai` SDK parses (`types/responses`, `_streaming.py`).
"""

from __future__ import annotations

import time
from typing import Any

from mockhub.services import llm
from mockhub.services.base import Reply, Request, json_reply
from mockhub.services.openai_wire import (
    bad,
    function_tools,
    json_schema_format,
    stream_reply,
    strict_schema_check,
    stub_error,
    tool_choice,
    tool_texts,
)
from mockhub.services.tokens import Tokenizer

__all__ = ["parse", "respond"]


def parse(body: dict[str, Any], tokens: Tokenizer) -> dict[str, Any]:
    """The request data of a `POST /v1/responses` body (already authenticated and a JSON object)."""
    model = body.get("model")
    raw = body.get("input", "")
    instructions = body.get("instructions")
    data: dict[str, Any] = {
        "model": model,
        "input": raw,
        "instructions": instructions,
        "stream": bool(body.get("stream")),
        "tools": body.get("tools"),
    }
    if not model or not isinstance(model, str):
        raise bad("Missing required parameter: 'model'.", "model", "missing_required_parameter", **data)
    turns: list[llm.Turn] = []
    messages: list[dict[str, Any]] = []
    if isinstance(instructions, str) and instructions:
        turns.append(llm.Turn("system", instructions))
    if isinstance(raw, str):
        messages.append({"role": "user", "content": raw})
        turns.append(llm.Turn("user", raw))
    elif isinstance(raw, list):
        for item in raw:
            if not isinstance(item, dict):
                raise bad("Invalid type for 'input': expected a string or an array of input items.", "input", **data)
            kind = item.get("type", "message")
            if kind == "function_call_output":
                output = item.get("output")
                text = output if isinstance(output, str) else llm.text_of(output)
                turns.append(llm.Turn("tool", text, item.get("call_id")))
                messages.append({"role": "tool", "content": text, "call_id": item.get("call_id")})
            elif kind == "function_call":
                text = f"{item.get('name', '')}({item.get('arguments', '')})"
                turns.append(llm.Turn("assistant", text))
                messages.append({"role": "assistant", "content": text})
            elif kind == "message":
                role = item.get("role", "user")
                text = llm.text_of(item.get("content"))
                turns.append(llm.Turn("system" if role == "developer" else str(role), text))
                messages.append({"role": role, "content": text})
    else:
        raise bad("Invalid type for 'input': expected a string or an array of input items.", "input", **data)
    max_tokens = body.get("max_output_tokens")
    conv = llm.conversation(
        model,
        turns,
        tool_texts(body.get("tools")),
        max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None,
        tokens=tokens,
    )
    data["messages"] = messages
    data.update(conv.fields())
    data.update(shape(body, data).fields())
    data["last_tool_results"] = llm.trailing_tool_results(turns)
    _check_calls(raw, body, data)
    return data


def _check_calls(raw: Any, body: dict[str, Any], data: dict[str, Any]) -> None:
    """The Responses API's 400 for a function_call_output whose function_call is not in the input."""
    if not isinstance(raw, list) or body.get("previous_response_id") or body.get("conversation"):
        return  # the calls live in a stored response this fake does not keep
    called = {i.get("call_id") for i in raw if isinstance(i, dict) and i.get("type") == "function_call"}
    for item in raw:
        if isinstance(item, dict) and item.get("type") == "function_call_output" and item.get("call_id") not in called:
            raise bad(
                f"No tool call found for function call output with call_id {item.get('call_id')}.", "input", **data
            )


def shape(body: dict[str, Any], data: dict[str, Any]) -> llm.Shape:
    """The shape a Responses request demands (`text.format`, tools, tool_choice), or OpenAI's 400."""
    raw_tools = body.get("tools")
    tools = function_tools(raw_tools, flat=True)
    for i, tool in enumerate(tools):
        if tool.strict:
            strict_schema_check(f"function '{tool.name}'", tool.schema, f"tools[{i}].parameters", **data)
    choice, name = tool_choice(body.get("tool_choice"), tools, bool(raw_tools), True, **data)
    out = llm.Shape(tool_choice=choice, tool_name=name, tools=tools)
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        return out
    kind = fmt.get("type")
    if kind not in ("text", "json_object", "json_schema"):
        raise bad(
            f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object', and 'json_schema'.",
            "text.format.type",
            "invalid_value",
            **data,
        )
    out.format = str(kind)
    if kind == "json_object":
        words = " ".join(str(m.get("content", "")) for m in data.get("messages") or ())
        if "json" not in (words + str(body.get("instructions") or "")).lower():
            raise bad(
                "Response input messages must contain the word 'json' in some form to use 'text.format' of type "
                "'json_object'.",
                "input",
                **data,
            )
    elif kind == "json_schema":
        json_schema_format(out, fmt, "text.format", "text.format.schema", **data)
    return out


def respond(request: Request, tokens: Tokenizer, timing: llm.Timing) -> Reply:
    """The Response object, or its event stream (`response.created` ... `response.completed`)."""
    body = request.json()
    data = request.data
    conv = llm.Conversation.from_data(data, tokens)
    try:
        reply = llm.shaped_reply(conv, request.stub, "call_", shape(body, {}), data.get("last_tool_results") or [])
    except llm.StubMismatch as exc:
        data.update(error="stub_mismatch", stub_error=str(exc))
        request.call.invalidate()
        return stub_error(str(exc))
    incomplete = reply.finish == "length"
    status = "incomplete" if incomplete else "completed"
    llm.record_reply(data, reply, "status", status)
    request.call.invalidate()
    response_id = llm.random_id("resp_")
    created = int(time.time())
    message_id = llm.random_id("msg_")
    output: list[dict[str, Any]] = []
    if reply.text or not reply.tool_calls:
        output.append(_message_item(message_id, reply.text, "completed"))
    for tool in reply.tool_calls:
        output.append(_function_item(tool, "fc_" + tool.id.removeprefix("call_"), tool.arguments, "completed"))
    usage = {
        "input_tokens": reply.input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": reply.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": reply.input_tokens + reply.output_tokens,
    }

    def response(state: str, items: list[dict[str, Any]], with_usage: bool) -> dict[str, Any]:
        return {
            "id": response_id,
            "object": "response",
            "created_at": created,
            "status": state,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete and state == status else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "metadata": body.get("metadata") or {},
            "model": conv.model,
            "output": items,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": _text_config(body),
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": usage if with_usage else None,
            "user": None,
        }

    wait = 0.0 if data["stream"] else timing.total(reply.output_tokens)
    headers = [("x-request-id", llm.random_id("req_", 16)), ("openai-processing-ms", str(max(1, round(wait * 1000))))]
    if not data["stream"]:
        answer = json_reply(response(status, output, True), headers=headers)
        answer.wait = wait
        return answer

    frames = llm.Frames()

    def event(type_: str, tokens: int = 0, **fields: Any) -> None:
        frames.add(llm.sse({"type": type_, "sequence_number": len(frames), **fields}, type_), tokens)

    event("response.created", response=response("in_progress", [], False))
    event("response.in_progress", response=response("in_progress", [], False))
    index = 0
    if reply.text or not reply.tool_calls:
        event("response.output_item.added", output_index=0, item=_message_item(message_id, None, "in_progress"))
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        where: dict[str, Any] = {"item_id": message_id, "output_index": 0, "content_index": 0}
        event("response.content_part.added", **where, part=part)
        for piece, n in zip(reply.pieces, reply.piece_tokens, strict=True):
            event("response.output_text.delta", n, **where, delta=piece, logprobs=[])
        event("response.output_text.done", **where, text=reply.text, logprobs=[])
        event("response.content_part.done", **where, part={**part, "text": reply.text})
        event("response.output_item.done", output_index=0, item=output[0])
        index = 1
    for tool in reply.tool_calls:
        item_id = "fc_" + tool.id.removeprefix("call_")
        event("response.output_item.added", output_index=index, item=_function_item(tool, item_id, "", "in_progress"))
        for fragment, n in llm.argument_pieces(conv, tool):
            event("response.function_call_arguments.delta", n, item_id=item_id, output_index=index, delta=fragment)
        event("response.function_call_arguments.done", item_id=item_id, output_index=index, arguments=tool.arguments)
        event("response.output_item.done", output_index=index, item=output[index])
        index += 1
    event("response.incomplete" if incomplete else "response.completed", response=response(status, output, True))
    return stream_reply(frames, timing, reply.chunk_delay_ms, headers)


def _text_config(body: dict[str, Any]) -> dict[str, Any]:
    """The request's `text` settings as the Response echoes them (the format defaults to text)."""
    text = body.get("text")
    out = dict(text) if isinstance(text, dict) else {}
    if not isinstance(out.get("format"), dict):
        out["format"] = {"type": "text"}
    return out


def _message_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def _function_item(tool: llm.ToolUse, item_id: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": tool.id,
        "name": tool.name,
        "arguments": arguments,
    }
