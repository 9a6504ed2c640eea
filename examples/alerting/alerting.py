"""A tiny alerting app: one alert goes out by email, Slack, SMS (Twilio, critical only) and a webhook,
with a one-line summary written by an LLM (OpenAI), falling back to the raw details when the LLM fails.

It knows nothing about mockhub: everything comes from environment variables, as in production.
`test_alerting.py` points those variables at mockhub and checks what each service received.
"""

from __future__ import annotations

import os
import smtplib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage

import httpx
import openai
from slack_sdk.webhook import WebhookClient
from twilio.rest import Client as TwilioClient


@dataclass(frozen=True)
class Alert:
    title: str
    severity: str  # "critical" pages someone by SMS; anything else does not
    host: str
    details: str


@dataclass(frozen=True)
class Settings:
    """Every setting an environment variable, as a twelve-factor app would have it."""

    smtp_server: str
    smtp_port: int
    smtp_user: str | None
    smtp_password: str | None
    email_from: str
    email_to: list[str]
    slack_webhook_url: str
    webhook_url: str
    twilio_account_sid: str
    twilio_auth_token: str
    twilio_base_url: str | None
    sms_from: str
    sms_to: str
    openai_base_url: str | None
    openai_api_key: str
    llm_model: str
    llm_max_retries: int
    webhook_attempts: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            smtp_server=env.get("ALERT_EMAIL_SMTP_SERVER", "localhost"),
            smtp_port=int(env.get("ALERT_EMAIL_SMTP_PORT", "25")),
            smtp_user=env.get("ALERT_EMAIL_SMTP_USER") or None,
            smtp_password=env.get("ALERT_EMAIL_SMTP_PASSWORD") or None,
            email_from=env.get("ALERT_EMAIL_FROM", "alerts@example.com"),
            email_to=[a.strip() for a in env.get("ALERT_EMAIL_TO", "oncall@example.com").split(",")],
            slack_webhook_url=env["ALERT_SLACK_WEBHOOK_URL"],
            webhook_url=env["ALERT_WEBHOOK_URL"],
            twilio_account_sid=env["TWILIO_ACCOUNT_SID"],
            twilio_auth_token=env["TWILIO_AUTH_TOKEN"],
            twilio_base_url=env.get("TWILIO_BASE_URL") or None,
            sms_from=env.get("ALERT_SMS_FROM", "+15550000000"),
            sms_to=env.get("ALERT_SMS_TO", "+15551234567"),
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            openai_api_key=env["OPENAI_API_KEY"],
            llm_model=env.get("ALERT_LLM_MODEL", "gpt-4o-mini"),
            llm_max_retries=int(env.get("ALERT_LLM_MAX_RETRIES", "2")),
            webhook_attempts=int(env.get("ALERT_WEBHOOK_ATTEMPTS", "3")),
        )


@dataclass
class Outcome:
    summary: str
    summary_by_llm: bool
    delivered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def summarize(alert: Alert, settings: Settings) -> tuple[str, bool]:
    """A one-line summary from the LLM; the alert's own text when the LLM is down."""
    client = openai.OpenAI(
        base_url=settings.openai_base_url,
        api_key=settings.openai_api_key,
        max_retries=settings.llm_max_retries,
        timeout=10,
    )
    try:
        completion = client.chat.completions.create(
            model=settings.llm_model,
            messages=[
                {"role": "system", "content": "Summarize this monitoring alert in one short sentence for on-call."},
                {"role": "user", "content": f"[{alert.severity}] {alert.title} on {alert.host}: {alert.details}"},
            ],
        )
    except openai.APIError:
        return f"{alert.title} on {alert.host}: {alert.details}", False
    return (completion.choices[0].message.content or "").strip(), True


def send_email(alert: Alert, summary: str, settings: Settings) -> None:
    msg = EmailMessage()
    msg["From"] = settings.email_from
    msg["To"] = ", ".join(settings.email_to)
    msg["Subject"] = f"[{alert.severity.upper()}] {alert.title} on {alert.host}"
    msg.set_content(f"{summary}\n\nDetails: {alert.details}\n")
    with smtplib.SMTP(settings.smtp_server, settings.smtp_port, timeout=10) as smtp:
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password or "")
        smtp.send_message(msg)


def send_slack(alert: Alert, summary: str, settings: Settings) -> None:
    response = WebhookClient(settings.slack_webhook_url, timeout=10).send(
        text=f":rotating_light: [{alert.severity}] {summary}",
        blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{alert.title}* on `{alert.host}`\n{summary}"}}
        ],
    )
    if response.status_code != 200:
        raise RuntimeError(f"Slack answered {response.status_code}: {response.body}")


def send_sms(alert: Alert, summary: str, settings: Settings) -> None:
    client = TwilioClient(settings.twilio_account_sid, settings.twilio_auth_token)
    if settings.twilio_base_url:
        client.api.base_url = settings.twilio_base_url  # the SDK's only knob for another API host
    client.messages.create(to=settings.sms_to, from_=settings.sms_from, body=f"{alert.title} on {alert.host}")


def post_webhook(alert: Alert, summary: str, settings: Settings) -> None:
    """POST the alert as JSON, retrying 429/5xx answers and dropped connections with a short backoff."""
    payload = {"title": alert.title, "severity": alert.severity, "host": alert.host, "summary": summary}
    problem = "no attempt"
    for attempt in range(settings.webhook_attempts):
        if attempt:
            time.sleep(0.05 * 2**attempt)
        try:
            response = httpx.post(settings.webhook_url, json=payload, timeout=5)
        except httpx.TransportError as exc:
            problem = f"{type(exc).__name__}: {exc}"
            continue
        if response.status_code < 300:
            return
        problem = f"HTTP {response.status_code}"
        if response.status_code != 429 and response.status_code < 500:
            break
    raise RuntimeError(f"webhook failed after {attempt + 1} attempt(s): {problem}")


def dispatch(alert: Alert, settings: Settings | None = None) -> Outcome:
    """Send `alert` everywhere it should go; one channel failing never stops the others."""
    settings = settings or Settings.from_env()
    summary, by_llm = summarize(alert, settings)
    outcome = Outcome(summary, by_llm)
    channels = {"email": send_email, "slack": send_slack, "webhook": post_webhook}
    if alert.severity == "critical":
        channels["sms"] = send_sms
    for name, send in channels.items():
        try:
            send(alert, summary, settings)
        except Exception as exc:
            outcome.failed[name] = f"{type(exc).__name__}: {exc}"
        else:
            outcome.delivered.append(name)
    return outcome
