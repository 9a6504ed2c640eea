"""The `mockhub` command: `serve`, and client commands that talk to a running server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mockhub import __version__

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
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """mockhub: fakes for SMTP, Slack, Twilio, webhooks, OpenAI, Anthropic and more, with an inspection API."""


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind [env MOCKHUB_HOST; default 0.0.0.0].")] = None,
    http_port: Annotated[int | None, typer.Option(help="HTTP port, 0 = any free [MOCKHUB_HTTP_PORT; 8080].")] = None,
    smtp_port: Annotated[int | None, typer.Option(help="SMTP port, 0 = any free [MOCKHUB_SMTP_PORT; 1025].")] = None,
    smtps_port: Annotated[int | None, typer.Option(help="SMTPS port; off unless set [MOCKHUB_SMTPS_PORT].")] = None,
    max_calls: Annotated[int | None, typer.Option(help="Calls kept in memory [MOCKHUB_MAX_CALLS; 100000].")] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option(help="Largest HTTP request body [MOCKHUB_MAX_BODY_BYTES; 25 MiB].")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for probabilistic faults [MOCKHUB_SEED].")] = None,
    record_dir: Annotated[
        Path | None, typer.Option(help="Append every call to JSON Lines here [MOCKHUB_RECORD_DIR].")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="Log level [MOCKHUB_LOG_LEVEL; warning].")] = None,
) -> None:
    """Start mockhub: HTTP (fakes, inspection API, UI) and SMTP in one process."""
    from mockhub.server import run
    from mockhub.settings import Settings

    given: dict[str, Any] = {k: v for k, v in locals().items() if v is not None and k not in ("run", "Settings")}
    run(Settings(**given))
