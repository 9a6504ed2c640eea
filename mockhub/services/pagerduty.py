"""PagerDuty Events API v2: `POST /v2/enqueue` (alerts) and `POST /v2/change/enqueue` (change events).

The real API is asynchronous: it validates the event, answers 202 and processes it later. So does
this fake, minus the processing. The routing key is the credential; with `MOCKHUB_CREDENTIALS`
set, an unknown key is rejected the way PagerDuty rejects it (400 "Invalid routing key").
"""

from __future__ import annotations

import uuid
from typing import Any

from mockhub.journal import Call, default_summary
from mockhub.rules import Preset
from mockhub.services.base import AppUrl, BadRequest, EnvVar, Reply, Request, Route, Service, json_reply, route

__all__ = ["PagerDutyService"]

_ACTIONS = ("trigger", "acknowledge", "resolve")
_SEVERITIES = ("critical", "error", "warning", "info")
# The payload fields worth lifting into `data` (besides summary/source/severity).
_PAYLOAD_EXTRAS = ("component", "group", "class", "timestamp", "custom_details")


def _invalid(*errors: str) -> Reply:
    return json_reply({"status": "invalid event", "message": "Event object is invalid", "errors": list(errors)}, 400)


def _blank(value: Any) -> bool:
    return not isinstance(value, str) or not value.strip()


class PagerDutyService(Service):
    """Validates events like the Events API v2, answers 202 with the (generated) dedup key."""

    name = "pagerduty"
    label = "PagerDuty"
    color = "#2f9e44"
    hosts = ("events.pagerduty.com", "events.eu.pagerduty.com")
    # The integration key is the credential of Events API v2 (v1: service_key), in the JSON body.
    secret_params = ("routing_key", "service_key")
    urls = {"pagerduty_events": AppUrl(path="/v2/enqueue", description="the Events API v2 enqueue URL")}
    env = (EnvVar(name="PAGERDUTY_EVENTS_URL", value="{urls.pagerduty_events}"),)

    @classmethod
    def summarize(cls, call: Call) -> str:
        data = call.data
        action = data.get("event_action")
        summary = data.get("summary")
        if isinstance(summary, str):
            head = f"{action} " if isinstance(action, str) else ""
            severity = data.get("severity")
            return f"{head}{summary}" + (f" [{severity}]" if isinstance(severity, str) else "")
        if isinstance(action, str):
            return f"{action} {data.get('dedup_key') or ''}".strip()
        return default_summary(call)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # None = any non-empty routing key is accepted (docs/services/pagerduty.md).
        self._keys = self.ctx.pinned

    def routes(self) -> list[Route]:
        return [
            route("POST", "/v2/enqueue", self.enqueue, self.parse_alert),
            route("POST", "/v2/change/enqueue", self.change, self.parse_change),
        ]

    # -- parsing and validation ----------------------------------------------------------------
    def _event(self, request: Request) -> dict[str, Any]:
        try:
            event = request.json()
        except ValueError as exc:
            raise BadRequest(
                json_reply(
                    {"status": "invalid request", "message": "Event object is invalid", "errors": ["Invalid JSON"]},
                    400,
                ),
                {"error": "invalid_json"},
            ) from exc
        if not isinstance(event, dict):
            raise BadRequest(_invalid("Event object must be a JSON object"), {"error": "invalid_event"})
        return event

    def _check_key(self, key: Any, data: dict[str, Any], errors: list[str]) -> None:
        if _blank(key):
            errors.append("'routing_key' is missing or blank")
        elif self._keys is not None and key not in self._keys:
            errors.append("Invalid routing key")
        else:
            data["routing_key"] = key

    def parse_alert(self, request: Request) -> dict[str, Any]:
        event = self._event(request)
        errors: list[str] = []
        action = event.get("event_action")
        data: dict[str, Any] = {"type": "alert", "action": action}
        self._check_key(event.get("routing_key"), data, errors)
        if _blank(action):
            errors.append("'event_action' is missing or blank")
        elif action not in _ACTIONS:
            errors.append(
                "'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')"
            )
        dedup_key = event.get("dedup_key")
        if dedup_key is not None and not isinstance(dedup_key, str):
            errors.append("'dedup_key' must be a string")
        if action == "trigger":
            payload = event.get("payload")
            if not isinstance(payload, dict):
                errors.append("'payload' is missing or blank")
                payload = {}
            summary, source, severity = payload.get("summary"), payload.get("source"), payload.get("severity")
            if _blank(summary):
                errors.append("'payload.summary' is missing or blank")
            if _blank(source):
                errors.append("'payload.source' is missing or blank")
            if _blank(severity):
                errors.append("'payload.severity' is missing or blank")
            elif severity not in _SEVERITIES:
                errors.append(
                    "'payload.severity' is invalid (must be one of the following: "
                    "'critical', 'warning', 'error' or 'info')"
                )
            data.update(summary=summary, source=source, severity=severity)
            for key in _PAYLOAD_EXTRAS:
                if key in payload:
                    data[key] = payload[key]
            if not dedup_key:
                # PagerDuty generates one for a trigger without a key and answers it back.
                dedup_key = uuid.uuid4().hex
        elif action in ("acknowledge", "resolve") and _blank(dedup_key):
            errors.append("'dedup_key' is missing or blank")
        data["dedup_key"] = dedup_key
        for key in ("client", "client_url", "links", "images"):
            if key in event:
                data[key] = event[key]
        if errors:
            data["errors"] = errors
            raise BadRequest(_invalid(*errors), data)
        return data

    def parse_change(self, request: Request) -> dict[str, Any]:
        event = self._event(request)
        errors: list[str] = []
        data: dict[str, Any] = {"type": "change", "action": "change"}
        self._check_key(event.get("routing_key"), data, errors)
        payload = event.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or blank")
            payload = {}
        if _blank(payload.get("summary")):
            errors.append("'payload.summary' is missing or blank")
        data["summary"] = payload.get("summary")
        for key in ("source", "timestamp", "custom_details"):
            if key in payload:
                data[key] = payload[key]
        for key in ("links", "images"):
            if key in event:
                data[key] = event[key]
        if errors:
            data["errors"] = errors
            raise BadRequest(_invalid(*errors), data)
        return data

    # -- answers -------------------------------------------------------------------------------
    async def enqueue(self, request: Request) -> Reply:
        return json_reply(
            {"status": "success", "message": "Event processed", "dedup_key": request.data["dedup_key"]}, 202
        )

    async def change(self, request: Request) -> Reply:
        return json_reply({"status": "success", "message": "Change event processed"}, 202)

    def error(self, status: int, message: str, code: str | None = None) -> Reply:
        return json_reply({"status": code or "error", "message": message}, status)

    def preset(self, name: Preset, request: Request) -> Reply:
        if name == "rate_limited":
            # The Events API answers 429 with no Retry-After; clients back off on their own.
            return json_reply(
                {
                    "status": "throttle event",
                    "message": "Requests for this service are arriving too quickly.  Please retry later.",
                },
                429,
            )
        if name == "unauthorized":
            return json_reply({"status": "unauthorized", "message": "Invalid routing key"}, 401)
        status, message = {
            "server_error": (500, "Internal Server Error"),
            "unavailable": (503, "Service Unavailable"),
            "overloaded": (503, "Service Unavailable"),
        }[name]
        return json_reply({"status": "error", "message": message}, status)
