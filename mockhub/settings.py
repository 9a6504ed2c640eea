"""Settings: every one a `mockhub serve` flag and a `MOCKHUB_*` environment variable."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """mockhub's configuration. Port 0 picks a free port."""

    model_config = SettingsConfigDict(env_prefix="MOCKHUB_", extra="ignore")

    host: str = Field("0.0.0.0", description="address every listener binds")
    http_port: int = Field(8080, ge=0, le=65535, description="HTTP: the fakes, the inspection API, the UI")
    smtp_port: int = Field(1025, ge=0, le=65535, description="SMTP (plain, STARTTLS offered)")
    smtps_port: int | None = Field(None, ge=0, le=65535, description="SMTPS (implicit TLS); off when unset")
    max_calls: int = Field(100_000, ge=1, description="calls kept in memory; older ones are evicted")
    max_journal_bytes: int = Field(512 * 1024 * 1024, ge=1, description="body bytes kept in memory")
    max_body_bytes: int = Field(
        25 * 1024 * 1024, ge=1, description="largest HTTP request body; larger ones get 413 in the provider's shape"
    )
    seed: int | None = Field(None, description="seed for probabilistic faults, so runs repeat")
    credentials: str | None = Field(
        None, description="comma-separated credentials the fakes accept (any non-empty one when unset)"
    )
    record_dir: Path | None = Field(None, description="append every call to a JSON Lines file in this folder")
    fsync: bool = Field(False, description="fsync each recorded call (power-loss safety)")
    log_level: str = Field("warning", description="uvicorn / mockhub log level")
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
