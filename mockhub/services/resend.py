"""Resend: `POST /emails`, `POST /emails/batch` and `GET /emails/{id}` with a Bearer `re_...` key.

Answers `{"id"}` (a batch `{"data": [{"id"}, ...]}`, plus `errors` in permissive mode), keeps
the emails sent per namespace so `GET /emails/{id}` returns them as Resend does, honours the
`Idempotency-Key` header, and rejects what Resend rejects with its error body
`{"statusCode", "name", "message"}`, one problem at a time. The email lands in `data` with the same
keys as an SMTP message (`from`, `to`, `cc`, `bcc`, `subject`, `text`, `html`, `attachments`), so
the `to` / `subject` / `contains` filters find it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from mockhub.filters import DataFields
from mockhub.journal import Call, default_summary
from mockhub.rules import Preset
from mockhub.services.base import (
    AppUrl,
    BadRequest,
    EnvVar,
    Reply,
    Request,
    Route,
    Service,
    email_summary,
    json_reply,
    route,
)

__all__ = ["ResendReply", "ResendService"]


class ResendReply(BaseModel):
    """Resend's field of a stub's `reply`: what became of the emails the call sent."""

    model_config = ConfigDict(extra="ignore")

    last_event: str | None = Field(
        None, description="the `last_event` GET /emails/{id} reports, e.g. bounced, complained, delivered"
    )


_ADDRESS = r"[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+"
_MAILBOX = re.compile(rf"^\s*(?:(?P<name>[^<>]*?)\s*<(?P<angle>{_ADDRESS})>|(?P<bare>{_ADDRESS}))\s*$")
_TAG = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_MAX_RECIPIENTS = 50
_MAX_BATCH = 100
_MAX_IDEMPOTENCY_KEY = 256
_IDEMPOTENCY_TTL_S = 24 * 3600
# Emails kept per namespace for GET /emails/{id}; the oldest are forgotten first.
_MAX_STORED = 10_000
# Resend's own test addresses (https://resend.com/docs/dashboard/emails/send-test-emails).
_TEST_OUTCOMES = {"bounced@resend.dev": "bounced", "complained@resend.dev": "complained"}
_FORMAT = "The email address needs to follow the `email@example.com` or `Name <email@example.com>` format."
# Every answer carries the rate-limit headers Resend sends (IETF draft 6), as an SDK may read them.
_RATE_HEADERS = [
    ("ratelimit-limit", "10"),
    ("ratelimit-policy", "10;w=1"),
    ("ratelimit-remaining", "9"),
    ("ratelimit-reset", "1"),
]


class _Rejected(Exception):
    """One problem with one email: Resend reports the first it finds."""

    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status, self.name, self.message = status, name, message


def _error(status: int, name: str, message: str, headers: list[tuple[str, str]] | None = None) -> Reply:
    return json_reply({"statusCode": status, "name": name, "message": message}, status, headers)


def _reject(status: int, name: str, message: str, data: dict[str, Any] | None = None) -> BadRequest:
    return BadRequest(_error(status, name, message), {"error": name, "message": message, **(data or {})})


def _mailbox(value: str) -> tuple[str, str | None] | None:
    """`("a@b.c", "Name")` for `Name <a@b.c>`, `("a@b.c", None)` for a bare address, else None."""
    m = _MAILBOX.match(value)
    if m is None:
        return None
    address = m.group("angle") or m.group("bare")
    name = (m.group("name") or "").strip().strip('"').strip() or None
    return address, name


def _as_list(value: Any) -> list[Any]:
    return [] if value is None or value == "" else [value] if isinstance(value, str) else list(value)


def _recipients(email: dict[str, Any], key: str, required: bool = False) -> list[str]:
    """The bare addresses of a `string | string[]` field."""
    value = email.get(key)
    if value is None or value == "" or value == []:
        if required:
            raise _Rejected(422, "missing_required_field", f"Missing `{key}` field.")
        return []
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _Rejected(422, "validation_error", f"The `{key}` field must be a `string` or an array of strings.")
    if key == "to" and len(values) > _MAX_RECIPIENTS:
        raise _Rejected(
            422, "validation_error", f"Too many recipients in the `to` field: the maximum is {_MAX_RECIPIENTS}."
        )
    bare = []
    for v in values:
        parsed = _mailbox(v)
        if parsed is None:
            raise _Rejected(422, "validation_error", f"Invalid `{key}` field. {_FORMAT}")
        bare.append(parsed[0])
    return bare


def _optional_string(email: dict[str, Any], key: str) -> str | None:
    value = email.get(key)
    if value is not None and not isinstance(value, str):
        raise _Rejected(422, "validation_error", f"The `{key}` field must be a `string`.")
    return value


def _attachments(attachments: Any) -> list[dict[str, Any]]:
    if not isinstance(attachments, list):
        raise _Rejected(422, "validation_error", "The `attachments` field must be an array.")
    found: list[dict[str, Any]] = []
    for attachment in attachments:
        if not isinstance(attachment, dict):
            raise _Rejected(422, "invalid_attachment", "Attachment must have either a `content` or `path`.")
        content, path = attachment.get("content"), attachment.get("path")
        filename = attachment.get("filename")
        size: int | None = None
        if isinstance(content, str) and content:
            try:
                size = len(base64.b64decode(content, validate=True))
            except (binascii.Error, ValueError):
                raise _Rejected(
                    422, "invalid_attachment", "Attachment `content` must be a Base64 encoded string."
                ) from None
        elif isinstance(content, list) and content:
            # The Python SDK sends bytes as a list of integers (`list(open(f, "rb").read())`).
            if not all(isinstance(b, int) and 0 <= b <= 255 for b in content):
                raise _Rejected(422, "invalid_attachment", "Attachment `content` must be a buffer or a Base64 string.")
            size = len(content)
        elif isinstance(path, str) and path:
            if not re.match(r"^https?://", path):
                raise _Rejected(422, "invalid_attachment", "Attachment `path` must be a URL.")
        else:
            raise _Rejected(422, "invalid_attachment", "Attachment must have either a `content` or `path`.")
        if filename is not None and not isinstance(filename, str):
            raise _Rejected(422, "validation_error", "The attachment `filename` field must be a `string`.")
        if not filename and isinstance(path, str):
            filename = path.rstrip("/").rsplit("/", 1)[-1] or None
        entry: dict[str, Any] = {
            "filename": filename,
            "content_type": attachment.get("content_type") or "application/octet-stream",
            "size": size,
        }
        if size is None:
            entry["path"] = path
        content_id = attachment.get("content_id") or attachment.get("inline_content_id")
        if content_id:
            entry["content_id"] = content_id
        found.append(entry)
    return found


def _tags(tags: Any) -> list[dict[str, Any]]:
    if not isinstance(tags, list):
        raise _Rejected(422, "validation_error", "The `tags` field must be an array.")
    for tag in tags:
        name = tag.get("name") if isinstance(tag, dict) else None
        if not isinstance(name, str) or not name:
            raise _Rejected(422, "missing_required_field", "Missing `name` field in `tags`.")
        value = tag.get("value")
        if not _TAG.match(name) or (value is not None and (not isinstance(value, str) or not _TAG.match(value))):
            raise _Rejected(
                422,
                "validation_error",
                "Tags should only contain ASCII letters (a-z, A-Z), numbers (0-9), underscores (_), or dashes (-), "
                "and be no more than 256 characters.",
            )
    return tags


def _scheduled_at(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _Rejected(422, "validation_error", "The `scheduled_at` field must be a `string`.")
    # ISO 8601, or natural language ("in 1 min") as Resend accepts.
    if value[:1].isdigit():
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _Rejected(
                422,
                "validation_error",
                "Invalid `scheduled_at` field. The date must be in ISO 8601 format (e.g. 2024-08-05T11:52:01.858Z) "
                "or in natural language (e.g. in 1 min).",
            ) from None
    return value


def _email(email: Any, batch: bool) -> dict[str, Any]:
    """One email's `data`, or `_Rejected` naming its first problem, in Resend's order."""
    if not isinstance(email, dict):
        raise _Rejected(422, "validation_error", "Each email must be a JSON object.")
    template = email.get("template")
    if template is not None and (not isinstance(template, dict) or not isinstance(template.get("id"), str)):
        raise _Rejected(422, "missing_required_field", "Missing `id` field in `template`.")
    # Resend's order: `to`, then the content, then `subject`, then `from` (a template may bring its
    # own content, `subject` and `from`).
    to = _recipients(email, "to", required=True)
    html, text = _optional_string(email, "html"), _optional_string(email, "text")
    if html is None and text is None and template is None:
        raise _Rejected(422, "validation_error", "Missing `html` or `text` field.")
    subject = _optional_string(email, "subject")
    if not subject and template is None:
        raise _Rejected(422, "missing_required_field", "Missing `subject` field.")
    sender = email.get("from")
    if (sender is None or sender == "") and template is None:
        raise _Rejected(422, "missing_required_field", "Missing `from` field.")
    data: dict[str, Any] = {}
    if sender is not None and sender != "":
        if not isinstance(sender, str):
            raise _Rejected(422, "validation_error", "The `from` field must be a `string`.")
        parsed = _mailbox(sender)
        if parsed is None:
            raise _Rejected(422, "validation_error", f"Invalid `from` field. {_FORMAT}")
        data["from"] = parsed[0]
        if parsed[1]:
            data["from_name"] = parsed[1]
    cc = _recipients(email, "cc")
    bcc = _recipients(email, "bcc")
    reply_to = _recipients(email, "reply_to")
    if template is not None and (html is not None or text is not None or email.get("react") is not None):
        raise _Rejected(
            422, "validation_error", "The `html`, `text` and `react` fields cannot be used with a `template`."
        )
    headers = email.get("headers")
    if headers is not None and (not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values())):
        raise _Rejected(422, "validation_error", "The `headers` field must be an object of `string` values.")
    if batch and email.get("attachments") is not None:
        raise _Rejected(422, "validation_error", "The `attachments` field is not supported for batch emails.")
    if batch and email.get("scheduled_at") is not None:
        raise _Rejected(422, "validation_error", "The `scheduled_at` field is not supported for batch emails.")
    attachments = _attachments(email["attachments"]) if email.get("attachments") is not None else None
    tags = _tags(email["tags"]) if email.get("tags") is not None else None
    scheduled_at = _scheduled_at(email.get("scheduled_at"))

    data.update(to=to, cc=cc, bcc=bcc)
    if reply_to:
        data["reply_to"] = reply_to
    for key, value in (("subject", subject), ("text", text), ("html", html)):
        if value is not None:
            data[key] = value
    if attachments is not None:
        data["attachments"] = attachments
    extras: dict[str, Any] = {"headers": headers, "tags": tags, "scheduled_at": scheduled_at, "template": template}
    data.update((k, v) for k, v in extras.items() if v is not None)
    if email.get("topic_id") is not None:
        data["topic_id"] = email["topic_id"]
    return data


@dataclass(slots=True)
class _Remembered:
    """An answer given under an idempotency key: replayed for the same body, 409 for another."""

    fingerprint: str
    body: bytes
    ids: list[str]
    expires: float


class _Store:
    """Sent emails (for GET) and idempotency keys, per namespace."""

    def __init__(self) -> None:
        self.emails: dict[str, OrderedDict[str, dict[str, Any]]] = {}
        self.keys: dict[str, dict[tuple[str, str], _Remembered]] = {}

    def add(self, namespace: str, email: dict[str, Any]) -> None:
        box = self.emails.setdefault(namespace, OrderedDict())
        box[email["id"]] = email
        while len(box) > _MAX_STORED:
            box.popitem(last=False)

    def get(self, namespace: str, email_id: str) -> dict[str, Any] | None:
        box = self.emails.get(namespace)
        return box.get(email_id) if box is not None else None

    def newest_first(self, namespace: str) -> list[dict[str, Any]]:
        box = self.emails.get(namespace)
        return list(reversed(box.values())) if box is not None else []

    def remembered(self, namespace: str, path: str, key: str) -> _Remembered | None:
        keys = self.keys.get(namespace, {})
        found = keys.get((path, key))
        if found is not None and found.expires < time.monotonic():
            del keys[(path, key)]
            return None
        return found

    def remember(self, namespace: str, path: str, key: str, entry: _Remembered) -> None:
        keys = self.keys.setdefault(namespace, {})
        keys.pop((path, key), None)
        keys[(path, key)] = entry
        # Bounded like the emails: past the cap, the oldest keys (the first to expire) go first.
        while len(keys) > _MAX_STORED:
            del keys[next(iter(keys))]

    def reset(self, namespace: str | None) -> None:
        if namespace is None:
            self.emails.clear()
            self.keys.clear()
        else:
            self.emails.pop(namespace, None)
            self.keys.pop(namespace, None)


def _created_at() -> str:
    # Resend's format: "2026-04-03 22:13:42.674981+00".
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


class ResendService(Service):
    """Sends, batches and retrieves emails like Resend's API, with its validation, errors and idempotency."""

    name = "resend"
    message = True
    label = "Resend"
    color = "#495057"
    hosts = ("api.resend.com",)
    urls = {
        "resend_base": AppUrl(
            path="", description="the API root: `RESEND_BASE_URL` (Node SDK), `resend.api_url` (Python SDK)"
        )
    }
    env = (
        EnvVar(name="RESEND_BASE_URL", value="{urls.resend_base}", description="read by the Node SDK"),
        EnvVar(name="RESEND_API_URL", value="{urls.resend_base}", description="read by the Python SDK at import"),
        EnvVar(name="RESEND_API_KEY", value="re_mockhub"),
    )
    fields = DataFields(
        to=("to", "cc", "bcc"),
        text=("subject", "text", "html", "contents"),
        subject=("subjects", "subject"),
    )
    stub_reply = ResendReply

    @classmethod
    def summarize(cls, call: Call) -> str:
        data = call.data
        if data.get("error"):
            return f"{data['error']}: {data.get('message', '')}"
        if data.get("replay_of"):
            return f"idempotent replay of {', '.join(data['replay_of'])}"
        if data.get("action"):
            return f"{data['action']} {data.get('id', 'emails')}"
        if isinstance(data.get("emails"), list):
            return f"batch of {len(data['emails'])}: {email_summary(call)}"
        if data.get("to"):
            return email_summary(call)
        return default_summary(call)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keys = self.ctx.pinned
        self._store = _Store()

    def routes(self) -> list[Route]:
        return [
            route("POST", "/emails/batch", self.send_batch, self.parse_batch),
            route("POST", "/emails", self.send, self.parse_send),
            # A `reply` stub says what became of the emails a send makes; these routes render none.
            route("GET", "/emails", self.list_emails, self.parse_list, reply_stubs=False),
            route("GET", "/emails/{email_id}", self.get, self.parse_get, reply_stubs=False),
            route("PATCH", "/emails/{email_id}", self.update, self.parse_update, reply_stubs=False),
            route("POST", "/emails/{email_id}/cancel", self.cancel, self.parse_get, reply_stubs=False),
        ]

    def reset(self, namespace: str | None) -> None:
        self._store.reset(namespace)

    # -- parsing -----------------------------------------------------------------------------
    def _authorize(self, request: Request) -> None:
        auth = request.headers.get("authorization", "")
        scheme, _, key = auth.strip().partition(" ")
        key = key.strip()
        if not auth.strip() or (scheme.lower() == "bearer" and not key):
            raise _reject(401, "missing_api_key", "Missing API key in the authorization header.")
        if (
            scheme.lower() != "bearer"
            or not key.startswith("re_")
            or (self._keys is not None and key not in self._keys)
        ):
            raise _reject(400, "validation_error", "API key is invalid")

    def _idempotency_key(self, request: Request) -> str | None:
        key = request.headers.get("idempotency-key")
        if key is not None and not 1 <= len(key) <= _MAX_IDEMPOTENCY_KEY:
            raise _reject(
                400,
                "invalid_idempotency_key",
                "Idempotency keys, if present, must have between 1 and 256 characters.",
            )
        return key

    def _body(self, request: Request) -> Any:
        try:
            return request.json()
        except ValueError as exc:
            raise _reject(
                400, "validation_error", f"Invalid JSON in the request body: {exc}", {"error": "invalid_json"}
            ) from None

    def _replay(self, request: Request, key: str | None, payload: Any) -> dict[str, Any] | None:
        """The `data` of a repeated idempotent request (its answer replayed), or 409 for another body."""
        if key is None:
            return None
        fingerprint = _fingerprint(payload)
        found = self._store.remembered(request.namespace, request.path, key)
        if found is None:
            return None
        if found.fingerprint != fingerprint:
            raise _reject(
                409,
                "invalid_idempotent_request",
                "This idempotency key has been used with this HTTP method and endpoint within the last 24 hours, "
                "but the request body was modified and doesn't match the original request.",
                {"idempotency_key": key},
            )
        return {"idempotency_key": key, "replay_of": found.ids}

    def parse_send(self, request: Request) -> dict[str, Any]:
        self._authorize(request)
        key = self._idempotency_key(request)
        payload = self._body(request)
        if not isinstance(payload, dict):
            raise _reject(422, "validation_error", "The request body must be a JSON object.")
        try:
            data = _email(payload, batch=False)
        except _Rejected as exc:
            raise _reject(exc.status, exc.name, exc.message, _partial(payload)) from None
        replay = self._replay(request, key, payload)
        if replay is not None:
            return replay
        if key is not None:
            data["idempotency_key"] = key
        return data

    def parse_batch(self, request: Request) -> dict[str, Any]:
        self._authorize(request)
        key = self._idempotency_key(request)
        payload = self._body(request)
        if not isinstance(payload, list):
            raise _reject(422, "validation_error", "The request body must be an array of emails.")
        permissive = (request.headers.get("x-batch-validation") or "strict").strip().lower() == "permissive"
        if not payload:
            raise _reject(422, "validation_error", "The batch must contain at least one email.")
        if len(payload) > _MAX_BATCH and not permissive:
            raise _reject(422, "validation_error", f"Too many emails in the batch: the maximum is {_MAX_BATCH}.")
        emails: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for index, email in enumerate(payload):
            try:
                if index >= _MAX_BATCH:
                    raise _Rejected(
                        422, "validation_error", f"Too many emails in the batch: the maximum is {_MAX_BATCH}."
                    )
                emails.append({"index": index, **_email(email, batch=True)})
            except _Rejected as exc:
                if not permissive:
                    raise _reject(exc.status, exc.name, exc.message, {"index": index}) from None
                errors.append({"index": index, "message": exc.message})
        replay = self._replay(request, key, payload)
        if replay is not None:
            return replay
        data: dict[str, Any] = {
            "emails": emails,
            "batch_validation": "permissive" if permissive else "strict",
            **_combined(emails),
        }
        if errors:
            data["errors"] = errors
        if key is not None:
            data["idempotency_key"] = key
        return data

    def parse_get(self, request: Request) -> dict[str, Any]:
        """GET /emails/{id} and POST /emails/{id}/cancel: a key and an id that is a UUID."""
        self._authorize(request)
        email_id = request.path_params["email_id"]
        action = "cancel" if request.path.endswith("/cancel") else "get"
        if not _UUID.match(email_id):
            raise _reject(422, "invalid_parameter", "The `id` must be a valid UUID.", {"id": email_id})
        return {"action": action, "id": email_id}

    def parse_update(self, request: Request) -> dict[str, Any]:
        data = self.parse_get(request)
        payload = self._body(request)
        scheduled = payload.get("scheduled_at") if isinstance(payload, dict) else None
        if scheduled is None:
            raise _reject(422, "missing_required_field", "Missing `scheduled_at` field.", data)
        try:
            data["scheduled_at"] = _scheduled_at(scheduled)
        except _Rejected as exc:
            raise _reject(exc.status, exc.name, exc.message, data) from None
        data["action"] = "update"
        return data

    def parse_list(self, request: Request) -> dict[str, Any]:
        self._authorize(request)
        query = {k: v[-1] for k, v in request.query.items()}
        data: dict[str, Any] = {"action": "list"}
        limit = query.get("limit", "20")
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            raise _reject(422, "validation_error", "The `limit` parameter must be a number between 1 and 100.", data)
        data["limit"] = int(limit)
        if "after" in query and "before" in query:
            raise _reject(
                422,
                "validation_error",
                "You can only use either the `after` or the `before` parameter, not both.",
                data,
            )
        for cursor in ("after", "before"):
            if cursor in query:
                data[cursor] = query[cursor]
        return data

    # -- answering ---------------------------------------------------------------------------
    def _last_event(self, request: Request, email: dict[str, Any]) -> str:
        reply = request.stub.reply if request.stub is not None else None
        chosen = ResendReply.model_validate(reply.model_extra or {}).last_event if reply is not None else None
        if chosen:
            return chosen
        if email.get("scheduled_at"):
            return "scheduled"
        for address in email["to"]:
            outcome = _TEST_OUTCOMES.get(re.sub(r"\+[^@]*@", "@", address.lower()))
            if outcome:
                return outcome
        return "delivered"

    def _deliver(self, request: Request, email: dict[str, Any], sent: dict[str, Any]) -> str:
        """Give `email` (one email's `data`) an id and keep it, as `sent`, for GET; returns the id."""
        email_id = str(uuid.uuid4())
        email["id"] = email_id
        email["last_event"] = self._last_event(request, email)
        self._store.add(
            request.namespace,
            {
                "object": "email",
                "id": email_id,
                "message_id": f"<{email_id}@email.resend.dev>",
                "to": _as_list(sent.get("to")),
                "from": sent.get("from"),
                "created_at": _created_at(),
                "subject": sent.get("subject"),
                "html": sent.get("html"),
                "text": sent.get("text"),
                "bcc": _as_list(sent.get("bcc")),
                "cc": _as_list(sent.get("cc")),
                "reply_to": _as_list(sent.get("reply_to")),
                "last_event": email["last_event"],
                "scheduled_at": sent.get("scheduled_at"),
                "tags": sent.get("tags") or [],
            },
        )
        return email_id

    def _answer(self, request: Request, payload: Any, body: dict[str, Any], ids: list[str]) -> Reply:
        raw = orjson.dumps(body)
        key = request.data.get("idempotency_key")
        if key is not None:
            expires = time.monotonic() + _IDEMPOTENCY_TTL_S
            self._store.remember(
                request.namespace, request.path, key, _Remembered(_fingerprint(payload), raw, ids, expires)
            )
        return Reply(200, raw, [("content-type", "application/json"), *_RATE_HEADERS])

    def _replayed(self, request: Request) -> Reply | None:
        data = request.data
        if not data.get("replay_of"):
            return None
        found = self._store.remembered(request.namespace, request.path, data["idempotency_key"])
        if found is None:  # forgotten by a reset between parse and answer
            return _error(
                409,
                "concurrent_idempotent_requests",
                "There is another request in progress with the same idempotency key.",
            )
        return Reply(200, found.body, [("content-type", "application/json"), *_RATE_HEADERS])

    async def send(self, request: Request) -> Reply:
        replayed = self._replayed(request)
        if replayed is not None:
            return replayed
        # The body parsed before (the parser accepted it), read again rather than carried in `data`.
        payload = request.json()
        email_id = self._deliver(request, request.data, payload)
        return self._answer(request, payload, {"id": email_id}, [email_id])

    async def send_batch(self, request: Request) -> Reply:
        replayed = self._replayed(request)
        if replayed is not None:
            return replayed
        payload = request.json()
        emails = request.data["emails"]
        ids = [self._deliver(request, email, payload[email["index"]]) for email in emails]
        request.data["ids"] = ids
        body: dict[str, Any] = {"data": [{"id": i} for i in ids]}
        if request.data["batch_validation"] == "permissive":
            body["errors"] = request.data.get("errors", [])
        return self._answer(request, payload, body, ids)

    async def get(self, request: Request) -> Reply:
        email = self._store.get(request.namespace, request.data["id"])
        if email is None:
            raise _reject(404, "not_found", "Email not found")
        return Reply(200, orjson.dumps(email), [("content-type", "application/json"), *_RATE_HEADERS])

    async def list_emails(self, request: Request) -> Reply:
        data = request.data
        newest_first = self._store.newest_first(request.namespace)
        ids = [e["id"] for e in newest_first]
        start, end = 0, len(newest_first)
        for cursor in ("after", "before"):
            if cursor in data:
                if data[cursor] not in ids:
                    raise _reject(404, "not_found", "Email not found")
                at = ids.index(data[cursor])
                start, end = (at + 1, len(ids)) if cursor == "after" else (0, at)
        window = newest_first[start:end]
        # `before` pages towards the newest: the emails just before the cursor.
        page = window[-data["limit"] :] if "before" in data else window[: data["limit"]]
        body = {
            "object": "list",
            "has_more": len(window) > len(page),
            "data": [{k: v for k, v in e.items() if k not in ("object", "html", "text", "tags")} for e in page],
        }
        return Reply(200, orjson.dumps(body), [("content-type", "application/json"), *_RATE_HEADERS])

    def _scheduled(self, request: Request) -> dict[str, Any]:
        email = self._store.get(request.namespace, request.data["id"])
        if email is None:
            raise _reject(404, "not_found", "Email not found")
        if email["last_event"] != "scheduled":
            raise _reject(422, "validation_error", "Only scheduled emails can be updated or canceled.")
        return email

    async def cancel(self, request: Request) -> Reply:
        email = self._scheduled(request)
        email["last_event"] = "canceled"
        return json_reply({"object": "email", "id": email["id"]}, 200, list(_RATE_HEADERS))

    async def update(self, request: Request) -> Reply:
        email = self._scheduled(request)
        email["scheduled_at"] = request.data["scheduled_at"]
        return json_reply({"object": "email", "id": email["id"]}, 200, list(_RATE_HEADERS))

    # -- errors ------------------------------------------------------------------------------
    def error(self, status: int, message: str, code: str | None = None) -> Reply:
        if status == 405 or code == "method_not_allowed":
            return _error(405, "method_not_allowed", "Method is not allowed for the requested path.")
        name = {
            400: "validation_error",
            401: "missing_api_key",
            403: "invalid_api_key",
            404: "not_found",
            409: "invalid_idempotent_request",
            422: "validation_error",
            429: "rate_limit_exceeded",
            503: "service_unavailable",
        }.get(status, "application_error" if status >= 500 else "validation_error")
        return _error(status, name, message)

    def preset(self, name: Preset, request: Request) -> Reply:
        if name == "rate_limited":
            return _error(
                429,
                "rate_limit_exceeded",
                "Too many requests. Please limit the number of requests per second. Or contact support to increase "
                "rate limit.",
                [
                    ("ratelimit-limit", "10"),
                    ("ratelimit-remaining", "0"),
                    ("ratelimit-reset", "1"),
                    ("retry-after", "1"),
                ],
            )
        if name == "server_error":
            return _error(500, "application_error", "An unexpected error occurred.")
        if name == "unauthorized":
            return _error(403, "invalid_api_key", "API key is invalid")
        # unavailable, overloaded
        return _error(503, "service_unavailable", "API is temporarily unavailable")


def _fingerprint(payload: Any) -> str:
    """The same request body, however its keys are ordered."""
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _partial(payload: dict[str, Any]) -> dict[str, Any]:
    """What a rejected email still tells (its subject and recipients), so a test can find the attempt."""
    found: dict[str, Any] = {}
    if isinstance(payload.get("subject"), str):
        found["subject"] = payload["subject"]
    for key in ("to", "cc", "bcc"):
        value = payload.get(key)
        values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        bare = [parsed[0] for v in values if isinstance(v, str) and (parsed := _mailbox(v)) is not None]
        if bare:
            found[key] = bare
    return found


def _combined(emails: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch's recipients, subjects and contents at the top of `data`, for the common filters."""
    combined: dict[str, Any] = {}
    for key in ("to", "cc", "bcc"):
        combined[key] = list(dict.fromkeys(a for email in emails for a in email.get(key, [])))
    subjects = list(dict.fromkeys(e["subject"] for e in emails if e.get("subject")))
    if subjects:
        combined["subject"] = subjects[0]
        combined["subjects"] = subjects
    parts = [e[k] for e in emails for k in ("subject", "text", "html") if isinstance(e.get(k), str)]
    if parts:
        combined["contents"] = "\n\n".join(parts)
    return combined
