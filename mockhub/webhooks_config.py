"""Where each fake sends its event webhooks: `POST/GET/DELETE /webhooks-config` and the `webhooks` setting.

A config names a fake (`service`), optionally one `namespace` (else every namespace), the
application's `url`, the provider's signing `secret` (Mailgun's webhook signing key, Resend's
`whsec_...`; SendGrid signs with a key pair of mockhub's own) and optionally the `events` wanted,
in the provider's own words (SendGrid `bounce`, Mailgun `failed`, Postmark `Bounce`, ...). The fakes
ask `WebhookBook.targets(service, namespace)` when a message's outcome is known; deliveries go
through `mockhub.outbound.Outbound`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from mockhub.journal import format_time, new_id

if TYPE_CHECKING:
    from fastapi import APIRouter

__all__ = ["WebhookBook", "WebhookConfig", "WebhookConfigList", "WebhookSpec", "webhooks_router"]


class WebhookSpec(BaseModel):
    """One event webhook as posted to `POST /webhooks-config`."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(description="the fake whose events go there: sendgrid, mailgun, postmark, resend, ses, smtp")
    namespace: str | None = Field(None, description="only messages of this namespace (default: every namespace)")
    url: Annotated[str, Field(min_length=8, max_length=4096)] = Field(
        description="the application's endpoint (http or https); for smtp, where bounces (DSNs) are POSTed"
    )
    secret: str | None = Field(
        None, description="the signing secret: Mailgun's webhook signing key, Resend's whsec_... secret"
    )
    events: list[str] | None = Field(
        None, description="only these events, in the provider's words (e.g. bounce, delivered); default: all"
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("url must be an http:// or https:// URL")
        return url


class WebhookConfig(WebhookSpec):
    """A webhook config as stored: the spec, its `id` and when it was added."""

    id: str
    created: str
    source: str = Field(
        "api",
        description="api (POST /webhooks-config), settings (MOCKHUB_WEBHOOKS) or provider (the provider's own "
        "API: SendGrid's PATCH /v3/user/webhooks/event/settings)",
    )


class WebhookConfigList(BaseModel):
    webhooks: list[WebhookConfig]
    count: int


_SPECS = TypeAdapter(list[WebhookSpec])


def parse_setting(value: str) -> list[WebhookSpec]:
    """The `webhooks` setting: a JSON list of configs (a single object is taken as a list of one)."""
    loaded = orjson.loads(value)
    return _SPECS.validate_python(loaded if isinstance(loaded, list) else [loaded])


class WebhookBook:
    """Every webhook config, oldest first; `events` says which event names each fake sends."""

    def __init__(self, events: Mapping[str, Sequence[str]] | None = None) -> None:
        self.events: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in (events or {}).items()}
        self._configs: dict[str, WebhookConfig] = {}

    def problem(self, spec: WebhookSpec) -> str | None:
        """Why `spec` cannot be served (a fake without events, an event it never sends), or None."""
        if spec.service not in self.events:
            known = ", ".join(sorted(self.events))
            return f"service: {spec.service!r} sends no event webhooks; these do: {known}"
        known_events = self.events[spec.service]
        unknown = [e for e in spec.events or () if e not in known_events]
        if unknown and known_events:
            return f"events: {spec.service} has no event {unknown[0]!r}; it sends {list(known_events)}"
        return None

    def add(self, spec: WebhookSpec, source: str = "api") -> WebhookConfig:
        config = WebhookConfig(**spec.model_dump(), id=new_id("w_"), created=format_time(time.time()), source=source)
        self._configs[config.id] = config
        return config

    def get(self, config_id: str) -> WebhookConfig | None:
        return self._configs.get(config_id)

    def all(self, namespace: str | None = None, service: str | None = None) -> list[WebhookConfig]:
        return [
            c
            for c in self._configs.values()
            if (namespace is None or c.namespace == namespace) and (service is None or c.service == service)
        ]

    def remove(self, config_id: str) -> bool:
        return self._configs.pop(config_id, None) is not None

    def clear(self, namespace: str | None = None, service: str | None = None, keep_settings: bool = False) -> int:
        doomed = [c.id for c in self.all(namespace, service) if not (keep_settings and c.source == "settings")]
        for config_id in doomed:
            del self._configs[config_id]
        return len(doomed)

    def targets(self, service: str, namespace: str, event: str | None = None) -> list[WebhookConfig]:
        """The configs a message of `service` in `namespace` reports to (for `event`, when given).

        A config for the namespace itself wins over the ones for every namespace, so a parallel
        test's own endpoint is the only one its messages reach.
        """
        if not self._configs:
            return []
        mine = [c for c in self._configs.values() if c.service == service and c.namespace == namespace]
        chosen = mine or [c for c in self._configs.values() if c.service == service and c.namespace is None]
        if event is None:
            return chosen
        return [c for c in chosen if c.events is None or event in c.events]


def webhooks_router(book: WebhookBook) -> APIRouter:
    """The inspection API's `/webhooks-config` routes."""
    from fastapi import APIRouter
    from fastapi.responses import Response

    from mockhub.api import ApiError, DeletedOut, JSONOut

    router = APIRouter(tags=["webhooks"])

    @router.post("/webhooks-config", response_model=WebhookConfig, status_code=201)
    async def add_webhook(spec: WebhookSpec) -> Response:
        """Send a fake's event webhooks (deliveries, bounces, complaints) to `url`."""
        problem = book.problem(spec)
        if problem is not None:
            raise ApiError(422, "invalid_request", problem)
        return JSONOut(book.add(spec), 201)

    @router.get("/webhooks-config", response_model=WebhookConfigList)
    async def list_webhooks(namespace: str | None = None, service: str | None = None) -> Response:
        configs = book.all(namespace, service)
        return JSONOut(WebhookConfigList(webhooks=configs, count=len(configs)))

    @router.get("/webhooks-config/{config_id}", response_model=WebhookConfig)
    async def get_webhook(config_id: str) -> Response:
        config = book.get(config_id)
        if config is None:
            raise ApiError(404, "webhook_not_found", f"no webhook config {config_id}")
        return JSONOut(config)

    @router.delete("/webhooks-config/{config_id}", response_model=DeletedOut)
    async def delete_webhook(config_id: str) -> Response:
        if not book.remove(config_id):
            raise ApiError(404, "webhook_not_found", f"no webhook config {config_id}")
        return JSONOut({"deleted": 1})

    @router.delete("/webhooks-config", response_model=DeletedOut)
    async def clear_webhooks(namespace: str | None = None, service: str | None = None) -> Response:
        return JSONOut({"deleted": book.clear(namespace, service)})

    return router
