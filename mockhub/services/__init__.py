"""The registry of fakes: the only place that lists them."""

from __future__ import annotations

from mockhub.services.anthropic import AnthropicService
from mockhub.services.base import Service
from mockhub.services.discord import DiscordService
from mockhub.services.mailgun import MailgunService
from mockhub.services.openai import OpenAIService
from mockhub.services.pagerduty import PagerDutyService
from mockhub.services.sendgrid import SendGridService
from mockhub.services.slack import SlackService
from mockhub.services.smtp import SmtpService
from mockhub.services.teams import TeamsService
from mockhub.services.twilio import TwilioService
from mockhub.services.webhooks import WebhookService

__all__ = ["SERVICES"]

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
    OpenAIService,
    AnthropicService,
]
