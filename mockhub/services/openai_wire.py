"""OpenAI's error envelope and event-stream reply, shared by `openai.py` and `openai_responses.py`."""

from __future__ import annotations

from typing import Any

import orjson

from mockhub.services import llm
from mockhub.services.base import BadRequest, Reply, json_reply

__all__ = ["bad", "err", "stream_reply", "tool_texts"]


def err(status: int, message: str, type_: str, param: str | None = None, code: str | None = None) -> Reply:
    reply = json_reply({"error": {"message": message, "type": type_, "param": param, "code": code}}, status)
    reply.headers.append(("x-request-id", llm.random_id("req_", 16)))
    return reply


def bad(message: str, param: str | None = None, code: str | None = None, **data: Any) -> BadRequest:
    return BadRequest(err(400, message, "invalid_request_error", param, code), {"error": code or "invalid", **data})


def tool_texts(tools: Any) -> list[str]:
    """Tool definitions count towards the prompt's tokens."""
    if not isinstance(tools, list):
        return []
    return [orjson.dumps(t).decode() for t in tools]


def stream_reply(frames: llm.Frames, timing: llm.Timing, delay_ms: int, headers: list[tuple[str, str]]) -> Reply:
    return Reply(
        200,
        b"",
        [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache"), *headers],
        stream=frames.stream(timing, delay_ms),
    )


def stub_error(message: str) -> Reply:
    """A stub that does not fit the request: mockhub's own error, in OpenAI's envelope, not to be retried."""
    reply = err(500, message, "mockhub_stub_error", None, "stub_mismatch")
    reply.headers.append(("x-should-retry", "false"))
    return reply


def function_tools(tools: Any, flat: bool) -> list[llm.ToolSpec]:
    """The function tools of a request: chat's `{type, function: {...}}` or, `flat`, the Responses API's."""
    out: list[llm.ToolSpec] = []
    for tool in tools if isinstance(tools, list) else ():
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            continue
        fn = tool if flat else tool.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            continue
        params = fn.get("parameters")
        schema = params if isinstance(params, dict) else {"type": "object", "properties": {}}
        out.append(llm.ToolSpec(fn["name"], schema, fn.get("strict") is True))
    return out


def tool_choice(
    raw: Any, tools: list[llm.ToolSpec], has_tools: bool, flat: bool, /, **data: Any
) -> tuple[str, str | None]:
    """The neutral tool choice of `tool_choice` (chat or, `flat`, Responses), or OpenAI's 400."""
    if raw is None:
        return "auto", None
    if not has_tools:
        raise bad(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            "tool_choice",
            **data,
        )
    if isinstance(raw, str):
        if raw not in ("none", "auto", "required"):
            raise bad(
                f"Invalid value: '{raw}'. Supported values are: 'none', 'auto', and 'required'.",
                "tool_choice",
                "invalid_value",
                **data,
            )
        return raw, None
    if isinstance(raw, dict) and raw.get("type") == "function":
        fn = raw if flat else raw.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(name, str):
            where = "tool_choice.name" if flat else "tool_choice.function.name"
            raise bad(f"Missing required parameter: '{where}'.", where, "missing_required_parameter", **data)
        if name not in {t.name for t in tools}:
            raise bad(f"Tool choice '{name}' not found in 'tools' parameter.", "tool_choice", **data)
        return "named", name
    return "auto", None  # allowed_tools, hosted tools: not forced to one function here


def json_schema_format(shape: llm.Shape, spec: dict[str, Any], where: str, strict_param: str, /, **data: Any) -> None:
    """Fill `shape` from a `json_schema` format at `where` (its name, schema, strict), or OpenAI's 400.

    Chat completions give it as `response_format.json_schema`, Responses as `text.format`.
    """
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise bad(f"Missing required parameter: '{where}.name'.", f"{where}.name", "missing_required_parameter", **data)
    schema = spec.get("schema")
    shape.schema = schema if isinstance(schema, dict) else {}
    shape.schema_name = name
    if spec.get("strict") is True:
        owner = where.removesuffix(".json_schema")
        strict_schema_check(f"{owner} '{name}'", schema, strict_param, **data)


def strict_schema_check(owner: str, schema: Any, param: str, /, **data: Any) -> None:
    """OpenAI's 400 for a `strict: true` schema that strict mode cannot enforce."""
    from mockhub.services import json_schema

    problem = json_schema.strict_problem(schema)
    if problem is not None:
        raise bad(f"Invalid schema for {owner}: {problem}", param, "invalid_json_schema", **data)
