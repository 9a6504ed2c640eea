"""Generic webhooks: any method on `/webhooks/{name...}`, answered 200 `{"ok": true}`."""

from __future__ import annotations

from typing import Any

from mockhub.services.base import AppUrl, BadRequest, EnvVar, Reply, Request, Route, Service, json_reply, route
from mockhub.services.forms import MultipartError, parse_multipart

__all__ = ["WebhookService"]

_OK = json_reply({"ok": True})


class WebhookService(Service):
    """Records whatever arrives; JSON, form and multipart bodies are parsed into `data`, others kept as bytes."""

    name = "webhook"
    label = "Generic webhook"
    color = "#495057"
    urls = {"webhook": AppUrl(path="/webhooks/hook", description="any method on /webhooks/{name...} is recorded")}
    env = (EnvVar(name="ALERT_WEBHOOK_URL", value="{base}/webhooks/alerts"),)
    secret_headers = ("x-hub-signature", "x-hub-signature-256", "x-signature", "x-webhook-secret")
    # Generic webhooks often carry a key in the URL's query (`?api_key=`, `?token=`).
    secret_params = ("api_key", "apikey", "access_token", "token", "secret", "password")

    def routes(self) -> list[Route]:
        return [route(None, "/webhooks/{name:path}", self.answer, self.parse)]

    def parse(self, request: Request) -> dict[str, Any]:
        content_type = request.content_type
        if not request.body:
            return {}
        if content_type == "application/json" or content_type.endswith("+json"):
            try:
                parsed = request.json()
            except ValueError as exc:
                raise BadRequest(
                    self.error(400, f"body is not valid JSON: {exc}", code="invalid_json"), {"error": "invalid_json"}
                ) from exc
            return parsed if isinstance(parsed, dict) else {"json": parsed}
        if content_type == "application/x-www-form-urlencoded":
            return {k: v[0] if len(v) == 1 else v for k, v in request.form().items()}
        if content_type == "multipart/form-data":
            return self._multipart(request)
        return {}

    def _multipart(self, request: Request) -> dict[str, Any]:
        """Text fields as a form's (a repeated name becomes a list); files listed in `attachments`."""
        try:
            parts = parse_multipart(request.headers.get("content-type", ""), request.body)
        except MultipartError as exc:
            raise BadRequest(
                self.error(400, f"body is not valid multipart/form-data: {exc}", code="invalid_multipart"),
                {"error": "invalid_multipart"},
            ) from exc
        fields: dict[str, list[str]] = {}
        files: list[dict[str, Any]] = []
        for part in parts:
            if part.filename is None:
                fields.setdefault(part.name, []).append(part.text)
            else:
                # The bytes stay in the recorded body: GET /calls/{id}/attachments/{n} serves them.
                files.append(
                    {
                        "field": part.name,
                        "filename": part.filename,
                        "content_type": part.content_type,
                        "size": len(part.value),
                    }
                )
        data: dict[str, Any] = {k: v[0] if len(v) == 1 else v for k, v in fields.items()}
        if files:
            data["attachments"] = files
        return data

    async def answer(self, request: Request) -> Reply:
        return Reply(_OK.status, _OK.body, list(_OK.headers))
