"""HAR 1.2 export of the journal (`GET /calls/export?format=har`): HTTP calls only, failures as browsers show them."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

import orjson

from mockhub.journal import Call, encode_body

__all__ = ["har_chunks", "to_har"]

_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


def _pairs(items: dict[str, Any]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for name, value in items.items():
        for v in value if isinstance(value, list) else [value]:
            out.append({"name": name, "value": str(v)})
    return out


def _url(call: Call) -> str:
    if call.path.startswith(("http://", "https://")):
        return call.path
    host = call.host or call.headers.get("host", "localhost")
    path = call.path
    if call.namespace != "default" and "x-mockhub-namespace" not in call.headers:
        path = f"/ns/{call.namespace}{path}"
    query = f"?{urlencode(call.query, doseq=True)}" if call.query else ""
    return f"{call.scheme}://{host}{path}{query}"


def _content(body: bytes, mime: str) -> dict[str, Any]:
    text, encoding = encode_body(body)
    content: dict[str, Any] = {"size": len(body), "mimeType": mime}
    if body:
        content["text"] = text
        if encoding == "base64":
            content["encoding"] = "base64"
    return content


def _har_entry(call: Call) -> dict[str, Any]:
    request: dict[str, Any] = {
        "method": call.method,
        "url": _url(call),
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": _pairs(call.headers),
        "queryString": _pairs(call.query),
        "headersSize": -1,
        "bodySize": len(call.body),
    }
    if call.body:
        text, _ = encode_body(call.body)
        request["postData"] = {"mimeType": call.headers.get("content-type", "application/octet-stream"), "text": text}
    entry: dict[str, Any] = {
        "startedDateTime": datetime.fromtimestamp(call.time, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "time": round(call.duration_ms, 3),
        "request": request,
        "cache": {},
        "timings": {"send": 0, "wait": round(call.duration_ms, 3), "receive": 0},
        "_mockhub": {
            "id": call.id,
            "seq": call.seq,
            "service": call.service,
            "namespace": call.namespace,
            "direction": call.direction,
            "data": call.data,
            "fault": call.fault,
            "stub": call.stub,
        },
    }
    response = call.response
    if response is None:
        # No answer at all (a reset, an empty close, a timeout): how browsers export a failed request.
        entry["response"] = {
            "status": 0,
            "statusText": "",
            "httpVersion": "",
            "cookies": [],
            "headers": [],
            "content": {"size": 0, "mimeType": "x-unknown"},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
            "_error": (call.fault or {}).get("reason", "no response"),
        }
        return entry
    try:
        status_text = HTTPStatus(response.status).phrase
    except ValueError:
        status_text = ""
    entry["response"] = {
        "status": response.status,
        "statusText": status_text,
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": _pairs(response.headers),
        "content": _content(response.body, response.headers.get("content-type", "x-unknown")),
        "redirectURL": response.headers.get("location", ""),
        "headersSize": -1,
        "bodySize": len(response.body),
    }
    return entry


def to_har(calls: Iterable[Call], version: str) -> dict[str, Any]:
    """A HAR 1.2 log of the HTTP calls; SMTP calls are not HTTP, so they are counted and left out."""
    entries: list[dict[str, Any]] = []
    skipped = 0
    for call in calls:
        if call.method in _HTTP_METHODS:
            entries.append(_har_entry(call))
        else:
            skipped += 1
    log_: dict[str, Any] = {
        "version": "1.2",
        "creator": {"name": "mockhub", "version": version},
        "pages": [],
        "entries": entries,
    }
    if skipped:
        log_["comment"] = f"{skipped} non-HTTP calls (SMTP) left out: export them with format=jsonl"
    return {"log": log_}


async def har_chunks(batches: AsyncIterable[list[Call]], version: str) -> AsyncIterator[bytes]:
    """`to_har` as a stream: the log's head, then the entries a batch at a time, then its tail.

    The same document `to_har` builds (key order aside), without ever holding it whole.
    """
    creator = orjson.dumps({"name": "mockhub", "version": version})
    yield b'{"log":{"version":"1.2","creator":' + creator + b',"pages":[],"entries":['
    skipped = 0
    first = True
    async for calls in batches:
        entries = []
        for call in calls:
            if call.method in _HTTP_METHODS:
                entries.append(orjson.dumps(_har_entry(call)))
            else:
                skipped += 1
        if entries:
            yield (b"" if first else b",") + b",".join(entries)
            first = False
    tail = b"]"
    if skipped:
        comment = f"{skipped} non-HTTP calls (SMTP) left out: export them with format=jsonl"
        tail += b',"comment":' + orjson.dumps(comment)
    yield tail + b"}}"
