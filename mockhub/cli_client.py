"""The client commands of `mockhub`: calls, tail, fault, stub, reset, export, env, health.

They talk to a running server at `--url` / `MOCKHUB_URL` (default http://127.0.0.1:8080, or
`MOCKHUB_HTTP_PORT` on 127.0.0.1: what a container HEALTHCHECK wants). Data goes to stdout,
messages to stderr; colour only on a terminal, never with `NO_COLOR`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn, TextIO

import typer

if TYPE_CHECKING:
    from mockhub.client import Call, CallFilters, MockHub
    from mockhub.rules import Fault, Stub

__all__ = ["register"]

# -- options shared by several commands ---------------------------------------------------------------------

Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="mockhub's address (env MOCKHUB_URL; default http://127.0.0.1:$MOCKHUB_HTTP_PORT, port 8080).",
        show_default=False,
    ),
]
Service = Annotated[str | None, typer.Option("--service", "-s", help="journal name: smtp, slack, webhook...")]
Namespace = Annotated[str | None, typer.Option("--namespace", "-n", help="only this namespace")]
Method = Annotated[str | None, typer.Option("--method", help="HTTP method (DATA for smtp)")]
PathGlob = Annotated[str | None, typer.Option("--path", help="path or glob, e.g. '/services/*'")]
Direction = Annotated[str | None, typer.Option("--direction", help="inbound or outbound")]
Contains = Annotated[str | None, typer.Option("--contains", help="substring of the body / decoded email text")]
To = Annotated[str | None, typer.Option("--to", help="any recipient: email, phone number, Slack channel")]
Subject = Annotated[str | None, typer.Option("--subject", help="substring of an email's subject")]
After = Annotated[int | None, typer.Option("--after", help="only calls with a greater seq")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def _url(url: str | None) -> str:
    if url:
        return url.rstrip("/")
    if os.environ.get("MOCKHUB_URL"):
        return os.environ["MOCKHUB_URL"].rstrip("/")
    # 127.0.0.1, not localhost: in a container localhost may resolve to ::1 while mockhub listens on IPv4.
    return f"http://127.0.0.1:{os.environ.get('MOCKHUB_HTTP_PORT') or 8080}"


def _hub(url: str | None, namespace: str | None = None, timeout: float = 10.0) -> MockHub:
    from mockhub.client import MockHub

    return MockHub(_url(url), namespace=namespace, timeout=timeout)


def _filters(
    namespace: str | None,
    method: str | None,
    path: str | None,
    direction: str | None,
    contains: str | None,
    to: str | None,
    subject: str | None,
    after: int | None,
) -> CallFilters:
    given: dict[str, Any] = {
        "namespace": namespace,
        "method": method,
        "path": path,
        "direction": direction,
        "contains": contains,
        "to": to,
        "subject": subject,
        "after": after,
    }
    return {k: v for k, v in given.items() if v is not None}  # type: ignore[return-value]


# -- output --------------------------------------------------------------------------------------------------


def _use_color(stream: TextIO) -> bool:
    """NO_COLOR (any value) wins; FORCE_COLOR forces; otherwise only on a terminal."""
    if os.environ.get("NO_COLOR", "") != "":
        return False
    if os.environ.get("FORCE_COLOR", "") != "":
        return True
    return stream.isatty() and os.environ.get("TERM") != "dumb"


_STYLES = {"dim": "2", "bold": "1", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}


def _paint(text: str, style: str, stream: TextIO | None = None) -> str:
    if not _use_color(stream or sys.stdout):
        return text
    return f"\x1b[{_STYLES[style]}m{text}\x1b[0m"


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _say(text: str, style: str | None = None) -> None:
    """A message (not data): stderr."""
    sys.stderr.write((_paint(text, style, sys.stderr) if style else text) + "\n")
    sys.stderr.flush()


def _fail(text: str, code: int = 1) -> NoReturn:
    _say(f"mockhub: {text}", "red")
    raise typer.Exit(code)


def _print_json(value: Any) -> None:
    _out(json.dumps(value, indent=2, ensure_ascii=False))


def _table(headers: list[str], rows: list[list[str]], styles: list[str | None] | None = None) -> None:
    """A plain aligned table; on a terminal, the last column takes what is left of its width.

    Piped output (`mockhub calls | grep ...`) is never cut.
    """
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    if sys.stdout.isatty():
        room = shutil.get_terminal_size((160, 24)).columns - sum(widths[:-1]) - 2 * (len(widths) - 1)
        widths[-1] = max(min(widths[-1], room), len(headers[-1]), 10)

    def line(cells: list[str], painted: bool) -> str:
        out = []
        for i, cell in enumerate(cells):
            if len(cell) > widths[i]:
                cell = cell[: widths[i] - 1] + "…"
            text = cell.ljust(widths[i]) if i < len(cells) - 1 else cell
            style = styles[i] if styles and painted else None
            out.append(_paint(text, style) if style else text)
        return "  ".join(out)

    _out(_paint(line(headers, False), "bold"))
    for row in rows:
        _out(line(row, True))


def _call_row(call: Call) -> list[str]:
    from mockhub.client import call_text

    status = "--" if call.status is None else str(call.status)
    if call.fault is not None:
        status += f" !{call.fault.preset or call.fault.action}"
    return [
        str(call.seq),
        call.time.strftime("%H:%M:%S.%f")[:-3],
        call.service,
        call.namespace,
        call.method,
        call.path,
        status,
        call_text(call).replace("\n", " "),
    ]


_CALL_HEADERS = ["SEQ", "TIME", "SERVICE", "NAMESPACE", "METHOD", "PATH", "STATUS", "SUMMARY"]
_CALL_STYLES: list[str | None] = ["dim", "dim", "cyan", "dim", None, None, "yellow", None]


# -- error handling ------------------------------------------------------------------------------------------


@contextmanager
def _talking_to(url: str | None) -> Iterator[None]:
    """Turn the ways a request can fail into one line on stderr and exit code 1 (2 for bad input)."""
    import httpx
    from pydantic import ValidationError

    from mockhub.client import MockHubError

    try:
        yield
    except httpx.TransportError as exc:
        reason = str(exc) or type(exc).__name__
        _fail(f"cannot reach mockhub at {_url(url)}: {reason}")
    except MockHubError as exc:
        _fail(f"{exc.status} {exc.code}: {exc.message}")
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors())
        _fail(f"invalid rule: {problems}", 2)


# -- commands ------------------------------------------------------------------------------------------------


def calls(
    url: Url = None,
    service: Service = None,
    namespace: Namespace = None,
    method: Method = None,
    path: PathGlob = None,
    direction: Direction = None,
    contains: Contains = None,
    to: To = None,
    subject: Subject = None,
    after: After = None,
    limit: Annotated[int | None, typer.Option("--limit", help="at most this many calls")] = None,
    newest_first: Annotated[bool, typer.Option("--newest-first", help="newest first (default oldest first)")] = False,
    wait: Annotated[
        float | None, typer.Option("--wait", help="wait up to SECONDS for --min calls; exit 1 if they never come")
    ] = None,
    min_count: Annotated[int, typer.Option("--min", help="with --wait: how many calls to wait for")] = 1,
    as_json: AsJson = False,
) -> None:
    """List recorded calls (a table, or --json)."""
    filters = _filters(namespace, method, path, direction, contains, to, subject, after)
    with _talking_to(url), _hub(url) as hub:
        if wait is not None:
            try:
                hub.wait_for(service, count=min_count, timeout=wait, **filters)
            except AssertionError as exc:
                _say(str(exc))
                raise typer.Exit(1) from None
        found = hub.calls(service, limit=limit, order="desc" if newest_first else "asc", **filters)
    if as_json:
        _print_json({"calls": [c.model_dump(mode="json") for c in found], "count": len(found)})
        return
    _table(_CALL_HEADERS, [_call_row(c) for c in found], _CALL_STYLES)
    _say(f"{len(found)} call(s)", "dim")


def tail(
    url: Url = None,
    service: Service = None,
    namespace: Namespace = None,
    method: Method = None,
    path: PathGlob = None,
    direction: Direction = None,
    contains: Contains = None,
    to: To = None,
    subject: Subject = None,
    after: Annotated[
        int | None, typer.Option("--after", help="first replay the calls after this seq (0: all in memory)")
    ] = None,
    count: Annotated[int | None, typer.Option("--count", help="exit after this many calls")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line (JSON Lines)")] = False,
) -> None:
    """Follow new calls live (Server-Sent Events) until Ctrl-C."""
    filters = _filters(namespace, method, path, direction, contains, to, subject, after)
    seen = 0
    with _talking_to(url), _hub(url) as hub:
        if not as_json:
            _say(f"following calls at {hub.url} (Ctrl-C to stop)", "dim")
        try:
            for call in hub.stream(service, **filters):
                if as_json:
                    _out(call.model_dump_json())
                else:
                    row = _call_row(call)
                    _out("  ".join([_paint(row[1], "dim"), _paint(row[2], "cyan"), *row[3:7], row[7][:200]]))
                seen += 1
                if count is not None and seen >= count:
                    return
        except KeyboardInterrupt:
            return


def reset(url: Url = None, namespace: Namespace = None) -> None:
    """Forget calls, faults and stubs (only a namespace's with --namespace)."""
    with _talking_to(url), _hub(url, namespace) as hub:
        done = hub.reset()
    scope = f" in namespace {namespace}" if namespace else ""
    _say(f"forgot {done.calls} call(s), {done.faults} fault(s), {done.stubs} stub(s){scope}", "green")


def export(
    url: Url = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl or har (HTTP calls only)")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write here instead of stdout")] = None,
    service: Service = None,
    namespace: Namespace = None,
    method: Method = None,
    path: PathGlob = None,
    direction: Direction = None,
    contains: Contains = None,
    to: To = None,
    subject: Subject = None,
    after: After = None,
) -> None:
    """Write the journal as JSON Lines or HAR (opens in a browser's network panel)."""
    if fmt not in ("jsonl", "har"):
        _fail(f"--format must be jsonl or har, not {fmt!r}", 2)
    kind: Literal["jsonl", "har"] = "har" if fmt == "har" else "jsonl"
    filters = _filters(namespace, method, path, direction, contains, to, subject, after)
    written = 0
    with _talking_to(url), _hub(url) as hub:
        chunks = hub.export(kind, service, **filters)
        if output is None:
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
                written += len(chunk)
            sys.stdout.buffer.flush()
        else:
            with output.open("wb") as fh:
                for chunk in chunks:
                    fh.write(chunk)
                    written += len(chunk)
            _say(f"wrote {written} bytes to {output}", "green")


_DOTENV_SPECIAL = frozenset(" #\"$'\\")


def env(
    url: Url = None,
    namespace: Namespace = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="shell (export lines), dotenv or json")] = "shell",
) -> None:
    """Print the settings that point an application at this mockhub (`eval "$(mockhub env)"`)."""
    if fmt not in ("shell", "dotenv", "json"):
        _fail(f"--format must be shell, dotenv or json, not {fmt!r}", 2)
    with _talking_to(url), _hub(url, namespace) as hub:
        values = hub.env()
    if fmt == "json":
        _print_json(values)
    elif fmt == "dotenv":
        for key, value in values.items():
            quoted = json.dumps(value) if any(c in value for c in _DOTENV_SPECIAL) else value
            _out(f"{key}={quoted}")
    else:
        for key, value in values.items():
            _out(f"export {key}={shlex.quote(value)}")


def health(
    url: Url = None,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds to wait for an answer")] = 3.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the /health answer")] = False,
) -> None:
    """Exit 0 when mockhub answers that every listener is ready, 1 otherwise (a container HEALTHCHECK)."""
    import httpx

    target = _url(url)
    try:
        response = httpx.get(f"{target}/health", timeout=timeout, trust_env=False)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach mockhub at {target}: {exc or type(exc).__name__}")
    try:
        body = response.json()
    except ValueError:
        _fail(f"{target}/health did not answer JSON (status {response.status_code})")
    if as_json:
        _print_json(body)
    status = body.get("status") if isinstance(body, dict) else None
    if response.status_code != 200 or status != "ok":
        _fail(f"not ready: HTTP {response.status_code}, status {status!r}")
    if not as_json:
        ports = ", ".join(f"{k.removesuffix('_port')} {v}" for k, v in body.items() if k.endswith("_port") and v)
        _out(f"ok: mockhub {body.get('version')} ({ports}), {body.get('calls', 0)} call(s)")


# -- fault and stub rules ---------------------------------------------------------------------------------------

fault_app = typer.Typer(help="Add, list and clear fault rules.", no_args_is_help=True)
stub_app = typer.Typer(help="Add, list and clear stubs (scripted replies).", no_args_is_help=True)


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


def _maybe_json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _show_rule(rule: Fault | Stub, kind: str) -> None:
    _print_json(rule.model_dump(mode="json", by_alias=True, exclude_defaults=True) | {"id": rule.id})
    _say(f"added {kind} {rule.id}", "green")


def _match_text(rule: Fault | Stub) -> str:
    fields = rule.match.model_dump(exclude_none=True)
    return " ".join(f"{k}={v}" for k, v in fields.items()) or "*"


MatchPath = Annotated[str | None, typer.Option("--path", help="match: path or glob")]
MatchContains = Annotated[str | None, typer.Option("--contains", help="match: substring of the body")]
MatchTo = Annotated[str | None, typer.Option("--to", help="match: a recipient")]
MatchMethod = Annotated[str | None, typer.Option("--method", help="match: HTTP method")]
MatchSubject = Annotated[str | None, typer.Option("--subject", help="match: email subject substring")]
MatchNamespace = Annotated[str | None, typer.Option("--namespace", "-n", help="match: only this namespace")]
Spec = Annotated[
    str | None, typer.Option("--spec", help="the whole rule as JSON, or @file.json / @file.yaml (other flags ignored)")
]
Headers = Annotated[list[str] | None, typer.Option("--header", help="'Name: value' (repeatable)")]


@fault_app.command("add")
def fault_add(
    url: Url = None,
    service: Service = None,
    preset: Annotated[
        str | None,
        typer.Option(help="rate_limited, server_error, unavailable, overloaded, unauthorized (provider's shape)"),
    ] = None,
    action: Annotated[
        str,
        typer.Option(help="error, delay, timeout, reset, empty, malformed, cut_stream, smtp_reply, disconnect"),
    ] = "error",
    status: Annotated[int | None, typer.Option(help="HTTP status of an error")] = None,
    body: Annotated[str | None, typer.Option(help="error body (JSON is sent as JSON)")] = None,
    header: Headers = None,
    delay_ms: Annotated[int | None, typer.Option(help="delay / timeout length in ms")] = None,
    times: Annotated[int, typer.Option(help="how many matching calls fail")] = 1,
    forever: Annotated[bool, typer.Option("--forever", help="fail every matching call until cleared")] = False,
    after: Annotated[int, typer.Option(help="let this many matching calls through first")] = 0,
    probability: Annotated[float, typer.Option(help="fail each matching call with this chance")] = 1.0,
    after_chunks: Annotated[int, typer.Option(help="cut_stream: chunks sent before the cut")] = 0,
    stage: Annotated[str | None, typer.Option(help="smtp: connect, ehlo, auth, mail, rcpt, data")] = None,
    code: Annotated[int | None, typer.Option(help="smtp_reply: the SMTP code, e.g. 451")] = None,
    message: Annotated[str | None, typer.Option(help="smtp_reply: the text")] = None,
    method: MatchMethod = None,
    path: MatchPath = None,
    contains: MatchContains = None,
    to: MatchTo = None,
    subject: MatchSubject = None,
    namespace: MatchNamespace = None,
    spec: Spec = None,
) -> None:
    """Add a fault rule; prints it (JSON) on stdout."""
    from mockhub.rules import FaultSpec

    with _talking_to(url), _hub(url, namespace) as hub:
        if spec is not None:
            rule: Fault = hub.add_fault(FaultSpec.model_validate(_load_spec(spec)))
        else:
            rule = hub.fault(
                service, preset=preset, action=action, status=status, body=_maybe_json(body),  # type: ignore[arg-type]
                headers=_headers(header), delay_ms=delay_ms, times=None if forever else times, after=after,
                probability=probability, after_chunks=after_chunks, stage=stage, code=code,  # type: ignore[arg-type]
                message=message, method=method, path=path, contains=contains, to=to, subject=subject,
            )  # fmt: skip
    _show_rule(rule, "fault")


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


@stub_app.command("add")
def stub_add(
    url: Url = None,
    service: Service = None,
    content: Annotated[str | None, typer.Option(help="LLM reply text")] = None,
    status: Annotated[int | None, typer.Option(help="raw HTTP answer: status")] = None,
    response_json: Annotated[str | None, typer.Option("--response-json", help="raw HTTP answer: JSON body")] = None,
    body: Annotated[str | None, typer.Option(help="raw HTTP answer: text body")] = None,
    header: Headers = None,
    times: Annotated[int | None, typer.Option(help="answer this many calls (default: until cleared)")] = None,
    chunk_delay_ms: Annotated[int, typer.Option(help="pace of streamed LLM replies")] = 0,
    method: MatchMethod = None,
    path: MatchPath = None,
    contains: MatchContains = None,
    to: MatchTo = None,
    subject: MatchSubject = None,
    namespace: MatchNamespace = None,
    spec: Spec = None,
) -> None:
    """Add a stub (a scripted reply); prints it (JSON) on stdout."""
    from mockhub.rules import StubSpec

    json_body: Any = None
    if response_json is not None:
        try:
            json_body = json.loads(response_json)
        except ValueError as exc:
            _fail(f"--response-json is not valid JSON: {exc}", 2)
    with _talking_to(url), _hub(url, namespace) as hub:
        if spec is not None:
            rule: Stub = hub.add_stub(StubSpec.model_validate(_load_spec(spec)))
        else:
            try:
                rule = hub.stub(
                    service, content=content, status=status, json=json_body, body=body, headers=_headers(header),
                    times=times, chunk_delay_ms=chunk_delay_ms, method=method, path=path, contains=contains,
                    to=to, subject=subject,
                )  # fmt: skip
            except ValueError as exc:
                if type(exc) is not ValueError:
                    raise
                _fail(str(exc), 2)
    _show_rule(rule, "stub")


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
        delete: Callable[[str], bool] = hub.delete_fault if kind == "fault" else hub.delete_stub
        if ids:
            for rule_id in ids:
                delete(rule_id)
            deleted = len(ids)
        else:
            deleted = hub.clear_faults() if kind == "fault" else hub.clear_stubs()
    _say(f"deleted {deleted} {kind}(s)", "green")


def register(app: typer.Typer) -> None:
    """Add the client commands to the `mockhub` command."""
    app.command("calls")(calls)
    app.command("tail")(tail)
    app.add_typer(fault_app, name="fault")
    app.add_typer(stub_app, name="stub")
    app.command("reset")(reset)
    app.command("export")(export)
    app.command("env")(env)
    app.command("health")(health)
