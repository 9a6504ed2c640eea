"""The rule commands of `mockhub`: `fault add|list|clear`, `stub add|list|clear` and `limit add|list|clear`.

The flags of `fault add` / `stub add` are generated, one per row of the tables below: a row names an
option of the client's `fault(...)` / `stub(...)` (`FaultOptions` / `StubOptions`) and gives its help;
the flag's type comes from the options type and its default from the rule model (`FaultSpec`,
`StubSpec`), so a new option is a new row, not a new parameter spelled out here.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import typer
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from mockhub.cli_client import AsJson, Namespace, Service, Url, _fail, _hub, _print_json, _say, _table, _talking_to
from mockhub.client.options import FaultOptions, LimitOptions, StubOptions
from mockhub.limits import LimitSpec
from mockhub.rules import FaultSpec, Match, StubSpec

if TYPE_CHECKING:
    from mockhub.limits import Limit
    from mockhub.rules import Fault, Stub

__all__ = ["fault_app", "limit_app", "stub_app"]

fault_app = typer.Typer(help="Add, list and clear fault rules.", no_args_is_help=True)
stub_app = typer.Typer(help="Add, list and clear stubs (scripted replies).", no_args_is_help=True)
limit_app = typer.Typer(help="Add, list and clear rate limits.", no_args_is_help=True)


@dataclass(frozen=True)
class Flag:
    """One generated flag: its help, and its name when not `--{option-with-dashes}`."""

    help: str
    name: str | None = None


MATCH_FLAGS = {
    "method": Flag("match: HTTP method"),
    "path": Flag("match: path or glob"),
    "host": Flag("match: host or glob (api.twilio.com, *.slack.com)"),
    "contains": Flag("match: substring of the body"),
    "regex": Flag("match: regular expression searched in the body"),
    "to": Flag("match: a recipient"),
    "subject": Flag("match: email subject substring"),
}
FAULT_FLAGS = {
    "preset": Flag("the provider's own error shape"),
    "action": Flag("what the fault does"),
    "status": Flag("HTTP status of an error"),
    "body": Flag("error body (JSON is sent as JSON)"),
    "delay_ms": Flag("delay / timeout length in ms"),
    "jitter_ms": Flag("up to this many ms added to a delay at random"),
    "times": Flag("how many matching calls fail"),
    "after": Flag("let this many matching calls through first"),
    "probability": Flag("fail each matching call with this chance"),
    "after_chunks": Flag("cut_stream: chunks sent before the cut"),
    "stage": Flag("smtp: the stage that fails"),
    "code": Flag("smtp_reply: the SMTP code, e.g. 451"),
    "message": Flag("smtp_reply: the text"),
    "seed": Flag("seed of the `probability` draws (default: the server's MOCKHUB_SEED)"),
    **MATCH_FLAGS,
}
STUB_FLAGS = {
    "content": Flag("LLM reply text"),
    "status": Flag("raw HTTP answer: status"),
    "json": Flag("raw HTTP answer: JSON body", "--response-json"),
    "body": Flag("raw HTTP answer: text body"),
    "times": Flag("answer this many calls (default: until cleared)"),
    "chunk_delay_ms": Flag("pace of streamed LLM replies"),
    **MATCH_FLAGS,
}
LIMIT_FLAGS = {
    "key": Flag("count per value of this key of a call (api_key, to, channel, from, model, namespace)"),
    "requests": Flag("calls allowed per period"),
    "tokens": Flag("LLM tokens allowed per period"),
    "per": Flag("the period: 1s, 1m, 1h, 1d"),
    "stage": Flag("smtp: the stage counted (default mail)"),
    "code": Flag("smtp: the reply code beyond the limit (421 or 451)"),
    **MATCH_FLAGS,
}

Headers = Annotated[list[str] | None, typer.Option("--header", help="'Name: value' (repeatable)")]
MatchNamespace = Annotated[str | None, typer.Option("--namespace", "-n", help="match: only this namespace")]
Spec = Annotated[
    str | None, typer.Option("--spec", help="the whole rule as JSON, or @file.json / @file.yaml (other flags ignored)")
]
Forever = Annotated[bool, typer.Option("--forever", help="fail every matching call until cleared")]


def _plain(hint: Any) -> tuple[type, str]:
    """The flag's type (int, float or str; anything else is given as JSON text) and a note on its values."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else hint
    if typing.get_origin(hint) is Literal:
        return str, "one of " + ", ".join(map(str, typing.get_args(hint)))
    if hint in (int, float, str):
        return cast(type, hint), ""
    return str, "JSON"


def _default(model: type[BaseModel], name: str) -> Any:
    field = model.model_fields.get(name) or Match.model_fields.get(name)
    if field is None or field.default is PydanticUndefined or field.default is None:
        return None
    return field.default


def _generated(options: type, model: type[BaseModel], flags: dict[str, Flag]) -> list[inspect.Parameter]:
    hints = typing.get_type_hints(options)
    params = []
    for name, flag in flags.items():
        kind, note = _plain(hints[name])
        default = _default(model, name)
        notes = [
            n for n in (note if note not in flag.help else "", "" if default is None else f"default {default}") if n
        ]
        text = flag.help + (f" ({'; '.join(notes)})" if notes else "")
        option = typer.Option(None, flag.name or "--" + name.replace("_", "-"), help=text, show_default=False)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind | None))
    return params


def _options(given: dict[str, Any], options: type, flags: dict[str, Flag]) -> dict[str, Any]:
    """The flags given (not None), with JSON-typed ones parsed: `--body` falls back to text, others must parse."""
    hints = typing.get_type_hints(options)
    out: dict[str, Any] = {}
    for name, flag in flags.items():
        value = given.get(name)
        if value is None:
            continue
        if _plain(hints[name])[1] == "JSON":
            try:
                value = json.loads(value)
            except ValueError as exc:
                if name != "body":
                    _fail(f"{flag.name or '--' + name} is not valid JSON: {exc}", 2)
        out[name] = value
    return out


def _command(
    run: Callable[..., None], doc: str, options: type, model: type[BaseModel], flags: dict[str, Flag], **fixed: Any
) -> Callable[..., None]:
    """`run` with a signature typer reads: the fixed parameters, then one flag per table row."""
    kw = inspect.Parameter.KEYWORD_ONLY
    head = [inspect.Parameter("url", kw, default=None, annotation=Url)]
    head.append(inspect.Parameter("service", kw, default=None, annotation=Service))
    tail = [inspect.Parameter(name, kw, default=d, annotation=a) for name, (a, d) in fixed.items()]
    run.__signature__ = inspect.Signature(head + _generated(options, model, flags) + tail)  # type: ignore[attr-defined]
    run.__doc__ = doc
    return run


def _load_spec(spec: str) -> dict[str, Any]:
    """`--spec '{...}'` or `--spec @rule.json` / `@rule.yaml`."""
    text = spec
    if spec.startswith("@"):
        source = Path(spec[1:])
        try:
            text = source.read_text()
        except OSError as exc:
            _fail(f"cannot read {source}: {exc}", 2)
        if source.suffix in (".yaml", ".yml"):
            import yaml

            loaded = yaml.safe_load(text)
            if not isinstance(loaded, dict):
                _fail(f"{source} must hold one rule (a mapping)", 2)
            return loaded
    try:
        loaded = json.loads(text)
    except ValueError as exc:
        _fail(f"--spec is not valid JSON: {exc}", 2)
    if not isinstance(loaded, dict):
        _fail("--spec must be a JSON object", 2)
    return loaded


def _headers(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    out = {}
    for item in values:
        name, sep, value = item.partition(":")
        if not sep:
            _fail(f"--header must look like 'Name: value', not {item!r}", 2)
        out[name.strip()] = value.strip()
    return out


def _show_rule(rule: Fault | Stub | Limit, kind: str) -> None:
    _print_json(rule.model_dump(mode="json", by_alias=True, exclude_defaults=True) | {"id": rule.id})
    _say(f"added {kind} {rule.id}", "green")


def _match_text(rule: Fault | Stub | Limit) -> str:
    fields = rule.match.model_dump(exclude_none=True)
    return " ".join(f"{k}={v}" for k, v in fields.items()) or "*"


def _fault_add(
    *, url: str | None, service: str | None, header: list[str] | None, forever: bool, namespace: str | None,
    spec: str | None, **given: Any,
) -> None:  # fmt: skip
    options = _options(given, FaultOptions, FAULT_FLAGS)
    if (headers := _headers(header)) is not None:
        options["headers"] = headers
    if forever:
        options["times"] = None
    with _talking_to(url), _hub(url, namespace) as hub:
        if spec is not None:
            rule: Fault = hub.add_fault(FaultSpec.model_validate(_load_spec(spec)))
        else:
            rule = hub.fault(service, **cast(FaultOptions, options))
    _show_rule(rule, "fault")


def _stub_add(
    *, url: str | None, service: str | None, header: list[str] | None, namespace: str | None, spec: str | None,
    **given: Any,
) -> None:  # fmt: skip
    options = _options(given, StubOptions, STUB_FLAGS)
    if (headers := _headers(header)) is not None:
        options["headers"] = headers
    with _talking_to(url), _hub(url, namespace) as hub:
        if spec is not None:
            rule: Stub = hub.add_stub(StubSpec.model_validate(_load_spec(spec)))
        else:
            try:
                rule = hub.stub(service, **cast(StubOptions, options))
            except ValueError as exc:
                if type(exc) is not ValueError:
                    raise
                _fail(str(exc), 2)
    _show_rule(rule, "stub")


def _limit_add(*, url: str | None, service: str | None, namespace: str | None, spec: str | None, **given: Any) -> None:
    options = _options(given, LimitOptions, LIMIT_FLAGS)
    with _talking_to(url), _hub(url, namespace) as hub:
        if spec is not None:
            rule: Limit = hub.add_limit(LimitSpec.model_validate(_load_spec(spec)))
        else:
            rule = hub.limit(service, **cast(LimitOptions, options))
    _show_rule(rule, "limit")


_rule_tail = {"header": (Headers, None), "namespace": (MatchNamespace, None), "spec": (Spec, None)}
_FAULT_DOC = "Add a fault rule; prints it (JSON) on stdout."
_STUB_DOC = "Add a stub (a scripted reply); prints it (JSON) on stdout."
fault_add = _command(
    _fault_add, _FAULT_DOC, FaultOptions, FaultSpec, FAULT_FLAGS, forever=(Forever, False), **_rule_tail
)
stub_add = _command(_stub_add, _STUB_DOC, StubOptions, StubSpec, STUB_FLAGS, **_rule_tail)
fault_app.command("add")(fault_add)
stub_app.command("add")(stub_add)
_LIMIT_DOC = "Add a rate limit; prints it (JSON) on stdout."
limit_add = _command(
    _limit_add, _LIMIT_DOC, LimitOptions, LimitSpec, LIMIT_FLAGS, namespace=(MatchNamespace, None), spec=(Spec, None)
)
limit_app.command("add")(limit_add)


@limit_app.command("list")
def limit_list(url: Url = None, namespace: Namespace = None, as_json: AsJson = False) -> None:
    """List rate limits with how many calls each let through and refused."""
    with _talking_to(url), _hub(url, namespace) as hub:
        rules = hub.limits()
    if as_json:
        _print_json([r.model_dump(mode="json", by_alias=True) for r in rules])
        return

    def rate(r: Limit) -> str:
        parts = [f"{r.requests} req" if r.requests is not None else "", f"{r.tokens} tok" if r.tokens else ""]
        return f"{' + '.join(p for p in parts if p)} / {r.per}"

    rows = [
        [r.id, r.service or "*", rate(r), r.key or "-", str(r.passed), str(r.limited), _match_text(r)] for r in rules
    ]
    headings = ["ID", "SERVICE", "LIMIT", "KEY", "PASSED", "LIMITED", "MATCH"]
    _table(headings, rows, ["dim", "cyan", "yellow", None, None, None, None])
    _say(f"{len(rules)} limit(s)", "dim")


@limit_app.command("clear")
def limit_clear(
    ids: Annotated[list[str] | None, typer.Argument(help="limit ids; none = every limit (of --namespace)")] = None,
    url: Url = None,
    namespace: Namespace = None,
) -> None:
    """Delete rate limits: the ones named, or all."""
    _clear(url, namespace, ids, "limit")


@fault_app.command("list")
def fault_list(url: Url = None, namespace: Namespace = None, as_json: AsJson = False) -> None:
    """List fault rules with how often each fired."""
    with _talking_to(url), _hub(url, namespace) as hub:
        rules = hub.faults()
    if as_json:
        _print_json([r.model_dump(mode="json", by_alias=True) for r in rules])
        return
    rows = [
        [
            r.id,
            r.service or "*",
            r.action if r.preset is None else f"{r.action}:{r.preset}",
            "∞" if r.remaining is None else str(r.remaining),
            str(r.fired),
            _match_text(r),
        ]
        for r in rules
    ]
    _table(["ID", "SERVICE", "ACTION", "LEFT", "FIRED", "MATCH"], rows, ["dim", "cyan", "yellow", None, None, None])
    _say(f"{len(rules)} fault rule(s)", "dim")


@fault_app.command("clear")
def fault_clear(
    ids: Annotated[list[str] | None, typer.Argument(help="rule ids; none = every rule (of --namespace)")] = None,
    url: Url = None,
    namespace: Namespace = None,
) -> None:
    """Delete fault rules: the ones named, or all."""
    _clear(url, namespace, ids, "fault")


@stub_app.command("list")
def stub_list(url: Url = None, namespace: Namespace = None, as_json: AsJson = False) -> None:
    """List stubs with how often each answered."""
    with _talking_to(url), _hub(url, namespace) as hub:
        rules = hub.stubs()
    if as_json:
        _print_json([r.model_dump(mode="json", by_alias=True) for r in rules])
        return

    def answer(r: Stub) -> str:
        if r.response is not None:
            return f"HTTP {r.response.status}"
        if r.sequence is not None:
            return f"sequence of {len(r.sequence)}"
        assert r.reply is not None
        return r.reply.content or f"{len(r.reply.tool_calls)} tool call(s)"

    rows = [[r.id, r.service or "*", answer(r), str(r.hits), _match_text(r)] for r in rules]
    _table(["ID", "SERVICE", "ANSWER", "HITS", "MATCH"], rows, ["dim", "cyan", None, None, None])
    _say(f"{len(rules)} stub(s)", "dim")


@stub_app.command("clear")
def stub_clear(
    ids: Annotated[list[str] | None, typer.Argument(help="stub ids; none = every stub (of --namespace)")] = None,
    url: Url = None,
    namespace: Namespace = None,
) -> None:
    """Delete stubs: the ones named, or all."""
    _clear(url, namespace, ids, "stub")


def _clear(url: str | None, namespace: str | None, ids: list[str] | None, kind: str) -> None:
    with _talking_to(url), _hub(url, namespace) as hub:
        delete: Callable[[str], bool] = {"fault": hub.delete_fault, "stub": hub.delete_stub}.get(kind, hub.delete_limit)
        if ids:
            for rule_id in ids:
                delete(rule_id)
            deleted = len(ids)
        else:
            clear = {"fault": hub.clear_faults, "stub": hub.clear_stubs}.get(kind, hub.clear_limits)
            deleted = clear()
    _say(f"deleted {deleted} {kind}(s)", "green")
