"""The client commands of `mockhub`: calls, tail, usage, reset, export, env, health (fault and stub: `cli_rules`).

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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn, TextIO

import typer

if TYPE_CHECKING:
    from mockhub.client import Call, CallFilters, MockHub
    from mockhub.usage import UsageTotals

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
HostGlob = Annotated[
    str | None, typer.Option("--host", help="host the call was going to, or a glob, e.g. '*.slack.com'")
]
Direction = Annotated[str | None, typer.Option("--direction", help="inbound or outbound")]
Contains = Annotated[str | None, typer.Option("--contains", help="substring of the body / decoded email text")]
To = Annotated[str | None, typer.Option("--to", help="any recipient: email, phone number, Slack channel")]
Subject = Annotated[str | None, typer.Option("--subject", help="substring of an email's subject")]
After = Annotated[int | None, typer.Option("--after", help="only calls with a greater seq")]
Has = Annotated[
    list[str] | None,
    typer.Option("--has", help="only messages carrying link, code or attachment (repeat, or a comma list)"),
]
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
    host: str | None,
    direction: str | None,
    contains: str | None,
    to: str | None,
    subject: str | None,
    after: int | None,
    has: list[str] | None = None,
) -> CallFilters:
    given: dict[str, Any] = {
        "namespace": namespace,
        "method": method,
        "path": path,
        "host": host,
        "direction": direction,
        "contains": contains,
        "to": to,
        "subject": subject,
        "after": after,
        "has": has or None,
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
    host: HostGlob = None,
    direction: Direction = None,
    contains: Contains = None,
    to: To = None,
    subject: Subject = None,
    after: After = None,
    has: Has = None,
    limit: Annotated[int | None, typer.Option("--limit", help="at most this many calls")] = None,
    newest_first: Annotated[bool, typer.Option("--newest-first", help="newest first (default oldest first)")] = False,
    wait: Annotated[
        float | None, typer.Option("--wait", help="wait up to SECONDS for --min calls; exit 1 if they never come")
    ] = None,
    min_count: Annotated[int, typer.Option("--min", help="with --wait: how many calls to wait for")] = 1,
    as_json: AsJson = False,
) -> None:
    """List recorded calls (a table, or --json)."""
    filters = _filters(namespace, method, path, host, direction, contains, to, subject, after, has)
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
    host: HostGlob = None,
    direction: Direction = None,
    contains: Contains = None,
    to: To = None,
    subject: Subject = None,
    after: Annotated[
        int | None, typer.Option("--after", help="first replay the calls after this seq (0: all in memory)")
    ] = None,
    has: Has = None,
    count: Annotated[int | None, typer.Option("--count", help="exit after this many calls")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line (JSON Lines)")] = False,
) -> None:
    """Follow new calls live (Server-Sent Events) until Ctrl-C."""
    filters = _filters(namespace, method, path, host, direction, contains, to, subject, after, has)
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


Wait = Annotated[float, typer.Option("--wait", help="wait up to SECONDS for a matching message (default: only look)")]


def code(
    url: Url = None,
    service: Service = None,
    namespace: Namespace = None,
    to: To = None,
    contains: Contains = None,
    subject: Subject = None,
    after: After = None,
    wait: Wait = 0.0,
) -> None:
    """Print the one-time code of the newest matching message (its first `data.codes`); exit 1 if none."""
    _print_found("code", url, service, _filters(namespace, None, None, None, None, contains, to, subject, after), wait)


def link(
    url: Url = None,
    service: Service = None,
    namespace: Namespace = None,
    to: To = None,
    contains: Annotated[str | None, typer.Option("--contains", help="only a link holding this substring")] = None,
    subject: Subject = None,
    after: After = None,
    wait: Wait = 0.0,
) -> None:
    """Print the first link (holding --contains) of the newest matching message; exit 1 if none."""
    _print_found("link", url, service, _filters(namespace, None, None, None, None, contains, to, subject, after), wait)


def _print_found(
    what: Literal["code", "link"], url: str | None, service: str | None, filters: Any, wait: float
) -> None:
    """`mockhub code` / `mockhub link`: the value alone on stdout, or what arrived instead and exit 1."""
    with _talking_to(url), _hub(url, timeout=wait + 10.0) as hub:
        find = hub.wait_for_code if what == "code" else hub.wait_for_link
        try:
            _out(find(service, timeout=wait, **filters))
        except AssertionError as exc:
            _say(str(exc))
            raise typer.Exit(1) from None


def usage(
    url: Url = None,
    service: Service = None,
    namespace: Namespace = None,
    model: Annotated[str | None, typer.Option("--model", help="only this model, or a glob: 'gpt-4o*'")] = None,
    after: After = None,
    as_json: AsJson = False,
) -> None:
    """LLM requests, tokens and estimated cost per service and model (GET /usage)."""
    filters = _filters(namespace, None, None, None, None, None, None, None, after)
    with _talking_to(url), _hub(url) as hub:
        found = hub.usage(service, model=model, **filters)
    if as_json:
        _print_json(found.model_dump(mode="json"))
        return
    headers = ["SERVICE", "MODEL", "REQUESTS", "INPUT", "OUTPUT", "TOTAL", "COST USD"]

    def counts(t: UsageTotals) -> list[str]:
        return [str(t.requests), str(t.input_tokens), str(t.output_tokens), str(t.total_tokens)]

    rows = [
        [r.service, r.model, *counts(r), f"{r.cost_usd:.6f}" if r.price is not None else "no price"]
        for r in found.models
    ]
    rows.append(["total", "", *counts(found), f"{found.cost_usd:.6f}"])
    _table(headers, rows)


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
    host: HostGlob = None,
    direction: Direction = None,
    contains: Contains = None,
    to: To = None,
    subject: Subject = None,
    after: After = None,
    has: Has = None,
) -> None:
    """Write the journal as JSON Lines or HAR (opens in a browser's network panel)."""
    if fmt not in ("jsonl", "har"):
        _fail(f"--format must be jsonl or har, not {fmt!r}", 2)
    kind: Literal["jsonl", "har"] = "har" if fmt == "har" else "jsonl"
    filters = _filters(namespace, method, path, host, direction, contains, to, subject, after, has)
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
    proxy: Annotated[
        bool,
        typer.Option(
            "--proxy",
            help="also HTTPS_PROXY / NO_PROXY and the CA files (written under $TMPDIR/mockhub-UID/), "
            "for applications that cannot change their base URLs",
        ),
    ] = False,
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="your project's variable names: NAME=SOURCE[,NAME=SOURCE...], SOURCE being service.key "
            "(twilio.account_sid, smtp.port, slack.slack_webhook), a variable mockhub sets, a {template} or =text",
        ),
    ] = None,
    map_file: Annotated[
        Path | None,
        typer.Option("--map-file", help='the same mapping in a TOML file: NAME = "SOURCE" lines (or an [env] table)'),
    ] = None,
) -> None:
    """Print the settings that point an application at this mockhub (`eval "$(mockhub env)"`)."""
    from mockhub.client.urls import EnvMapError

    if fmt not in ("shell", "dotenv", "json"):
        _fail(f"--format must be shell, dotenv or json, not {fmt!r}", 2)
    names = _env_mapping(mapping or [], map_file)
    with _talking_to(url), _hub(url, namespace) as hub:
        try:
            values = hub.env(proxy=proxy, mapping=names)
        except EnvMapError as exc:
            _fail(f"--map: {exc}", 2)
    if fmt == "json":
        _print_json(values)
    elif fmt == "dotenv":
        for key, value in values.items():
            quoted = json.dumps(value) if any(c in value for c in _DOTENV_SPECIAL) else value
            _out(f"{key}={quoted}")
    else:
        for key, value in values.items():
            _out(f"export {key}={shlex.quote(value)}")


def _env_mapping(entries: list[str], map_file: Path | None) -> dict[str, str]:
    """`--map-file` first, then `--map` entries (each may hold several, comma-separated) over it."""
    import tomllib

    names: dict[str, str] = {}
    if map_file is not None:
        try:
            table = tomllib.loads(map_file.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            _fail(f"--map-file {map_file}: {exc}", 2)
        table = table.get("env", table)
        for name, source in table.items():
            if not isinstance(source, str):
                _fail(f"--map-file {map_file}: {name} must be a string, not {source!r}", 2)
            names[name] = source
    for entry in entries:
        for item in (part.strip() for part in entry.split(",")):
            name, sep, source = item.partition("=")
            if not item:
                continue
            if not sep or not name.strip() or not source.strip():
                _fail(f"--map: {item!r} is not NAME=SOURCE", 2)
            names[name.strip()] = source.strip()
    return names


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


def _simulation_body(text: str | None, fields: list[str]) -> dict[str, Any]:
    """The event's body: `--json` (JSON text, `@file` or `-` for stdin), then each `--field KEY=VALUE`."""
    body: dict[str, Any] = {}
    if text is not None:
        if text == "-":
            text = sys.stdin.read()
        elif text.startswith("@"):
            try:
                text = Path(text[1:]).read_text(encoding="utf-8")
            except OSError as exc:
                _fail(f"--json: cannot read {text[1:]}: {exc.strerror or exc}", 2)
        try:
            given = json.loads(text)
        except ValueError as exc:
            _fail(f"--json is not JSON: {exc}", 2)
        if not isinstance(given, dict):
            _fail("--json must be a JSON object", 2)
        body.update(given)
    for item in fields:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--field wants KEY=VALUE, not {item!r}", 2)
        try:
            body[key] = json.loads(value)  # numbers, true/false, lists and objects as JSON
        except ValueError:
            body[key] = value
        if isinstance(body[key], int | float) and key in ("from", "to"):
            body[key] = value  # a phone number stays text
    return body


def simulate(
    service: Annotated[str, typer.Argument(help="the fake: twilio, slack, sendgrid, mailgun, telegram")],
    event: Annotated[str, typer.Argument(help="the event: inbound-sms, interaction, slash-command, event, ...")],
    body: Annotated[
        str | None, typer.Option("--json", help="the event's body: JSON text, @file, or - for stdin")
    ] = None,
    fields: Annotated[
        list[str] | None,
        typer.Option("--field", "-F", help="KEY=VALUE added to the body (VALUE read as JSON if it is)"),
    ] = None,
    target: Annotated[str | None, typer.Option("--to-url", help="the application's URL (the body's `url`)")] = None,
    url: Url = None,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="record in this namespace")] = None,
    as_json: Annotated[bool, typer.Option("--print-json", help="print the whole result as JSON")] = False,
) -> None:
    """Deliver a provider's inbound event to your application (POST /simulate/SERVICE/EVENT).

    Exits 0 when the application answered 2xx, 1 otherwise (unreachable, timed out, refused, an error status).
    """
    payload = _simulation_body(body, fields or [])
    if target is not None:
        payload["url"] = target
    with _talking_to(url), _hub(url, namespace) as hub:
        result = hub.simulate(service, event, payload)
    if as_json:
        _print_json(result.model_dump(mode="json"))
    elif result.response is not None:
        _say(f"{result.url} answered {result.status} in {result.duration_ms:.0f} ms (call {result.call_id})")
        if result.caused:
            _say(f"the answer caused {len(result.caused)} call(s): {', '.join(result.caused)}")
        if result.response.body:
            _out(result.response.body)
    if not result.delivered:
        _fail(f"not delivered to {result.url}: {result.error} (call {result.call_id})")
    if not result.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the client commands to the `mockhub` command."""
    from mockhub.cli_rules import fault_app, limit_app, stub_app
    from mockhub.cli_webhooks import webhook_app

    app.command("calls")(calls)
    app.command("tail")(tail)
    app.command("code")(code)
    app.command("link")(link)
    app.add_typer(fault_app, name="fault")
    app.add_typer(stub_app, name="stub")
    app.add_typer(limit_app, name="limit")
    app.add_typer(webhook_app, name="webhook")
    app.command("usage")(usage)
    app.command("reset")(reset)
    app.command("export")(export)
    app.command("env")(env)
    app.command("health")(health)
    app.command("simulate")(simulate)
