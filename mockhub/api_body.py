"""The inspection API's request body limit, enforced while the body arrives (before FastAPI reads it).

FastAPI buffers a whole body before validating it: 300 MiB posted to `/stubs` would be held in
memory (twice, once parsed) before any error. The dispatcher reads the body here first, up to
`max_api_body_bytes`, and answers 413 as soon as it is exceeded (by `Content-Length` or by the
bytes received); the API then reads the body from memory.
"""

from __future__ import annotations

import asyncio

import orjson
from starlette.types import Message, Receive, Scope, Send

__all__ = ["limited_body"]


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        # The rest of the body may still be on the wire: this connection cannot carry another request.
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _too_large(limit: int) -> str:
    return f"request body larger than {limit} bytes (max_api_body_bytes, MOCKHUB_MAX_API_BODY_BYTES)"


async def limited_body(scope: Scope, receive: Receive, send: Send, limit: int, timeout: float) -> Receive | None:
    """A `receive` that hands the inspection API the whole body from memory; None when it was refused.

    Refused with 413 beyond `limit` bytes, 408 when the body takes longer than `timeout` seconds.
    """
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = 0  # the HTTP parser has already vetted the framing
            if declared > limit:
                await _refuse(send, 413, "too_large", _too_large(limit))
                return None
    message = await receive()
    if message["type"] != "http.request" or not message.get("more_body", False):
        first: Message | None = message
    else:
        chunks = [message.get("body", b"")]
        size = len(chunks[0])
        try:
            async with asyncio.timeout(timeout):
                while message.get("more_body", False):
                    message = await receive()
                    if message["type"] != "http.request":
                        break
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        await _refuse(send, 413, "too_large", _too_large(limit))
                        return None
                    chunks.append(chunk)
        except TimeoutError:
            await _refuse(send, 408, "timeout", f"request body not received within {timeout} s")
            return None
        if message["type"] != "http.request":
            first = message  # the client went away: the API sees the disconnect
        else:
            first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}

    async def replay() -> Message:
        nonlocal first
        if first is not None:
            out, first = first, None
            return out
        return await receive()

    return replay
