"""Stub and fault files (`MOCKHUB_STUBS`, SPEC section 8): JSON or YAML, checked whole at start.

They are rules, not recordings: they share only `RecordingError` with `mockhub.recording`, which re-exports
both names. PyYAML is imported only when a YAML file is read.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from mockhub.rules import FaultSpec, StubSpec, reply_field_problems

__all__ = ["RecordingError", "load_rule_files"]


# Defined here, the lowest module that raises it; `mockhub.recording` re-exports it.
class RecordingError(Exception):
    """A record, replay or stub file that cannot be used; the message names the file and the entry."""


# A stub of LLM timing alone (`ttft_ms`, `tokens_per_s`) answers the default reply, paced.
_STUB_KEYS = frozenset({"reply", "response", "sequence", "ttft_ms", "tokens_per_s"})
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
                f"{file}: entry {i}: cannot tell a stub from a fault: a stub has 'reply', 'response', "
                "'sequence' (or LLM timing alone: 'ttft_ms', 'tokens_per_s'); a fault has 'action' or 'preset' "
                "(or use the 'stubs:' / 'faults:' form)"
            )
    return found


def _reply_problems(fields: dict[str, Any], services: Collection[str] | None) -> list[str]:
    return reply_field_problems(fields, services) if isinstance(services, Mapping) else []


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
