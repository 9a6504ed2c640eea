"""Settings: every one a `mockhub serve` flag and a `MOCKHUB_*` environment variable."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["LlmJitter", "LlmSeed", "LlmTokensPerS", "LlmTtftMs", "Settings"]

# The LLM fakes' timing, defined once: these settings give every answer's pacing, and the same names without
# `llm_` are fields of an LLM stub's reply (`mockhub.services.llm.LlmTiming`) that override them for it.
LlmTtftMs = Annotated[
    int, Field(ge=0, le=600_000, description="LLM: milliseconds to the first token (a plain answer waits it too)")
]
LlmTokensPerS = Annotated[
    float,
    Field(ge=0, le=1_000_000, description="LLM: output tokens per second after the first; 0 sends them at once"),
]
LlmJitter = Annotated[
    float, Field(ge=0, le=1, description="LLM: each wait varies by up to this fraction, either way (0.2: ±20%)")
]
LlmSeed = Annotated[int | None, Field(description="LLM: seed of the jitter, so each answer's pacing repeats")]

_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")


class Settings(BaseSettings):
    """mockhub's configuration. Port 0 picks a free port."""

    model_config = SettingsConfigDict(env_prefix="MOCKHUB_", extra="ignore")

    host: str = Field("0.0.0.0", description="address every listener binds")
    http_port: int = Field(8080, ge=0, le=65535, description="HTTP: the fakes, the inspection API, the UI")
    https_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="HTTPS (the same app behind TLS, a certificate per host name from mockhub's CA); off when unset",
    )
    smtp_port: int = Field(1025, ge=0, le=65535, description="SMTP (plain, STARTTLS offered)")
    smtps_port: int | None = Field(None, ge=0, le=65535, description="SMTPS (implicit TLS); off when unset")
    max_calls: int = Field(100_000, ge=1, description="calls kept in memory; older ones are evicted")
    max_journal_bytes: int = Field(
        512 * 1024 * 1024, ge=1, description="bytes of calls kept in memory (bodies, headers, parsed data)"
    )
    max_body_bytes: int = Field(
        25 * 1024 * 1024, ge=1, description="largest HTTP request body; larger ones get 413 in the provider's shape"
    )
    max_api_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="largest request body the inspection API reads (413 beyond)"
    )
    header_timeout: float = Field(10.0, gt=0, description="seconds a client has to send a request head (408 after)")
    body_timeout: float = Field(30.0, gt=0, description="seconds a client has to send a request body (408 after)")
    max_header_count: int = Field(100, ge=1, description="most headers in a request (431 beyond)")
    max_header_bytes: int = Field(64 * 1024, ge=1024, description="largest request head in bytes (431 beyond)")
    max_rules: int = Field(
        100_000, ge=1, description="most fault rules and stubs held at once, together (409 too_many_rules beyond)"
    )
    max_connections: int = Field(
        2048,
        ge=1,
        description="concurrent connections and requests (503 beyond); /health, /livez and /readyz are always answered",
    )
    max_parts: int = Field(
        1000, ge=1, description="most parts a multipart body or a MIME message is parsed into (413 beyond)"
    )
    max_mime_depth: int = Field(
        64, ge=1, le=500, description="deepest MIME nesting parsed; a message nested deeper is read headers-only"
    )
    max_part_headers: int = Field(
        1000, ge=1, description="most header lines in one multipart or MIME part (413 beyond)"
    )
    parse_thread_bytes: int = Field(
        64 * 1024, ge=0, description="request bodies larger than this are parsed in a worker thread, off the event loop"
    )
    admin_token: str | None = Field(
        None,
        description="when set, the inspection API and UI require it (Bearer, X-Mockhub-Token or ?token=); "
        "printable ASCII without spaces",
    )
    callback_allow: str | None = Field(
        None, description="comma-separated host globs outbound callbacks may reach (any when unset)"
    )
    webhooks: str | None = Field(
        None,
        description="event webhooks at start: a JSON list of {service, namespace, url, secret, events} "
        "(as POST /webhooks-config takes them)",
    )
    webhook_delay_ms: int = Field(
        50, ge=0, le=600_000, description="pause before each delivery event (processed, delivered, bounce, ...)"
    )
    webhook_backoff_scale: float = Field(
        0.001,
        ge=0,
        le=1,
        description="factor on the providers' documented retry back-off (1: real time; 0.001: 10 minutes is 0.6 s)",
    )
    webhook_max_attempts: int = Field(
        4, ge=1, le=20, description="most attempts of one webhook delivery that answers 5xx or cannot connect"
    )
    webhook_timeout: float = Field(10.0, gt=0, le=300, description="seconds one webhook attempt may take to answer")
    seed: int | None = Field(None, description="seed for probabilistic faults, so runs repeat")
    store: str = Field(
        "memory",
        description="where calls, rules and their counters live: memory (this process), or a Valkey/Redis 7+ "
        "that any number of mockhub processes share: redis://host:6379/0, rediss://..., unix:///path?db=0",
    )
    workers: int = Field(
        1,
        ge=1,
        le=256,
        description="processes serving the same ports (SO_REUSEPORT), each its own event loop; needs a shared store",
    )
    reuse_port: bool = Field(
        False, description="bind every listener with SO_REUSEPORT (set for each process of --workers)"
    )
    fakes: str | None = Field(
        None,
        description="comma-separated extra fakes to serve, each `package.module:ServiceClass`",
    )
    credentials: str | None = Field(
        None, description="comma-separated credentials the fakes accept (any non-empty one when unset)"
    )
    record_dir: Path | None = Field(None, description="append every call to a JSON Lines file in this folder")
    fsync: bool = Field(False, description="fsync each recorded call (power-loss safety)")
    log_level: str = Field("warning", description="uvicorn / mockhub log level")
    ready_json: bool = Field(
        False,
        description="once ready, print one JSON line on stdout with every bound address (for scripts using port 0)",
    )
    slack_retry_after: int = Field(
        1, ge=0, le=3600, description="Retry-After (whole seconds) of Slack's rate_limited preset"
    )
    twilio_callback_delay_ms: int = Field(
        50, ge=0, le=600_000, description="Twilio: pause before each status step (sent, delivered) and its callback"
    )
    twilio_final_status: str = Field(
        "delivered",
        pattern="^(delivered|undelivered|failed)$",
        description="Twilio: how messages end unless a stub says otherwise (delivered, undelivered, failed)",
    )
    twilio_error_code: int | None = Field(
        None, description="Twilio: ErrorCode of undelivered/failed messages (default 30003)"
    )
    twilio_auth_token: str | None = Field(
        None, description="Twilio: auth token that signs status callbacks (default: the Basic auth password)"
    )
    twilio_max_messages: int = Field(
        10_000, ge=1, description="Twilio: messages kept for fetch and list; older ones are forgotten"
    )
    replay: Path | None = Field(
        None, description="load a recorded JSON Lines journal (a file, or a record folder) at start; seq continues"
    )
    stubs: Path | None = Field(None, description="load stub and fault files (*.json, *.yaml) from this folder at start")
    record_rotate_bytes: int = Field(
        256 * 1024 * 1024, ge=4096, description="start a new record file when the current one reaches this size"
    )
    record_inline_max_bytes: int = Field(
        64 * 1024, ge=0, description="record bodies larger than this in files beside the record, not inline"
    )
    # LLM fakes (OpenAI, Anthropic, Gemini)
    llm_ttft_ms: LlmTtftMs = 0
    llm_tokens_per_s: LlmTokensPerS = 0.0
    llm_jitter: LlmJitter = 0.0
    llm_seed: LlmSeed = None
    llm_tokenizer: str = Field(
        "auto",
        description="LLM: how tokens are counted: auto (tiktoken with an encoding file already on this machine, "
        "else an approximation), approx, or the path of a .tiktoken file or a folder of them",
    )
    llm_prices: Path | None = Field(
        None, description="LLM: a JSON or YAML price table (USD per million tokens) over the built-in one (/usage)"
    )
    # SMTP fake
    smtp_hostname: str = Field("mockhub", description="SMTP: name in the greeting, EHLO and the generated certificate")
    smtp_max_message_bytes: int = Field(
        50 * 1024 * 1024, ge=1, description="SMTP: largest message (advertised as SIZE; 552 beyond)"
    )
    smtp_max_recipients: int = Field(100, ge=1, description="SMTP: recipients per message (452 beyond)")
    smtp_require_auth: bool = Field(False, description="SMTP: refuse MAIL before AUTH (530)")
    smtp_auth_require_tls: bool = Field(False, description="SMTP: offer AUTH only after STARTTLS / on SMTPS")
    smtp_credentials: str | None = Field(
        None, description="SMTP: comma-separated user:password pairs AUTH accepts (any when unset)"
    )
    smtp_tls_cert: Path | None = Field(
        None, description="SMTP: PEM certificate (chain) for STARTTLS/SMTPS; a throwaway CA signs one when unset"
    )
    smtp_tls_key: Path | None = Field(None, description="SMTP: PEM private key of smtp_tls_cert")
    smtp_timeout: float = Field(
        60.0, gt=0, description="SMTP: seconds a session may go without a valid command (421, closed after)"
    )
    smtp_max_connections: int = Field(
        1000, ge=1, description="SMTP: concurrent sessions per listener (421 and closed beyond)"
    )

    @field_validator("webhooks")
    @classmethod
    def _webhooks_parse(cls, value: str | None) -> str | None:
        if value is not None:
            from mockhub.webhooks_config import parse_setting

            parse_setting(value)  # a typo fails at start, naming the field
        return value

    @field_validator("admin_token")
    @classmethod
    def _token_fits_a_header(cls, token: str | None) -> str | None:
        # The token travels in an HTTP header, which browsers (the UI) send only as latin-1, and in
        # a query string: printable ASCII is the one alphabet every client sends the same way.
        if token is not None and not _TOKEN_CHARS.fullmatch(token):
            raise ValueError(
                "the admin token must be printable ASCII without spaces (letters, digits, punctuation), "
                "so every client can send it in a header"
            )
        return token
