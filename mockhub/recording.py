"""Recordings: the durable JSON Lines journal, replay, and `attach`, which wires them up (SPEC section 8).

Also the public face of HAR export (`mockhub.har`) and stub/fault files (`mockhub.rulefiles`):
every name in `__all__` is importable from here.

The record file holds one line per call, `Call.to_dict()` as JSON, written by a journal sink before the
fake's answer is sent: a process killed at any moment has every acknowledged call on disk. A streamed
LLM call is recorded when its stream starts (with an empty response body) and completed by an
`{"update": id, ...}` line when the stream ends; replay folds updates into their call.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import re
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from mockhub.har import to_har
from mockhub.journal import Call, Journal, ResponseRecord, SinkError
from mockhub.limits import LimitSpec
from mockhub.rulefiles import RecordingError, load_rule_files
from mockhub.rules import RuleBook, StubSpec, TooManyRules

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
    """The inverse of `Call.to_dict()` (bodies stored beside a record file are read from `base`).

    A record line may leave out `data` when it is the body's JSON object (`data_is_body`); lines of
    older versions, which hold both, are read as they are.
    """
    body = _body(record, base)
    if record.get("data_is_body"):
        data = orjson.loads(body)
        if not isinstance(data, dict):
            raise ValueError("data_is_body, but the body is not a JSON object")
    else:
        data = dict(record.get("data") or {})
    call = Call(
        service=_str(record, "service"),
        method=_str(record, "method"),
        path=_str(record, "path"),
        namespace=record.get("namespace") or "default",
        direction=record.get("direction") or "inbound",
        host=record.get("host") or "",
        scheme=record.get("scheme") or "http",
        query=dict(record.get("query") or {}),
        headers=dict(record.get("headers") or {}),
        body=body,
        data=data,
        response=_response(record.get("response"), base),
        fault=record.get("fault"),
        stub=record.get("stub"),
        duration_ms=float(record.get("duration_ms") or 0.0),
        time=_parse_time(record["time"]),
        id=_str(record, "id"),
        seq=int(record["seq"]),
        data_truncated=bool(record.get("data_truncated")),
    )
    call.check_data()  # a record file written by hand may hold what no reader can serve
    return call


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
        self.failed = 0
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
        try:
            self._open()
        except OSError as exc:
            raise RecordingError(f"{self.path}: cannot open the record file: {exc}") from exc

    def _open(self) -> None:
        self._part += 1
        self.path = self.directory / f"{self._stem}-{self._part:04d}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size
        if self.fsync:
            _fsync_dir(self.directory)

    def _write(self, line: bytes) -> None:
        """Append one whole line, or nothing: a failed write (ENOSPC) is cut back to the last whole line.

        `_size` is where the last complete line ends. A short write followed by ENOSPC leaves part of
        the line in the file; without the cut, the next call's line would be glued onto it and both
        unreadable. When even the cut fails, the file is given up (its torn last line is ignored by
        replay) and the next call starts a new one.
        """
        if self._fd < 0:
            self._open()
        good = self._size
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]
            if self.fsync:
                os.fsync(self._fd)
        except OSError:
            self.failed += 1
            try:
                os.ftruncate(self._fd, good)
            except OSError:
                log.warning("mockhub: cannot cut %s back to its last whole line; starting a new file", self.path)
                self._abandon()
            raise
        self._size += len(line)
        if self._size >= self.rotate_bytes:
            os.close(self._fd)
            self._fd = -1
            self._open()

    def _abandon(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = -1

    def _outline(self, call: Call, which: str, body: bytes, rec: dict[str, Any], files: list[Path]) -> None:
        """Store a large body beside the record file; the record names it instead of holding it."""
        if len(body) <= self.inline_max_bytes:
            return
        bodies = self.directory / "bodies"
        name = f"{_file_stem(call.id)}.{which}"
        new_dir = not bodies.exists()
        bodies.mkdir(exist_ok=True)
        target = bodies / name
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        files.append(target)
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

    def _record(self, call: Call, files: list[Path]) -> dict[str, Any]:
        record = call.to_dict()
        if _data_is_body(call):
            # A JSON body parsed as it is into `data` (a webhook's): stored once, `data` rebuilt on replay.
            del record["data"]
            record["data_is_body"] = True
        self._outline(call, "request", call.body, record, files)
        if call.response is not None and record["response"] is not None:
            self._outline(call, "response", call.response.body, record["response"], files)
        return record

    def _line(self, call: Call, build: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Write the line `build` makes of the call's record; on failure remove the body files it wrote."""
        files: list[Path] = []
        try:
            self._write(orjson.dumps(build(self._record(call, files))) + b"\n")
        except OSError:
            for file in files:
                with contextlib.suppress(OSError):
                    file.unlink()
            raise

    def write(self, call: Call) -> None:
        """The journal sink: runs inside `Journal.append`, before the fake answers."""
        try:
            self._line(call, lambda record: record)
        except OSError as exc:
            # Not acknowledged either: the error fails the call (500 / SMTP 451) rather than lose it.
            log.error("mockhub: cannot record call %s to %s: %s", call.id, self.path, exc)
            raise SinkError(f"cannot record the call to {self.path}: {exc.strerror or exc}") from exc
        self.written += 1

    def update(self, call: Call) -> None:
        """A call completed after it was recorded (a finished stream): its new response, data and fault."""

        def update(record: dict[str, Any]) -> dict[str, Any]:
            return {
                "update": call.id,
                "response": record["response"],
                "data": call.data,
                "fault": record["fault"],
                "duration_ms": record["duration_ms"],
            }

        try:
            self._line(call, update)
        except OSError as exc:
            log.error("mockhub: cannot record the end of call %s to %s: %s", call.id, self.path, exc)

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


def _data_is_body(call: Call) -> bool:
    """Whether `data` is exactly the JSON object the body holds (so a record line need not hold it twice)."""
    data, body = call.data, call.body
    if not data or call.data_truncated or (body[:1] != b"{" and body.lstrip()[:1] != b"{"):
        return False
    try:
        return bool(orjson.loads(body) == data)
    except orjson.JSONDecodeError:
        return False


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


def load_journal(path: Path, keep: int | None = None, skipped: list[str] | None = None) -> tuple[list[Call], int]:
    """The calls of a record file (or of every `*.jsonl` in a folder, in name order), updates folded in.

    Returns (calls, dropped): with `keep`, only the newest `keep` calls are returned and the others
    counted as dropped, so loading a huge recording never holds more than the journal would. Seqs are
    kept; where files from several runs restart at 1, later calls are renumbered to keep the order.

    A line that is not a call record (torn by a crash or a full disk, edited by hand, hostile) is
    skipped with a warning, never a reason to refuse the whole recording; each is described in
    `skipped` when given. A record glued onto a torn line (what older versions left after ENOSPC) is
    recovered.
    """
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
    elif path.is_file():
        files = [path]
    else:
        raise RecordingError(f"{path}: no such file or folder to replay")
    calls: dict[str, Call] = {}
    dropped = 0

    def skip(where: str, why: str) -> None:
        log.warning("%s: skipping a line that is not a call record: %s", where, why)
        if skipped is not None:
            skipped.append(f"{where}: {why}")

    for file in files:
        with file.open("rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{file}:{lineno}"
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    record = _unglue(line)
                    if not line.endswith(b"\n") and record is None:
                        # A line cut by a crash mid-write: that call was never acknowledged.
                        log.warning("%s: ignoring a torn last line", where)
                        continue
                    if record is None:
                        skip(where, f"not valid JSON ({exc})")
                        continue
                    skip(where, "a torn line, the record glued after it kept")
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
                    skip(where, f"not a mockhub call record: {exc!r}")
                    continue
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


_RECORD_STARTS = (b'{"id":', b'{"update":')


def _unglue(line: bytes) -> Any:
    """The record at the end of a line that starts with a torn one, or None."""
    for marker in _RECORD_STARTS:
        at = line.find(marker, 1)
        while at > 0:
            try:
                return orjson.loads(line[at:])
            except orjson.JSONDecodeError:
                at = line.find(marker, at + 1)
    return None


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


async def jsonl_chunks(batches: AsyncIterable[list[Call]] | list[Call], batch: int = 500) -> AsyncIterator[bytes]:
    """The calls as JSON Lines, a chunk per batch (bodies always inline: an export stands alone)."""
    if isinstance(batches, list):
        calls = batches
        for start in range(0, len(calls), batch):
            yield b"".join(orjson.dumps(c.to_api()) + b"\n" for c in calls[start : start + batch])
        return
    async for calls in batches:
        yield b"".join(orjson.dumps(c.to_api()) + b"\n" for c in calls)


# -- wiring -----------------------------------------------------------------------------------------


def attach(
    settings: Settings,
    journal: Journal,
    rules: RuleBook,
    services: Collection[str],
    skipped: list[str] | None = None,
) -> JsonlSink | None:
    """At start: load stub files, replay a recording, then start recording. Raises `RecordingError`.

    Lines of the replayed recording that were skipped are described in `skipped`.
    """
    if settings.stubs is not None:
        specs = load_rule_files(settings.stubs, services)
        try:
            for spec in specs:
                if isinstance(spec, StubSpec):
                    rules.add_stub(spec)
                elif isinstance(spec, LimitSpec):
                    try:
                        rules.add_limit(spec)
                    except ValueError as exc:  # a key or option that service does not have
                        raise RecordingError(
                            f"{settings.stubs}: invalid limit (service '{spec.service}'): {exc}"
                        ) from None
                else:
                    rules.add_fault(spec)
        except TooManyRules as exc:
            raise RecordingError(f"{settings.stubs}: {len(specs)} stubs, faults and limits: {exc}") from None
        log.info("loaded %d stubs, faults and limits from %s", len(specs), settings.stubs)
    if settings.replay is not None:
        calls, dropped = load_journal(settings.replay, keep=journal.max_calls, skipped=skipped)
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
