"""The Slack fake's inbound requests to an app: interactions, slash commands and Events API events.

Slack signs every request to an app's Request URL with its signing secret: `X-Slack-Signature` is
`v0=` + hex HMAC-SHA256 of `v0:{X-Slack-Request-Timestamp}:{raw body}` (what
`slack_sdk.signature.SignatureVerifier` checks, refusing timestamps more than five minutes old).
Interactions arrive form-encoded as one `payload=` JSON field, slash commands as form fields,
events as JSON (`event_callback`, or the `url_verification` handshake). A `response_url` points
back at the Slack fake's incoming-webhook route, so what the app posts there is recorded too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any, Literal
from urllib.parse import urlencode

import orjson
from pydantic import AliasChoices, ConfigDict, Field, model_validator

from mockhub.services.base import Simulated, SimulationBody, SimulationContext

__all__ = ["EventBody", "InteractionBody", "SlashCommandBody", "event", "interaction", "slash_command"]

_USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"


class _SlackBody(SimulationBody):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    signing_secret: str = Field(
        min_length=1,
        validation_alias=AliasChoices("signing_secret", "secret"),
        description="the app's signing secret (signs X-Slack-Signature); `secret` also names it",
    )
    timestamp: int | None = Field(
        None, description="X-Slack-Request-Timestamp (default: now); an old one tests replay checks"
    )
    team_id: str = "T000"
    team_domain: str = "mockhub"
    user_id: str = Field("U000", validation_alias=AliasChoices("user_id", "user"))
    user_name: str = "mockhub-user"
    channel_id: str = Field("C000", validation_alias=AliasChoices("channel_id", "channel"))
    channel_name: str = "general"
    api_app_id: str = "A000"
    token: str = Field("mockhub-verification-token", description="the legacy verification token")


class InteractionBody(_SlackBody):
    """A click on a Block Kit element (block_actions), a shortcut, or a modal submission."""

    type: Literal["block_actions", "shortcut", "message_action", "view_submission"] = "block_actions"
    action_id: str = "button"
    block_id: str = "actions"
    value: str = ""
    action_type: str = Field("button", description="the element's type: button, static_select, ...")
    text: str = Field("Click", description="the button's label")
    callback_id: str = Field("callback", description="a shortcut's or modal's callback_id")
    message_ts: str | None = Field(None, description="the ts of the message holding the element (default: new)")
    values: dict[str, Any] = Field(default_factory=dict, description="view_submission: view.state.values")
    payload: dict[str, Any] = Field(
        default_factory=dict, description="top-level keys replacing or adding to the built payload"
    )


class SlashCommandBody(_SlackBody):
    """A slash command typed by a user: `/command text`."""

    command: str = Field("/mockhub", pattern=r"^/\S+$")
    text: str = ""


class EventBody(_SlackBody):
    """An Events API event (`event_callback`), or the `url_verification` handshake."""

    type: Literal["event_callback", "url_verification"] = "event_callback"
    event_type: str = Field("message", description="event.type when `event` is not given: message, app_mention, ...")
    text: str = ""
    event: dict[str, Any] | None = Field(None, description="the whole inner event (replaces the built one)")
    challenge: str | None = Field(None, description="url_verification: the challenge (default: random)")

    @model_validator(mode="before")
    @classmethod
    def _event_type_as_type(cls, value: Any) -> Any:
        # `"type": "app_mention"` names the inner event: only the two envelope types are envelopes.
        envelope = (None, "event_callback", "url_verification")
        if isinstance(value, dict) and value.get("type") not in envelope and "event_type" not in value:
            value = {**value, "event_type": value["type"]}
            del value["type"]
        return value


def _signed(secret: str, timestamp: int | None, content: bytes, content_type: str) -> dict[str, str]:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + content, hashlib.sha256).hexdigest()
    return {
        "content-type": content_type,
        "x-slack-request-timestamp": ts,
        "x-slack-signature": f"v0={digest}",
        "user-agent": _USER_AGENT,
        "accept": "application/json,*/*",
    }


def _ts() -> str:
    return f"{time.time():.6f}"


def _response_url(body: _SlackBody, where: SimulationContext) -> str:
    # The Slack fake's incoming-webhook route: what the app answers there is recorded as a slack call.
    return f"{where.base_url}/services/{body.team_id}/B000/response-{secrets.token_hex(8)}"


def _trigger_id() -> str:
    return f"{int(time.time())}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"


def interaction(body: InteractionBody, where: SimulationContext) -> Simulated:
    user = {"id": body.user_id, "username": body.user_name, "name": body.user_name, "team_id": body.team_id}
    team = {"id": body.team_id, "domain": body.team_domain}
    payload: dict[str, Any] = {
        "type": body.type,
        "user": user,
        "api_app_id": body.api_app_id,
        "token": body.token,
        "team": team,
        "enterprise": None,
        "is_enterprise_install": False,
        "trigger_id": _trigger_id(),
    }
    if body.type == "block_actions":
        ts = body.message_ts or _ts()
        payload.update(
            {
                "container": {
                    "type": "message",
                    "message_ts": ts,
                    "channel_id": body.channel_id,
                    "is_ephemeral": False,
                },
                "channel": {"id": body.channel_id, "name": body.channel_name},
                "message": {"type": "message", "ts": ts, "user": body.user_id, "text": "", "blocks": []},
                "state": {"values": body.values},
                "response_url": _response_url(body, where),
                "actions": [
                    {
                        "action_id": body.action_id,
                        "block_id": body.block_id,
                        "text": {"type": "plain_text", "text": body.text, "emoji": True},
                        "value": body.value,
                        "type": body.action_type,
                        "action_ts": _ts(),
                    }
                ],
            }
        )
    elif body.type == "shortcut":
        payload.update({"callback_id": body.callback_id, "action_ts": _ts()})
    elif body.type == "message_action":
        ts = body.message_ts or _ts()
        payload.update(
            {
                "callback_id": body.callback_id,
                "action_ts": _ts(),
                "message_ts": ts,
                "channel": {"id": body.channel_id, "name": body.channel_name},
                "message": {"type": "message", "ts": ts, "user": body.user_id, "text": ""},
                "response_url": _response_url(body, where),
            }
        )
    else:  # view_submission
        payload.update(
            {
                "view": {
                    "id": "V" + secrets.token_hex(5).upper(),
                    "type": "modal",
                    "callback_id": body.callback_id,
                    "team_id": body.team_id,
                    "app_id": body.api_app_id,
                    "state": {"values": body.values},
                    "private_metadata": "",
                },
                "response_urls": [],
            }
        )
    payload.update(body.payload)
    content = urlencode({"payload": orjson.dumps(payload).decode()}).encode()
    headers = _signed(body.signing_secret, body.timestamp, content, "application/x-www-form-urlencoded")
    data = {
        "type": body.type,
        "action_id": body.action_id if body.type == "block_actions" else None,
        "value": body.value if body.type == "block_actions" else None,
        "user": body.user_id,
        "channel": body.channel_id,
        "response_url": payload.get("response_url"),
        "payload": payload,
    }
    return Simulated(headers=headers, body=content, data=data)


def slash_command(body: SlashCommandBody, where: SimulationContext) -> Simulated:
    form = {
        "token": body.token,
        "team_id": body.team_id,
        "team_domain": body.team_domain,
        "channel_id": body.channel_id,
        "channel_name": body.channel_name,
        "user_id": body.user_id,
        "user_name": body.user_name,
        "command": body.command,
        "text": body.text,
        "api_app_id": body.api_app_id,
        "is_enterprise_install": "false",
        "response_url": _response_url(body, where),
        "trigger_id": _trigger_id(),
    }
    content = urlencode(form).encode()
    headers = _signed(body.signing_secret, body.timestamp, content, "application/x-www-form-urlencoded")
    data: dict[str, Any] = {
        "command": body.command,
        "text": body.text,
        "user": body.user_id,
        "channel": body.channel_id,
    }
    data["response_url"] = form["response_url"]
    data["form"] = form
    return Simulated(headers=headers, body=content, data=data)


def event(body: EventBody, where: SimulationContext) -> Simulated:
    payload: dict[str, Any]
    if body.type == "url_verification":
        payload = {"token": body.token, "challenge": body.challenge or secrets.token_urlsafe(32), "type": body.type}
        inner: dict[str, Any] = {}
    else:
        now = time.time()
        inner = body.event or {
            "type": body.event_type,
            "user": body.user_id,
            "text": body.text,
            "ts": _ts(),
            "channel": body.channel_id,
            "event_ts": _ts(),
            "channel_type": "channel",
        }
        payload = {
            "token": body.token,
            "team_id": body.team_id,
            "api_app_id": body.api_app_id,
            "event": inner,
            "type": "event_callback",
            "event_id": "Ev" + secrets.token_hex(5).upper(),
            "event_time": int(now),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": body.team_id,
                    "user_id": body.user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": secrets.token_hex(16),
        }
    content = orjson.dumps(payload)
    headers = _signed(body.signing_secret, body.timestamp, content, "application/json")
    data: dict[str, Any] = {
        "type": body.type,
        "event_type": inner.get("type"),
        "text": inner.get("text"),
        "channel": inner.get("channel"),
        "user": inner.get("user"),
        "payload": payload,
    }
    return Simulated(headers=headers, body=content, data=data)
