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


def stream_reply(frames: list[bytes], delay_ms: int, headers: list[tuple[str, str]]) -> Reply:
    return Reply(
        200,
        b"",
        [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache"), *headers],
        stream=llm.paced(frames, delay_ms),
    )
