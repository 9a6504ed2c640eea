"""The SMTP settings, digested once at startup; shared by the protocol and the service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mockhub.settings import Settings

__all__ = ["SmtpConfig"]


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """The SMTP settings, digested once so a connection does no per-connection parsing."""

    hostname: str = "mockhub"
    max_message_bytes: int = 50 * 1024 * 1024
    max_recipients: int = 100
    require_auth: bool = False
    auth_require_tls: bool = False
    # None: any credentials; else user -> password (None: any password for that user).
    credentials: dict[str, str | None] | None = None
    # Seconds a session may go without a valid command; the whole DATA transfer counts as one wait.
    timeout: float = 60.0
    max_connections: int = 1000

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        credentials: dict[str, str | None] | None = None
        if settings.smtp_credentials:
            credentials = {}
            for entry in settings.smtp_credentials.split(","):
                entry = entry.strip()
                if entry:
                    user, sep, password = entry.partition(":")
                    credentials[user] = password if sep else None
        return cls(
            hostname=settings.smtp_hostname,
            max_message_bytes=settings.smtp_max_message_bytes,
            max_recipients=settings.smtp_max_recipients,
            require_auth=settings.smtp_require_auth,
            auth_require_tls=settings.smtp_auth_require_tls,
            credentials=credentials,
            timeout=settings.smtp_timeout,
            max_connections=settings.smtp_max_connections,
        )

    def accepts(self, login: str, password: str) -> bool:
        if self.credentials is None:
            return True
        if login not in self.credentials:
            return False
        pinned = self.credentials[login]
        return pinned is None or pinned == password
