"""The registry of fakes: the only place that lists them."""

from __future__ import annotations

from mockhub.services.anthropic import AnthropicService
from mockhub.services.aws import SesService, SnsService
from mockhub.services.base import Service
from mockhub.services.discord import DiscordService
from mockhub.services.gemini import GeminiService
from mockhub.services.mailgun import MailgunService
from mockhub.services.openai import OpenAIService
from mockhub.services.pagerduty import PagerDutyService
from mockhub.services.postmark import PostmarkService
from mockhub.services.resend import ResendService
from mockhub.services.sendgrid import SendGridService
from mockhub.services.slack import SlackService
from mockhub.services.smtp import SmtpService
from mockhub.services.teams import TeamsService
from mockhub.services.telegram import TelegramService
from mockhub.services.twilio import TwilioService
from mockhub.services.unmatched import UnmatchedService
from mockhub.services.webhooks import WebhookService

__all__ = ["SERVICES", "FakesError", "load_fake"]

SERVICES: list[type[Service]] = [
    WebhookService,
    SmtpService,
    # Discord before Slack: both live under /api/, Discord's routes are the more specific.
    DiscordService,
    SlackService,
    TwilioService,
    PagerDutyService,
    TeamsService,
    SendGridService,
    MailgunService,
    PostmarkService,
    ResendService,
    OpenAIService,
    AnthropicService,
    # SES and SNS share POST / (the Query API), told apart by their routes' `accepts`.
    SesService,
    SnsService,
    TelegramService,
    GeminiService,
    # Intercepted calls to hosts and paths no fake above serves (reached by host only).
    UnmatchedService,
]


class FakesError(ValueError):
    """The `fakes` setting names something that is not a loadable fake (or one whose name is taken)."""


def load_fake(spec: str) -> type[Service]:
    """The fake named `package.module:ClassName` (the `fakes` setting): a fake of the user's own, in one file."""
    import importlib

    module_name, _, class_name = spec.strip().partition(":")
    if not module_name or not class_name:
        raise FakesError(f"fakes: {spec!r} is not of the form package.module:ServiceClass")
    try:
        found = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise FakesError(f"fakes: cannot load {spec!r}: {exc}") from None
    if not (isinstance(found, type) and issubclass(found, Service) and isinstance(getattr(found, "name", None), str)):
        raise FakesError(f"fakes: {spec!r} is not a mockhub Service subclass with a name")
    return found
