"""The `mockhub webhook add|list|clear` commands: where the fakes' event webhooks go (docs/delivery.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from mockhub.cli_client import AsJson, Namespace, Url, _hub, _print_json, _say, _table, _talking_to

__all__ = ["webhook_app"]

webhook_app = typer.Typer(
    help="Add, list and clear event webhooks (deliveries, bounces, complaints sent to your app).",
    no_args_is_help=True,
)


@webhook_app.command("add")
def webhook_add(
    service: Annotated[str, typer.Argument(help="the fake: sendgrid, mailgun, postmark, resend, ses, twilio, smtp")],
    target: Annotated[str, typer.Argument(metavar="URL", help="your application's endpoint")],
    secret: Annotated[
        str | None, typer.Option("--secret", help="signing secret: Mailgun's signing key, Resend's whsec_...")
    ] = None,
    events: Annotated[
        list[str] | None, typer.Option("--event", "-e", help="only this event (repeatable), e.g. bounce")
    ] = None,
    url: Url = None,
    namespace: Namespace = None,
    as_json: AsJson = False,
) -> None:
    """Send SERVICE's event webhooks to URL (for smtp: where bounces are POSTed)."""
    with _talking_to(url), _hub(url, namespace) as hub:
        config = hub.webhook(service, target, secret=secret, events=events or None)
    if as_json:
        _print_json(config.model_dump(mode="json"))
        return
    _say(f"added {config.id}: {config.service} → {config.url}", "green")


@webhook_app.command("list")
def webhook_list(url: Url = None, namespace: Namespace = None, as_json: AsJson = False) -> None:
    """List the event webhook configs."""
    with _talking_to(url), _hub(url, namespace) as hub:
        configs = hub.webhooks()
    if as_json:
        _print_json([c.model_dump(mode="json") for c in configs])
        return
    rows = [
        [c.id, c.service, c.namespace or "*", c.url, ",".join(c.events) if c.events else "all", c.source]
        for c in configs
    ]
    _table(["ID", "SERVICE", "NAMESPACE", "URL", "EVENTS", "SOURCE"], rows, ["dim", "cyan", None, None, None, "dim"])
    _say(f"{len(configs)} webhook(s)", "dim")


@webhook_app.command("clear")
def webhook_clear(
    ids: Annotated[list[str] | None, typer.Argument(help="config ids; none = every config (of --namespace)")] = None,
    url: Url = None,
    namespace: Namespace = None,
) -> None:
    """Delete event webhook configs: the ones named, or all."""
    with _talking_to(url), _hub(url, namespace) as hub:
        if ids:
            for config_id in ids:
                hub.delete_webhook(config_id)
            deleted = len(ids)
        else:
            deleted = hub.clear_webhooks()
    _say(f"deleted {deleted} webhook(s)", "green")
