"""The Microsoft Teams and Discord webhook fakes, driven with httpx the way an application posts to
them, and with the third-party `discord-webhook` client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support import calls, extra_hub

from mockhub.server import ThreadedHub

TEAMS = "/teams/webhookb2/0a1b2c3d-0000-4000-8000-000000000000@tenant/IncomingWebhook/abc123/def456"
WEBHOOK_ID = "1234567890123456789"
DISCORD = f"/api/webhooks/{WEBHOOK_ID}/s3cr3t-t0ken"


# -- Teams ---------------------------------------------------------------------------------------


def test_teams_message_card(api: httpx.Client) -> None:
    card = {
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "themeColor": "FF0000",
        "summary": "Disk alert",
        "title": "Disk full on db-1",
        "text": "Free space is **0%**",
        "sections": [{"activityTitle": "db-1", "facts": [{"name": "free", "value": "0%"}]}],
    }
    r = api.post(TEAMS, json=card)
    assert r.status_code == 200
    assert r.text == "1"
    [call] = calls(api, "teams")
    data = call["data"]
    assert data["card_type"] == "MessageCard"
    assert data["title"] == "Disk full on db-1"
    assert data["summary"] == "Disk alert"
    assert data["text"] == "Free space is **0%**"
    assert data["theme_color"] == "FF0000"
    assert data["sections"][0]["facts"][0]["value"] == "0%"
    assert data["webhook"] == TEAMS.removeprefix("/teams/")
    assert calls(api, "teams", contains="Free space") != []


def test_teams_adaptive_card(api: httpx.Client) -> None:
    message = {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "text": "CPU high on web-3", "weight": "Bolder"},
                        {"type": "FactSet", "facts": [{"title": "load", "value": "12.5"}]},
                        {"type": "Container", "items": [{"type": "TextBlock", "text": "since 10:02"}]},
                    ],
                },
            }
        ],
    }
    r = api.post(TEAMS, json=message)
    assert (r.status_code, r.text) == (200, "1")
    data = calls(api, "teams")[0]["data"]
    assert data["card_type"] == "AdaptiveCard"
    assert data["title"] == "CPU high on web-3"
    assert data["text"].splitlines() == ["CPU high on web-3", "load: 12.5", "since 10:02"]
    assert data["attachments"][0]["type"] == "AdaptiveCard"


def test_teams_card_without_summary_or_text_is_rejected(api: httpx.Client) -> None:
    r = api.post(TEAMS, json={"@type": "MessageCard", "title": "only a title"})
    assert r.status_code == 400
    assert r.text == "Summary or Text is required."
    r = api.post(TEAMS, json={"type": "message", "attachments": []})
    assert r.status_code == 400
    recorded = calls(api, "teams")
    assert [c["response"]["status"] for c in recorded] == [400, 400]
    assert recorded[0]["data"]["title"] == "only a title"


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'["a list"]',
        b'{"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive"}]}',
        b'{"attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": {"type": "Hero"}}]}',
    ],
)
def test_teams_bad_payloads(api: httpx.Client, body: bytes) -> None:
    r = api.post(TEAMS, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.text == "Bad payload received by generic incoming webhook."
    assert calls(api, "teams")[0]["response"]["status"] == 400


def test_teams_message_over_28_kb(api: httpx.Client) -> None:
    r = api.post(TEAMS, json={"text": "x" * 30_000})
    assert r.status_code == 413
    assert "HTTP error 413" in r.text


def test_teams_rate_limited_preset(api: httpx.Client) -> None:
    api.post("/faults", json={"service": "teams", "preset": "rate_limited"}).raise_for_status()
    r = api.post(TEAMS, json={"text": "hello"})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1"
    assert "Microsoft Teams endpoint returned HTTP error 429" in r.text
    assert api.post(TEAMS, json={"text": "hello"}).text == "1"  # the fault fired once


# -- Discord -------------------------------------------------------------------------------------


def test_discord_execute_webhook(api: httpx.Client) -> None:
    r = api.post(DISCORD, json={"content": "deploy finished", "username": "ci-bot", "avatar_url": "https://x/a.png"})
    assert r.status_code == 204
    assert r.content == b""
    assert r.headers["x-ratelimit-limit"] == "5"
    assert int(r.headers["x-ratelimit-remaining"]) >= 0
    [call] = calls(api, "discord")
    assert call["data"]["content"] == "deploy finished"
    assert call["data"]["username"] == "ci-bot"
    assert call["data"]["webhook_id"] == WEBHOOK_ID
    assert call["data"]["wait"] is False
    # The webhook is the channel: `to` finds the calls to one webhook.
    assert len(calls(api, "discord", to=WEBHOOK_ID)) == 1
    assert calls(api, "discord", to="999") == []


def test_discord_wait_true_returns_the_message(api: httpx.Client) -> None:
    embed = {"title": "CPU high", "description": "web-3 at 98%", "color": 0xFF0000}
    r = api.post(f"{DISCORD}?wait=true&thread_id=42", json={"content": "alert", "embeds": [embed], "tts": False})
    assert r.status_code == 200
    message = r.json()
    assert message["content"] == "alert"
    assert message["embeds"] == [embed]
    assert message["webhook_id"] == WEBHOOK_ID
    assert message["channel_id"] == "42"
    assert message["author"]["bot"] is True
    assert message["author"]["username"] == "Captain Hook"
    assert message["id"].isdigit()
    # A snowflake encodes its creation time (ms since the Discord epoch, 2015-01-01).
    created = ((int(message["id"]) >> 22) + 1_420_070_400_000) / 1000
    assert abs(created - time.time()) < 60
    assert calls(api, "discord")[0]["data"]["thread_id"] == "42"


def test_discord_messages_sent_with_wait_can_be_fetched_edited_and_deleted(api: httpx.Client) -> None:
    sent = api.post(f"{DISCORD}?wait=true", json={"content": "deploy started"}).json()
    url = f"{DISCORD}/messages/{sent['id']}"
    assert api.get(url).json() == sent
    assert calls(api, "discord", method="POST")[0]["data"]["message_id"] == sent["id"]

    edited = api.patch(url, json={"content": "deploy finished", "embeds": [{"title": "ok"}]})
    assert edited.status_code == 200
    assert edited.json()["id"] == sent["id"]
    assert edited.json()["content"] == "deploy finished"
    assert edited.json()["embeds"] == [{"title": "ok"}]
    assert sent["edited_timestamp"] is None and edited.json()["edited_timestamp"] is not None
    assert api.get(f"/api/v10/webhooks/{WEBHOOK_ID}/s3cr3t-t0ken/messages/{sent['id']}").json() == edited.json()
    [patch] = calls(api, "discord", method="PATCH")
    assert patch["data"]["content"] == "deploy finished"
    assert patch["data"]["message_id"] == sent["id"]

    assert api.delete(url).status_code == 204
    for gone in (api.get(url), api.delete(url), api.patch(url, json={"content": "again"})):
        assert gone.status_code == 404
        assert gone.json() == {"message": "Unknown Message", "code": 10008}
    assert calls(api, "discord", method="DELETE")[-1]["data"]["error"] == "unknown_message"


def test_discord_message_edits_are_checked_and_scoped(api: httpx.Client) -> None:
    sent = api.post(f"{DISCORD}?wait=true", json={"content": "only text"}).json()
    url = f"{DISCORD}/messages/{sent['id']}"
    emptied = api.patch(url, json={"content": ""})
    assert emptied.status_code == 400
    assert emptied.json()["code"] == 50006
    too_long = api.patch(url, json={"content": "x" * 2001})
    assert too_long.status_code == 400
    assert too_long.json()["code"] == 50035
    assert api.get(url).json()["content"] == "only text"  # refused edits change nothing
    # Another namespace, another webhook id, or a message sent without ?wait: unknown.
    assert api.get(f"/ns/elsewhere{url}").status_code == 404
    assert api.get(f"/api/webhooks/42/s3cr3t-t0ken/messages/{sent['id']}").status_code == 404
    assert api.post(DISCORD, json={"content": "fire and forget"}).status_code == 204
    # POST /reset forgets the stored messages with the calls.
    api.post("/reset").raise_for_status()
    assert api.get(url).status_code == 404


def test_discord_embeds_only_and_versioned_path(api: httpx.Client) -> None:
    r = api.post(f"/api/v10/webhooks/{WEBHOOK_ID}/tok", json={"embeds": [{"title": "just an embed"}]})
    assert r.status_code == 204
    assert calls(api, "discord")[0]["data"]["embeds"] == [{"title": "just an embed"}]


def test_discord_multipart_with_files(api: httpx.Client) -> None:
    log = b"line 1\nline 2\n\x00\xff binary tail"
    r = api.post(
        f"{DISCORD}?wait=true",
        data={"payload_json": '{"content": "logs attached", "username": "ops"}'},
        files={"files[0]": ("build.log", log, "text/plain")},
    )
    assert r.status_code == 200
    message = r.json()
    assert message["content"] == "logs attached"
    assert message["attachments"][0]["filename"] == "build.log"
    assert message["attachments"][0]["size"] == len(log)
    data = calls(api, "discord")[0]["data"]
    assert data["attachments"] == [{"filename": "build.log", "content_type": "text/plain", "size": len(log)}]
    assert data["username"] == "ops"
    download = api.get(f"/calls/{calls(api, 'discord')[0]['id']}/attachments/0")
    assert download.content == log and download.headers["content-type"].startswith("text/plain")


def test_discord_form_encoded(api: httpx.Client) -> None:
    assert api.post(DISCORD, data={"content": "from a form"}).status_code == 204
    assert calls(api, "discord")[0]["data"]["content"] == "from a form"


def test_discord_empty_message(api: httpx.Client) -> None:
    for body in ({}, {"content": ""}, {"content": "   ", "embeds": []}):
        r = api.post(DISCORD, json=body)
        assert r.status_code == 400
        assert r.json() == {"message": "Cannot send an empty message", "code": 50006}
    assert [c["data"]["error"] for c in calls(api, "discord")] == ["empty_message"] * 3


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"content": "x" * 2001}, "content", "BASE_TYPE_MAX_LENGTH"),
        ({"embeds": [{"title": str(i)} for i in range(11)]}, "embeds", "BASE_TYPE_MAX_LENGTH"),
        ({"content": "hi", "username": "Discord Bot"}, "username", "USERNAME_INVALID_CONTAINS"),
    ],
)
def test_discord_invalid_form_body(api: httpx.Client, body: dict[str, Any], field: str, code: str) -> None:
    r = api.post(DISCORD, json=body)
    assert r.status_code == 400
    error = r.json()
    assert error["code"] == 50035
    assert error["message"] == "Invalid Form Body"
    assert error["errors"][field]["_errors"][0]["code"] == code


def test_discord_invalid_json_and_bad_webhook_id(api: httpx.Client) -> None:
    r = api.post(DISCORD, content=b"{oops", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["code"] == 50109
    r = api.post("/api/webhooks/not-a-number/tok", json={"content": "x"})
    assert r.status_code == 400
    assert r.json()["errors"]["webhook_id"]["_errors"][0]["code"] == "NUMBER_TYPE_COERCE"
    assert len(calls(api, "discord")) == 2


def test_discord_rate_limit_preset_and_a_client_that_honours_it(api: httpx.Client) -> None:
    api.post("/faults", json={"service": "discord", "preset": "rate_limited", "times": 2}).raise_for_status()
    statuses = []
    for _ in range(5):  # what a Discord client does: sleep retry_after seconds, then try again
        r = api.post(DISCORD, json={"content": "eventually"})
        statuses.append(r.status_code)
        if r.status_code != 429:
            break
        body = r.json()
        assert body["message"] == "You are being rate limited."
        assert body["global"] is False
        assert r.headers["x-ratelimit-remaining"] == "0"
        assert r.headers["x-ratelimit-scope"] == "user"
        assert float(r.headers["x-ratelimit-reset-after"]) == body["retry_after"]
        assert int(r.headers["retry-after"]) >= 1
        time.sleep(body["retry_after"])
    assert statuses == [429, 429, 204]
    assert [c["fault"] is not None for c in calls(api, "discord")] == [True, True, False]


def test_discord_webhook_client_retries_a_429_because_every_answer_carries_via(
    api: httpx.Client, base_url: str
) -> None:
    # discord-webhook (like discord.py) takes a 429 without `Via` for a Cloudflare ban and raises
    # instead of retrying; Discord's own answers all come with `Via: 1.1 google`.
    from discord_webhook import DiscordWebhook

    api.post("/faults", json={"service": "discord", "preset": "rate_limited", "times": 1}).raise_for_status()
    hook = DiscordWebhook(url=f"{base_url}{DISCORD}", content="after one 429", rate_limit_retry=True)
    assert hook.execute().ok
    # A fault's own 429 (status and body of the test's choosing) is answered as Discord would, too.
    api.post(
        "/faults",
        json={"service": "discord", "status": 429, "body": '{"message": "slow down", "retry_after": 0.05}', "times": 1},
    ).raise_for_status()
    assert DiscordWebhook(url=f"{base_url}{DISCORD}", content="again", rate_limit_retry=True).execute().ok
    assert [c["response"]["status"] // 100 for c in calls(api, "discord")] == [4, 2, 4, 2]

    for r in (
        api.post(DISCORD, json={"content": "ok"}),
        api.post(DISCORD, json={}),
        api.post(DISCORD, content=b"{not json", headers={"content-type": "application/json"}),
        api.get(f"/api/webhooks/{WEBHOOK_ID}/s3cr3t-t0ken/messages/1"),
    ):
        assert r.headers["via"] == "1.1 google", r.status_code
        assert r.headers["x-ratelimit-limit"] == "5" and "x-ratelimit-reset-after" in r.headers


def test_discord_get_webhook_and_namespace(api: httpx.Client) -> None:
    r = api.get(f"/ns/chat-ns{DISCORD}")
    assert r.status_code == 200
    assert r.json()["id"] == WEBHOOK_ID
    assert r.json()["token"] == "s3cr3t-t0ken"
    assert calls(api, "discord", namespace="chat-ns")[0]["method"] == "GET"


@pytest.fixture(scope="module")
def pinned() -> Iterator[ThreadedHub]:
    with extra_hub(credentials="good-token", max_body_bytes=64 * 1024) as running:
        yield running


def test_discord_pinned_tokens(pinned: ThreadedHub) -> None:
    with httpx.Client(base_url=pinned.url) as client:
        r = client.post(f"/api/webhooks/{WEBHOOK_ID}/bad-token", json={"content": "x"})
        assert r.status_code == 401
        assert r.json() == {"message": "Invalid Webhook Token", "code": 50027}
        assert client.post(f"/api/webhooks/{WEBHOOK_ID}/good-token", json={"content": "x"}).status_code == 204


def test_discord_body_too_large(pinned: ThreadedHub) -> None:
    with httpx.Client(base_url=pinned.url) as client:
        r = client.post(
            f"/api/webhooks/{WEBHOOK_ID}/good-token",
            data={"payload_json": '{"content": "big"}'},
            files={"files[0]": ("big.bin", b"x" * 100_000)},
        )
        assert r.status_code == 413
        assert r.json() == {"message": "Request entity too large", "code": 40005}
