"""Recordings: the durable JSON Lines journal, replay, HAR export, and stub/fault files (SPEC section 8).

The record file holds one line per call, `Call.to_dict()` as JSON, written by a journal sink before the
fake's answer is sent: a process killed at any moment has every acknowledged call on disk. A streamed
LLM call is recorded when its stream starts (with an empty response body) and completed by an
`{"update": id, ...}` line when the stream ends; replay folds updates into their call.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Collection, Iterable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson
from pydantic import BaseModel, ValidationError

from mockhub.journal import Call, Journal, ResponseRecord, encode_body
from mockhub.rules import FaultSpec, RuleBook, StubSpec, reply_field_problems

if TYPE_CHECKING:
    from mockhub.settings import Settings

__all__ = [
    "JsonlSink",
    "RecordingError",
    "attach",
    "call_from_dict",
    "jsonl_chunks",
    "load_journal",
    "load_rule_files",
    "to_har",
]

log = logging.getLogger("mockhub")


class RecordingError(Exception):
    """A record, replay or stub file that cannot be used; the message names the file and the entry."""


# -- the call record, both ways -------------------------------------------------------------------


def _parse_time(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    stamp = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    # Whole seconds plus exact microseconds, so formatting it again gives the same string.
    return int(stamp.timestamp()) + stamp.microsecond / 1_000_000


def _body(record: dict[str, Any], base: Path | None) -> bytes:
    body_file = record.get("body_file")
    if body_file is not None:
        if base is None:
            raise ValueError(f"body_file {body_file!r} but no folder to read it from")
        name = str(body_file)
        if name.startswith("/") or ".." in Path(name).parts:
            raise ValueError(f"body_file {name!r} must be a path inside the record folder")
        target = Path(base, name).resolve()
        # A symlink planted in the folder must not lead a replay to read files outside it either.
        if not target.is_relative_to(base.resolve()):
            raise ValueError(f"body_file {name!r} leads outside the record folder")
        return target.read_bytes()
    text = record.get("body") or ""
    if record.get("body_encoding") == "base64":
        return base64.b64decode(str(text))
    return str(text).encode("utf-8")


def _response(record: dict[str, Any] | None, base: Path | None) -> ResponseRecord | None:
    if record is None:
        return None
    return ResponseRecord(int(record["status"]), dict(record.get("headers") or {}), _body(record, base))


def _str(record: dict[str, Any], key: str) -> str:
    value = record[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, not {type(value).__name__}")
    return value


def call_from_dict(record: dict[str, Any], base: Path | None = None) -> Call:
    """The inverse of `Call.to_dict()` (bodies stored beside a record file are read from `base`)."""
    return Call(
        service=_str(record, "service"),
        method=_str(record, "method"),
        path=_str(record, "path"),
        namespace=record.get("namespace") or "default",
        direction=record.get("direction") or "inbound",
        query=dict(record.get("query") or {}),
        headers=dict(record.get("headers") or {}),
        body=_body(record, base),
        data=dict(record.get("data") or {}),
        response=_response(record.get("response"), base),
        fault=record.get("fault"),
        stub=record.get("stub"),
        duration_ms=float(record.get("duration_ms") or 0.0),
        time=_parse_time(record["time"]),
        id=_str(record, "id"),
        seq=int(record["seq"]),
    )


# -- the sink: one line per call --------------------------------------------------------------------


class JsonlSink:
    """Appends every call to `DIR/calls-<start>-<pid>-<part>.jsonl`, before the call is answered.

    Each line is one `os.write` on an O_APPEND descriptor (no user-space buffer to lose on a crash);
    with `fsync` it is also forced to the disk. Bodies larger than `inline_max_bytes` are written to
    `DIR/bodies/<id>.request|response` first, and the line names them.
    """

    def __init__(
        self,
        directory: Path,
        fsync: bool = False,
        rotate_bytes: int = 256 * 1024 * 1024,
        inline_max_bytes: int = 64 * 1024,
    ) -> None:
        self.directory = directory
        self.fsync = fsync
        self.rotate_bytes = rotate_bytes
        self.inline_max_bytes = inline_max_bytes
        self.written = 0
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordingError(f"{directory}: cannot create the record folder: {exc}") from exc
        self._stem = f"calls-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}"
        self._part = 0
        self._fd = -1
        self._size = 0
        self.path = directory
        self._open_next()

    def _open_next(self) -> None:
        self._part += 1
        self.path = self.directory / f"{self._stem}-{self._part:04d}.jsonl"
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise RecordingError(f"{self.path}: cannot open the record file: {exc}") from exc
        self._size = os.fstat(self._fd).st_size
        if self.fsync:
            _fsync_dir(self.directory)

    def _write(self, line: bytes) -> None:
        if self._fd < 0:
            self._open_next()
        view = memoryview(line)
        while view:
            view = view[os.write(self._fd, view) :]
        if self.fsync:
            os.fsync(self._fd)
        self._size += len(line)
        if self._size >= self.rotate_bytes:
            os.close(self._fd)
            self._open_next()

    def _outline(self, call: Call, which: str, body: bytes, rec: dict[str, Any]) -> None:
        """Store a large body beside the record file; the record names it instead of holding it."""
        if len(body) <= self.inline_max_bytes:
            return
        bodies = self.directory / "bodies"
        name = f"{_file_stem(call.id)}.{which}"
        new_dir = not bodies.exists()
        bodies.mkdir(exist_ok=True)
        fd = os.open(bodies / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if self.fsync:
            if new_dir:
                _fsync_dir(self.directory)
            _fsync_dir(bodies)
        rec.pop("body", None)
        rec.pop("body_encoding", None)
        rec["body_file"] = f"bodies/{name}"
        rec["body_size"] = len(body)

    def _record(self, call: Call) -> dict[str, Any]:
        record = call.to_dict()
        self._outline(call, "request", call.body, record)
        if call.response is not None and record["response"] is not None:
            self._outline(call, "response", call.response.body, record["response"])
        return record

    def write(self, call: Call) -> None:
        """The journal sink: runs inside `Journal.append`, before the fake answers."""
        try:
            self._write(orjson.dumps(self._record(call)) + b"\n")
        except OSError:
            # Not acknowledged either: the exception fails the call (500 / SMTP 451) rather than lose it.
            log.exception("mockhub: cannot record call %s to %s", call.id, self.path)
            raise
        self.written += 1

    def update(self, call: Call) -> None:
        """A call completed after it was recorded (a finished stream): its new response, data and fault."""
        record = self._record(call)
        update = {
            "update": call.id,
            "response": record["response"],
            "data": record["data"],
            "fault": record["fault"],
            "duration_ms": record["duration_ms"],
        }
        try:
            self._write(orjson.dumps(update) + b"\n")
        except OSError:
            log.exception("mockhub: cannot record the end of call %s to %s", call.id, self.path)

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


_SAFE_STEM = re.compile(r"[A-Za-z0-9_-]{1,100}")


def _file_stem(call_id: str) -> str:
    """A file name for a call's body that stays inside `bodies/`, whatever the id holds.

    mockhub's own ids (`c_<hex>`) are used as they are; anything else (an id from a hand-edited or
    hostile replay file, say) becomes a digest, so no id can name a path outside the folder.
    """
    if _SAFE_STEM.fullmatch(call_id):
        return call_id
    return "id-" + hashlib.sha256(call_id.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- replay -----------------------------------------------------------------------------------------


def load_journal(path: Path, keep: int | None = None) -> tuple[list[Call], int]:
    """The calls of a record file (or of every `*.jsonl` in a folder, in name order), updates folded in.

    Returns (calls, dropped): with `keep`, only the newest `keep` calls are returned and the others
    counted as dropped, so loading a huge recording never holds more than the journal would. Seqs are
    kept; where files from several runs restart at 1, later calls are renumbered to keep the order.
    """
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
    elif path.is_file():
        files = [path]
    else:
        raise RecordingError(f"{path}: no such file or folder to replay")
    calls: dict[str, Call] = {}
    dropped = 0
    for file in files:
        with file.open("rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    if not line.endswith(b"\n"):
                        # A line cut by a crash mid-write: that call was never acknowledged.
                        log.warning("%s:%d: ignoring a torn last line", file, lineno)
                        continue
                    raise RecordingError(f"{file}:{lineno}: not valid JSON: {exc}") from exc
                try:
                    if not isinstance(record, dict):
                        raise ValueError("a line must be a JSON object")
                    if "update" in record:
                        call = calls.get(record["update"])
                        if call is not None:
                            _fold(call, record, file.parent)
                        continue
                    call = call_from_dict(record, file.parent)
                except (KeyError, TypeError, ValueError, OSError) as exc:
                    raise RecordingError(f"{file}:{lineno}: not a mockhub call record: {exc!r}") from exc
                calls.pop(call.id, None)
                calls[call.id] = call
                if keep is not None and len(calls) > keep:
                    del calls[next(iter(calls))]
                    dropped += 1
    ordered = list(calls.values())
    last = 0
    for call in ordered:
        if call.seq <= last:
            call.seq = last + 1
        last = call.seq
    return ordered, dropped


def _fold(call: Call, update: dict[str, Any], base: Path) -> None:
    if "response" in update:
        call.response = _response(update["response"], base)
    if "data" in update:
        call.data = dict(update["data"] or {})
    if "fault" in update:
        call.fault = update["fault"]
    if "duration_ms" in update:
        call.duration_ms = float(update["duration_ms"] or 0.0)
    call.invalidate()


# -- export -----------------------------------------------------------------------------------------


async def jsonl_chunks(calls: list[Call], batch: int = 500) -> AsyncIterator[bytes]:
    """The calls as JSON Lines, a batch at a time (bodies always inline: an export stands alone)."""
    for start in range(0, len(calls), batch):
        yield b"".join(orjson.dumps(c.to_api()) + b"\n" for c in calls[start : start + batch])


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
    host = call.headers.get("host", "localhost")
    path = call.path
    if call.namespace != "default" and "x-mockhub-namespace" not in call.headers:
        path = f"/ns/{call.namespace}{path}"
    query = f"?{urlencode(call.query, doseq=True)}" if call.query else ""
    return f"http://{host}{path}{query}"


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


# -- stub and fault files ---------------------------------------------------------------------------

_STUB_KEYS = frozenset({"reply", "response", "sequence"})
_FAULT_KEYS = frozenset({"action", "preset"})
_RULE_SUFFIXES = (".json", ".yaml", ".yml")


def _problems(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        message = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _parse_file(file: Path) -> Any:
    try:
        text = file.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{file}: cannot read: {exc}") from exc
    if file.suffix == ".json":
        import json

        try:
            return json.loads(text) if text.strip() else None
        except json.JSONDecodeError as exc:
            raise RecordingError(f"{file}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    import yaml  # only stub files need it: keeps ~30 ms off every start

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start is not None:
            problem += f" ({context} at line {start.line + 1} column {start.column + 1})"
        raise RecordingError(f"{file}: invalid YAML{where}: {problem}") from exc


def _entries(file: Path, content: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """(where, kind, entry) for each rule in a file: a list, or a mapping with `stubs` / `faults` lists."""
    if content is None:
        return []
    found: list[tuple[str, str, dict[str, Any]]] = []
    if isinstance(content, dict):
        unknown = set(content) - {"stubs", "faults", "description"}
        if unknown:
            raise RecordingError(
                f"{file}: unknown top-level key(s) {', '.join(sorted(map(str, unknown)))}: "
                "expected 'stubs', 'faults' (lists) and an optional 'description'"
            )
        for kind in ("stubs", "faults"):
            items = content.get(kind) or []
            if not isinstance(items, list):
                raise RecordingError(f"{file}: '{kind}' must be a list, not {type(items).__name__}")
            for i, item in enumerate(items):
                found.append((f"{kind}[{i}]", kind[:-1], item))
        return found
    if not isinstance(content, list):
        raise RecordingError(f"{file}: expected a list of stubs/faults or a mapping with 'stubs' and 'faults'")
    for i, item in enumerate(content):
        keys = set(item) if isinstance(item, dict) else set()
        if keys & _STUB_KEYS and not keys & _FAULT_KEYS:
            found.append((f"entry {i}", "stub", item))
        elif keys & _FAULT_KEYS and not keys & _STUB_KEYS:
            found.append((f"entry {i}", "fault", item))
        else:
            raise RecordingError(
                f"{file}: entry {i}: cannot tell a stub from a fault: a stub has 'reply', 'response' or "
                "'sequence'; a fault has 'action' or 'preset' (or use the 'stubs:' / 'faults:' form)"
            )
    return found


def _reply_problems(fields: dict[str, Any], services: Collection[str] | None) -> list[str]:
    if not isinstance(services, Mapping):
        return []
    service = fields.get("service") if isinstance(fields.get("service"), str) else None
    replies: list[tuple[str, Mapping[str, Any]]] = []
    if isinstance(fields.get("reply"), dict):
        replies.append(("reply", fields["reply"]))
    if isinstance(fields.get("sequence"), list):
        replies += [(f"sequence.{i}", r) for i, r in enumerate(fields["sequence"]) if isinstance(r, dict)]
    return reply_field_problems(service, replies, services)


def load_rule_files(path: Path, services: Collection[str] | None = None) -> list[StubSpec | FaultSpec]:
    """Every stub and fault in a stub file, or in the `*.json`/`*.yaml` files of a folder (name order).

    Each entry may carry a `description` (documentation only). Any invalid entry fails the whole load
    with a message naming the file, the entry and the field. With `services`, unknown names are errors.
    """
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in _RULE_SUFFIXES and p.is_file())
    elif path.is_file():
        files = [path]
    else:
        raise RecordingError(f"{path}: no such stub file or folder")
    specs: list[StubSpec | FaultSpec] = []
    for file in files:
        for where, kind, entry in _entries(file, _parse_file(file)):
            if not isinstance(entry, dict):
                raise RecordingError(f"{file}: {where}: expected a mapping, not {type(entry).__name__}")
            fields = {k: v for k, v in entry.items() if k != "description"}
            model: type[BaseModel] = StubSpec if kind == "stub" else FaultSpec
            label = f" (service '{fields['service']}')" if isinstance(fields.get("service"), str) else ""
            # The fakes' own reply fields are checked on the raw entry, so both kinds of problem show at once.
            own = _reply_problems(fields, services) if kind == "stub" else []
            try:
                spec = model.model_validate(fields)
            except ValidationError as exc:
                problems = "; ".join([_problems(exc), *own])
                raise RecordingError(f"{file}: {where}{label}: invalid {kind}: {problems}") from exc
            if own:
                raise RecordingError(f"{file}: {where}{label}: invalid {kind}: {'; '.join(own)}")
            assert isinstance(spec, StubSpec | FaultSpec)
            if services is not None and spec.service is not None and spec.service not in services:
                raise RecordingError(
                    f"{file}: {where}: unknown service '{spec.service}' (known: {', '.join(sorted(services))})"
                )
            specs.append(spec)
    return specs


# -- wiring -----------------------------------------------------------------------------------------


def attach(settings: Settings, journal: Journal, rules: RuleBook, services: Collection[str]) -> JsonlSink | None:
    """At start: load stub files, replay a recording, then start recording. Raises `RecordingError`."""
    if settings.stubs is not None:
        specs = load_rule_files(settings.stubs, services)
        for spec in specs:
            if isinstance(spec, StubSpec):
                rules.add_stub(spec)
            else:
                rules.add_fault(spec)
        log.info("loaded %d stubs and faults from %s", len(specs), settings.stubs)
    if settings.replay is not None:
        calls, dropped = load_journal(settings.replay, keep=journal.max_calls)
        journal.restore(calls)
        journal.evicted += dropped
        log.info("replayed %d calls from %s (%d beyond max_calls)", len(calls), settings.replay, dropped)
    if settings.record_dir is None:
        return None
    sink = JsonlSink(
        settings.record_dir, settings.fsync, settings.record_rotate_bytes, settings.record_inline_max_bytes
    )
    journal.add_sink(sink.write)
    journal.add_update_sink(sink.update)
    return sink
