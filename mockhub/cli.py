"""The `mockhub` command: `serve`, and client commands that talk to a running server."""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

import typer

from mockhub import __version__
from mockhub.settings import Settings

app = typer.Typer(
    name="mockhub",
    help="One mock server for every external service your application talks to.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def main(
    version: typing.Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """mockhub: fakes for SMTP, Slack, Twilio, webhooks, OpenAI, Anthropic and more, with an inspection API."""


def _serve(**given: Any) -> None:
    from pydantic import ValidationError

    from mockhub.server import run

    # Only flags actually given override the environment (MOCKHUB_*) and the defaults.
    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {str(e['msg']).removeprefix('Value error, ')}" for e in exc.errors()
        )
        typer.echo(f"mockhub: error: {problems}", err=True)
        raise SystemExit(2) from None
    run(settings)


def _serve_signature() -> inspect.Signature:
    """One `--flag` per Settings field, so a new setting is a flag without touching this file."""
    params = []
    for name, field in Settings.model_fields.items():
        annotation: Any = field.annotation
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        default = "off" if field.default is None else field.default
        flag = "--" + name.replace("_", "-")
        decls = [f"{flag}/--no-{flag[2:]}"] if annotation is bool else [flag]
        option = typer.Option(None, *decls, help=f"{field.description} (env MOCKHUB_{name.upper()}; default {default})")
        params.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation | None)
        )
    return inspect.Signature(params)


_serve.__signature__ = _serve_signature()  # type: ignore[attr-defined]
_serve.__doc__ = "Start mockhub: HTTP (fakes, inspection API, UI) and SMTP in one process."
app.command("serve")(_serve)

# The client commands (calls, tail, fault, stub, reset, export, env, health) live in their own module.
from mockhub.cli_client import register as _register_client_commands  # noqa: E402

_register_client_commands(app)
