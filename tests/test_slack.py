"""The Slack fake, driven with the official `slack_sdk` (WebhookClient, WebClient) over loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial

import httpx
import pytest
import support
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler
from slack_sdk.webhook import WebhookClient
from support import extra_hub

from mockhub.server import ThreadedHub

calls = partial(support.calls, service="slack")
fault = partial(support.add_fault, service="slack")

HOOK = "/services/T0001/B0001/s3cr3t"


@pytest.fixture
def web(base_url: str) -> WebClient:
    return WebClient(token="xoxb-test-token", base_url=f"{base_url}/api/")


# -- incoming webhooks --------------------------------------------------------------------------


def test_webhook_client_send_is_recorded(base_url: str, api: httpx.Client) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*disk full* on db-1"}}]
    response = WebhookClient(base_url + HOOK).send(text="disk full on db-1", blocks=blocks)
    assert response.status_code == 200
    assert response.body == "ok"

    [call] = calls(api)
    assert call["path"] == HOOK
    assert call["response"]["status"] == 200
    data = call["data"]
    assert data["text"] == "disk full on db-1"
    assert data["blocks"] == blocks
    assert data["attachments"] is None and data["channel"] is None and data["thread_ts"] is None
    assert calls(api, contains="disk full")[0]["id"] == call["id"]


def test_webhook_extra_keys_are_accepted_and_recorded(base_url: str, api: httpx.Client) -> None:
    payload = {
        "text": "deploy done",
        "thread_ts": "1700000000.000100",
        "mrkdwn": False,
        "channel": "#deploys",
        "username": "deploy-bot",
        "icon_emoji": ":rocket:",
    }
    response = WebhookClient(base_url + HOOK).send_dict(payload)
    assert (response.status_code, response.body) == (200, "ok")
    [call] = calls(api, to="#deploys")
    assert {k: call["data"][k] for k in payload} == payload


def test_webhook_attachments_alone_are_enough(base_url: str, api: httpx.Client) -> None:
    response = WebhookClient(base_url + HOOK).send(attachments=[{"fallback": "f", "color": "danger"}])
    assert response.status_code == 200
    assert calls(api)[0]["data"]["attachments"] == [{"fallback": "f", "color": "danger"}]


def test_webhook_without_text_is_400_no_text_and_recorded(base_url: str, api: httpx.Client) -> None:
    response = WebhookClient(base_url + HOOK).send_dict({"username": "bot", "text": ""})
    assert (response.status_code, response.body) == (400, "no_text")
    [call] = calls(api)
    assert call["response"]["status"] == 400
    assert call["data"]["username"] == "bot"


def test_webhook_unparsable_payload_is_400_invalid_payload(base_url: str, api: httpx.Client) -> None:
    r = httpx.post(base_url + HOOK, content=b"{not json", headers={"content-type": "application/json"})
    assert (r.status_code, r.text) == (400, "invalid_payload")
    r = httpx.post(base_url + HOOK, json=["a", "list"])
    assert (r.status_code, r.text) == (400, "invalid_payload")
    r = httpx.post(base_url + HOOK, data={"not_payload": "x"})
    assert (r.status_code, r.text) == (400, "invalid_payload")
    assert [c["response"]["status"] for c in calls(api)] == [400, 400, 400]


def test_webhook_form_payload(base_url: str, api: httpx.Client) -> None:
    r = httpx.post(base_url + HOOK, data={"payload": json.dumps({"text": "from a form", "channel": "#ops"})})
    assert (r.status_code, r.text) == (200, "ok")
    [call] = calls(api)
    assert call["data"]["text"] == "from a form"
    assert call["data"]["channel"] == "#ops"


def test_webhook_rate_limit_is_retried_by_the_sdk_handler(base_url: str, api: httpx.Client) -> None:
    fault(api, match={"path": "/services/*"}, preset="rate_limited", times=1)
    client = WebhookClient(base_url + HOOK, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
    response = client.send(text="retry me")
    assert (response.status_code, response.body) == (200, "ok")

    first, second = calls(api)
    assert first["fault"]["preset"] == "rate_limited"
    assert first["response"]["status"] == 429
    # slack_sdk parses Retry-After with int(): it must be whole seconds.
    assert first["response"]["headers"]["retry-after"] == "1"
    assert second["fault"] is None and second["response"]["status"] == 200


def test_webhook_rate_limit_without_retry_handler(base_url: str, api: httpx.Client) -> None:
    fault(api, preset="rate_limited", times=1)
    response = WebhookClient(base_url + HOOK).send(text="hi")
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) == 1
    assert json.loads(response.body)["error"] == "rate_limited"
    assert len(calls(api)) == 1


@pytest.mark.parametrize(
    ("preset", "status", "body"),
    [
        ("server_error", 500, "internal_error"),
        ("unavailable", 503, "service_unavailable"),
        ("unauthorized", 403, "invalid_token"),
    ],
)
def test_webhook_presets(base_url: str, api: httpx.Client, preset: str, status: int, body: str) -> None:
    fault(api, preset=preset)
    response = WebhookClient(base_url + HOOK).send(text="hi")
    assert (response.status_code, response.body) == (status, body)


def test_webhook_stub_error(base_url: str, api: httpx.Client) -> None:
    stub = {"service": "slack", "match": {"path": HOOK}, "reply": {"error": "channel_is_archived"}}
    r = api.post("/stubs", json=stub)
    assert r.status_code == 201, r.text
    response = WebhookClient(base_url + HOOK).send(text="hi")
    assert (response.status_code, response.body) == (410, "channel_is_archived")


def test_webhook_namespace_prefix(base_url: str, api: httpx.Client) -> None:
    response = WebhookClient(f"{base_url}/ns/slack-ns{HOOK}").send(text="scoped")
    assert response.status_code == 200
    [call] = calls(api, namespace="slack-ns")
    assert call["path"] == HOOK
    assert calls(api, namespace="default") == []


# -- Web API ------------------------------------------------------------------------------------


def test_chat_post_message(web: WebClient, api: httpx.Client) -> None:
    response = web.chat_postMessage(channel="#alerts", text="CPU high", thread_ts="1700000000.000100")
    assert response["ok"] is True
    assert response["channel"].startswith("C")
    assert response["ts"] == response["message"]["ts"]
    assert response["message"]["text"] == "CPU high"
    assert response["message"]["thread_ts"] == "1700000000.000100"

    [call] = calls(api, to="alerts")
    assert call["path"] == "/api/chat.postMessage"
    assert call["headers"]["authorization"] == "Bearer xoxb-test-token"
    data = call["data"]
    assert (data["text"], data["channel"], data["thread_ts"]) == ("CPU high", "#alerts", "1700000000.000100")
    assert "token" not in data

    again = web.chat_postMessage(channel="#alerts", blocks=[{"type": "divider"}], text="fallback")
    assert again["channel"] == response["channel"]  # one channel name, one stable id
    assert float(again["ts"]) > float(response["ts"])
    assert again["message"]["blocks"] == [{"type": "divider"}]


def test_chat_update_and_auth_test(web: WebClient, api: httpx.Client) -> None:
    posted = web.chat_postMessage(channel="C0123456789", text="v1")
    assert posted["channel"] == "C0123456789"
    updated = web.chat_update(channel="C0123456789", ts=posted["ts"], text="v2")
    assert updated["ok"] and updated["ts"] == posted["ts"] and updated["text"] == "v2"
    assert updated["message"]["text"] == "v2"

    auth = web.auth_test()
    assert auth["ok"] and auth["team_id"] and auth["user_id"] and auth["bot_id"]
    assert [c["path"] for c in calls(api)] == ["/api/chat.postMessage", "/api/chat.update", "/api/auth.test"]


def test_missing_token_is_not_authed(base_url: str, api: httpx.Client) -> None:
    with pytest.raises(SlackApiError) as info:
        WebClient(base_url=f"{base_url}/api/").chat_postMessage(channel="#a", text="x")
    assert info.value.response.status_code == 200
    assert info.value.response["error"] == "not_authed"
    [call] = calls(api)
    assert call["data"]["error"] == "not_authed"


def test_web_api_validation_errors(web: WebClient, api: httpx.Client) -> None:
    with pytest.raises(SlackApiError) as info:
        web.chat_postMessage(channel="#a")
    assert info.value.response["error"] == "no_text"
    with pytest.raises(SlackApiError) as info:
        web.chat_update(channel="#a", ts="", text="x")
    assert info.value.response["error"] == "message_not_found"
    r = httpx.post(
        f"{web.base_url}chat.postMessage",
        content=b"{oops",
        headers={"content-type": "application/json", "authorization": "Bearer x"},
    )
    assert r.json() == {"ok": False, "error": "invalid_json"}


def test_web_api_form_body_with_token_field(base_url: str, api: httpx.Client) -> None:
    form = {"token": "xoxb-form", "channel": "#ops", "text": "form post", "blocks": json.dumps([{"type": "divider"}])}
    r = httpx.post(f"{base_url}/api/chat.postMessage", data=form)
    assert r.status_code == 200 and r.json()["ok"] is True
    assert r.json()["message"]["blocks"] == [{"type": "divider"}]
    data = calls(api)[0]["data"]
    assert data["blocks"] == [{"type": "divider"}] and data["channel"] == "#ops"
    assert "token" not in data


def test_web_api_multipart_body(web: WebClient, api: httpx.Client) -> None:
    # slack_sdk sends `data=` arguments as multipart/form-data.
    response = web.api_call("chat.postMessage", data={"channel": "#ops", "text": "multipart"})
    assert response["ok"] is True
    assert calls(api)[0]["data"]["text"] == "multipart"


def test_stub_error_raises_slack_api_error(web: WebClient, api: httpx.Client) -> None:
    stub = {"service": "slack", "match": {"to": "#nowhere"}, "reply": {"error": "channel_not_found"}}
    assert api.post("/stubs", json=stub).status_code == 201
    with pytest.raises(SlackApiError) as info:
        web.chat_postMessage(channel="#nowhere", text="x")
    assert info.value.response["error"] == "channel_not_found"
    assert web.chat_postMessage(channel="#somewhere", text="x")["ok"] is True


def test_web_api_ratelimited_raises_then_retry_handler_succeeds(base_url: str, api: httpx.Client) -> None:
    fault(api, match={"path": "/api/*"}, preset="rate_limited", times=1, headers={"Retry-After": "0"})
    client = WebClient(token="xoxb-1", base_url=f"{base_url}/api/")
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel="#a", text="x")
    assert info.value.response.status_code == 429
    assert info.value.response["error"] == "ratelimited"
    assert info.value.response.headers["Retry-After"] == "0"

    fault(api, match={"path": "/api/*"}, preset="rate_limited", times=1, headers={"Retry-After": "0"})
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    assert client.chat_postMessage(channel="#a", text="x")["ok"] is True
    statuses = [c["response"]["status"] for c in calls(api)]
    assert statuses == [429, 429, 200]


def test_web_api_rate_limit_preset_default_retry_after(web: WebClient, api: httpx.Client) -> None:
    fault(api, preset="rate_limited")
    with pytest.raises(SlackApiError) as info:
        web.auth_test()
    assert info.value.response.status_code == 429
    assert info.value.response.headers["Retry-After"] == "1"


def test_web_api_server_error_retried(base_url: str, api: httpx.Client) -> None:
    fault(api, preset="server_error", times=1)
    client = WebClient(token="xoxb-1", base_url=f"{base_url}/api/")
    client.retry_handlers.append(ServerErrorRetryHandler(max_retry_count=1))
    assert client.chat_postMessage(channel="#a", text="x")["ok"] is True
    assert [c["response"]["status"] for c in calls(api)] == [500, 200]


@pytest.mark.parametrize(
    ("preset", "status", "error"),
    [
        ("server_error", 500, "internal_error"),
        ("unavailable", 503, "service_unavailable"),
        ("unauthorized", 200, "invalid_auth"),
    ],
)
def test_web_api_presets(web: WebClient, api: httpx.Client, preset: str, status: int, error: str) -> None:
    fault(api, preset=preset)
    with pytest.raises(SlackApiError) as info:
        web.chat_postMessage(channel="#a", text="x")
    assert info.value.response.status_code == status
    assert info.value.response["error"] == error


# -- pinned credentials -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pinned() -> Iterator[ThreadedHub]:
    with extra_hub(credentials="xoxb-good, s3cr3t") as hub:
        yield hub


def test_pinned_credentials(pinned: ThreadedHub) -> None:
    assert WebClient(token="xoxb-good", base_url=f"{pinned.url}/api/").auth_test()["ok"] is True
    with pytest.raises(SlackApiError) as info:
        WebClient(token="xoxb-bad", base_url=f"{pinned.url}/api/").auth_test()
    assert info.value.response["error"] == "invalid_auth"
    assert WebhookClient(pinned.url + HOOK).send(text="x").status_code == 200
    wrong = WebhookClient(pinned.url + "/services/T0001/B0001/other").send(text="x")
    assert (wrong.status_code, wrong.body) == (403, "invalid_token")


# -- stored messages: chat.update / delete / getPermalink, conversations.history / replies -------


def _error(call: object) -> str:
    """The `error` of the SlackApiError a WebClient call raises."""
    with pytest.raises(SlackApiError) as info:
        call()  # type: ignore[operator]
    assert info.value.response.status_code == 200
    return str(info.value.response["error"])


def test_update_delete_and_permalink_of_a_posted_message(web: WebClient, api: httpx.Client) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*v1*"}}]
    posted = web.chat_postMessage(channel="#ops", text="v1", blocks=blocks)
    channel, ts = posted["channel"], posted["ts"]

    updated = web.chat_update(channel=channel, ts=ts, text="v2")
    assert (updated["channel"], updated["ts"], updated["text"]) == (channel, ts, "v2")
    # Slack keeps the previous blocks when an update does not send any.
    assert updated["message"]["blocks"] == blocks and updated["message"]["edited"]["user"]
    [listed] = web.conversations_history(channel=channel)["messages"]
    assert (listed["ts"], listed["text"], listed["blocks"]) == (ts, "v2", blocks)
    assert "edited" in listed

    link = web.chat_getPermalink(channel="#ops", message_ts=ts)
    assert link["channel"] == channel
    assert link["permalink"] == f"https://mockhub.slack.com/archives/{channel}/p{ts.replace('.', '')}"

    deleted = web.chat_delete(channel="#ops", ts=ts)
    assert (deleted["ok"], deleted["channel"], deleted["ts"]) == (True, channel, ts)
    assert web.conversations_history(channel=channel)["messages"] == []
    assert _error(lambda: web.chat_delete(channel=channel, ts=ts)) == "message_not_found"
    assert _error(lambda: web.chat_update(channel=channel, ts=ts, text="v3")) == "message_not_found"
    assert _error(lambda: web.chat_getPermalink(channel=channel, message_ts=ts)) == "message_not_found"
    errors = [c["data"].get("error") for c in calls(api)]
    assert errors[-3:] == ["message_not_found"] * 3


def test_unknown_ts_or_other_channel_is_message_not_found(web: WebClient, api: httpx.Client) -> None:
    posted = web.chat_postMessage(channel="#ops", text="here")
    for call in (
        lambda: web.chat_update(channel="#ops", ts="1700000000.000001", text="x"),
        lambda: web.chat_update(channel="#elsewhere", ts=posted["ts"], text="x"),
        lambda: web.chat_delete(channel="#elsewhere", ts=posted["ts"]),
        lambda: web.chat_getPermalink(channel="#ops", message_ts="1700000000.000001"),
    ):
        assert _error(call) == "message_not_found"
    # Nothing was changed or removed by the failed calls.
    [kept] = web.conversations_history(channel="#ops")["messages"]
    assert kept["text"] == "here" and "edited" not in kept


def test_history_pages_newest_first_with_bounds(web: WebClient, api: httpx.Client) -> None:
    ts = [web.chat_postMessage(channel="#pages", text=f"m{i}")["ts"] for i in range(5)]
    web.chat_postMessage(channel="#other", text="not here")

    first = web.conversations_history(channel="#pages", limit=2)
    assert [m["text"] for m in first["messages"]] == ["m4", "m3"]
    assert first["has_more"] is True
    cursor = first["response_metadata"]["next_cursor"]
    assert cursor
    second = web.conversations_history(channel="#pages", limit=2, cursor=cursor)
    assert [m["text"] for m in second["messages"]] == ["m2", "m1"]
    third = web.conversations_history(channel="#pages", limit=2, cursor=second["response_metadata"]["next_cursor"])
    assert [m["text"] for m in third["messages"]] == ["m0"]
    assert third["has_more"] is False and third["response_metadata"]["next_cursor"] == ""

    everything = web.conversations_history(channel="#pages")
    assert [m["ts"] for m in everything["messages"]] == ts[::-1]
    assert all(m["type"] == "message" and m["bot_id"] for m in everything["messages"])

    between = web.conversations_history(channel="#pages", oldest=ts[1], latest=ts[3])
    assert [m["text"] for m in between["messages"]] == ["m2"]
    inclusive = web.conversations_history(channel="#pages", oldest=ts[1], latest=ts[3], inclusive=True)
    assert [m["text"] for m in inclusive["messages"]] == ["m3", "m2", "m1"]

    # slack_sdk's own paginator follows next_cursor.
    # slack_sdk's iterator updates one response in place: read each page as it comes.
    texts = [m["text"] for page in web.conversations_history(channel="#pages", limit=2) for m in page["messages"]]
    assert texts == ["m4", "m3", "m2", "m1", "m0"]

    assert _error(lambda: web.conversations_history(channel="#pages", latest="soon")) == "invalid_ts_latest"
    assert _error(lambda: web.conversations_history(channel="#pages", cursor="%%%")) == "invalid_cursor"


def test_threads_via_thread_ts(web: WebClient, api: httpx.Client) -> None:
    parent = web.chat_postMessage(channel="#incidents", text="db down")
    first = web.chat_postMessage(channel="#incidents", text="looking", thread_ts=parent["ts"])
    assert first["message"]["thread_ts"] == parent["ts"]
    assert first["message"]["parent_user_id"] == parent["message"]["user"]
    # A reply to a reply joins the parent's thread.
    second = web.chat_postMessage(channel="#incidents", text="fixed", thread_ts=first["ts"])
    assert second["message"]["thread_ts"] == parent["ts"]
    web.chat_postMessage(channel="#incidents", text="unrelated")

    history = web.conversations_history(channel="#incidents")["messages"]
    assert [m["text"] for m in history] == ["unrelated", "db down"]
    top = history[1]
    assert (top["thread_ts"], top["reply_count"], top["latest_reply"]) == (parent["ts"], 2, second["ts"])

    thread = web.conversations_replies(channel="#incidents", ts=parent["ts"])
    assert [m["text"] for m in thread["messages"]] == ["db down", "looking", "fixed"]
    assert thread["messages"][0]["reply_count"] == 2
    assert thread["messages"][0]["latest_reply"] == second["ts"]
    assert all(m["thread_ts"] == parent["ts"] for m in thread["messages"])
    assert thread["has_more"] is False

    paged = web.conversations_replies(channel="#incidents", ts=parent["ts"], limit=2)
    assert [m["text"] for m in paged["messages"]] == ["db down", "looking"] and paged["has_more"] is True
    rest = web.conversations_replies(
        channel="#incidents", ts=parent["ts"], limit=2, cursor=paged["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in rest["messages"]] == ["fixed"] and rest["has_more"] is False

    link = web.chat_getPermalink(channel="#incidents", message_ts=first["ts"])
    assert link["permalink"].endswith(f"?thread_ts={parent['ts']}&cid={parent['channel']}")

    lone = web.conversations_replies(channel="#incidents", ts=history[0]["ts"])["messages"]
    assert [m["text"] for m in lone] == ["unrelated"] and "reply_count" not in lone[0]
    assert _error(lambda: web.conversations_replies(channel="#incidents", ts="1700000000.000001")) == (
        "thread_not_found"
    )
    assert _error(lambda: web.conversations_replies(channel="#elsewhere", ts=parent["ts"])) == "thread_not_found"


def test_stored_messages_are_per_namespace_and_reset(base_url: str, api: httpx.Client) -> None:
    alpha = WebClient(token="xoxb-1", base_url=f"{base_url}/ns/alpha/api/")
    beta = WebClient(token="xoxb-1", base_url=f"{base_url}/ns/beta/api/")
    posted = alpha.chat_postMessage(channel="#ops", text="alpha's")
    beta.chat_postMessage(channel="#ops", text="beta's")

    assert [m["text"] for m in alpha.conversations_history(channel="#ops")["messages"]] == ["alpha's"]
    assert [m["text"] for m in beta.conversations_history(channel="#ops")["messages"]] == ["beta's"]
    assert _error(lambda: beta.chat_update(channel="#ops", ts=posted["ts"], text="x")) == "message_not_found"
    assert _error(lambda: beta.chat_delete(channel="#ops", ts=posted["ts"])) == "message_not_found"

    api.post("/reset", params={"namespace": "alpha"}).raise_for_status()
    assert alpha.conversations_history(channel="#ops")["messages"] == []
    assert _error(lambda: alpha.chat_update(channel="#ops", ts=posted["ts"], text="x")) == "message_not_found"
    assert [m["text"] for m in beta.conversations_history(channel="#ops")["messages"]] == ["beta's"]

    api.post("/reset").raise_for_status()
    assert beta.conversations_history(channel="#ops")["messages"] == []
