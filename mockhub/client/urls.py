"""Where an application under test finds the fakes: `Urls` (one namespace's base URLs) and `app_env`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Urls", "app_env"]


@dataclass(frozen=True)
class Urls:
    """Where each fake lives, for one namespace: the base URLs an application's SDKs are pointed at."""

    base: str
    """The namespace's root: `{server}/ns/{namespace}` (or the server itself when unscoped)."""

    @property
    def slack_webhook(self) -> str:
        """A Slack incoming-webhook URL (`slack_sdk.webhook.WebhookClient(url)`)."""
        return f"{self.base}/services/T000/B000/XXXX"

    @property
    def slack_api(self) -> str:
        """`slack_sdk.WebClient(base_url=...)`."""
        return f"{self.base}/api/"

    @property
    def twilio_base(self) -> str:
        """Twilio's REST root: messages go to `{twilio_base}/2010-04-01/Accounts/{sid}/Messages.json`."""
        return self.base

    @property
    def openai_base(self) -> str:
        """`OpenAI(base_url=...)` (includes `/v1`, as the SDK expects)."""
        return f"{self.base}/v1"

    @property
    def anthropic_base(self) -> str:
        """`Anthropic(base_url=...)` (without `/v1`: the SDK adds it)."""
        return self.base

    @property
    def pagerduty_events(self) -> str:
        """PagerDuty Events v2 enqueue URL."""
        return f"{self.base}/v2/enqueue"

    @property
    def sendgrid_base(self) -> str:
        """SendGrid's API host (`SendGridAPIClient(host=...)`); mail goes to `/v3/mail/send`."""
        return self.base

    @property
    def teams_webhook(self) -> str:
        return f"{self.base}/teams/webhook"

    @property
    def discord_webhook(self) -> str:
        return f"{self.base}/api/webhooks/000/mockhub"

    def webhook(self, name: str = "hook") -> str:
        """A generic webhook URL: any method on `/webhooks/{name...}` is recorded as service `webhook`."""
        return f"{self.base}/webhooks/{name.lstrip('/')}"


def app_env(urls: Urls, smtp_host: str, smtp_port: int | None, namespace: str | None, server: str) -> dict[str, str]:
    """The environment that points a SentinelOps-style alerting application at mockhub."""
    env = {
        "MOCKHUB_URL": server,
        "ALERT_EMAIL_SMTP_SERVER": smtp_host,
        "ALERT_SLACK_WEBHOOK_URL": urls.slack_webhook,
        "ALERT_WEBHOOK_URL": urls.webhook("alerts"),
        "SLACK_API_URL": urls.slack_api,
        "TWILIO_BASE_URL": urls.twilio_base,
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "mockhub-auth-token",
        "OPENAI_BASE_URL": urls.openai_base,
        "OPENAI_API_KEY": "sk-mockhub",
        "ANTHROPIC_BASE_URL": urls.anthropic_base,
        "ANTHROPIC_API_KEY": "sk-ant-mockhub",
        "PAGERDUTY_EVENTS_URL": urls.pagerduty_events,
    }
    if smtp_port is not None:
        env["ALERT_EMAIL_SMTP_PORT"] = str(smtp_port)
    if namespace is not None:
        # SMTP carries the namespace as the AUTH user name (SPEC section 6).
        env["ALERT_EMAIL_SMTP_USER"] = namespace
        env["ALERT_EMAIL_SMTP_PASSWORD"] = "mockhub"
        env["MOCKHUB_NAMESPACE"] = namespace
    return dict(sorted(env.items()))
