"""The registry of fakes: the only place that lists them."""

from __future__ import annotations

from mockhub.services.anthropic import AnthropicService
from mockhub.services.base import Service
from mockhub.services.openai import OpenAIService
from mockhub.services.smtp import SmtpService
from mockhub.services.webhooks import WebhookService

__all__ = ["SERVICES"]

SERVICES: list[type[Service]] = [
    WebhookService,
    SmtpService,
    OpenAIService,
    AnthropicService,
]
