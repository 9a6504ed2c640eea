"""The registry of fakes: the only place that lists them."""

from __future__ import annotations

from mockhub.services.base import Service
from mockhub.services.chat import DiscordService, TeamsService
from mockhub.services.mailgun import MailgunService
from mockhub.services.pagerduty import PagerDutyService
from mockhub.services.sendgrid import SendGridService
from mockhub.services.smtp import SmtpService
from mockhub.services.webhooks import WebhookService

__all__ = ["SERVICES"]

SERVICES: list[type[Service]] = [
    WebhookService,
    SmtpService,
    PagerDutyService,
    TeamsService,
    DiscordService,
    SendGridService,
    MailgunService,
]
