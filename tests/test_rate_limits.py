"""Rate limits as rules (`/limits`), driven with the providers' official SDKs and their own retry logic."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import support

from mockhub.server import ThreadedHub

MODEL = "gpt-4o-mini"


def add_limit(api: httpx.Client, **spec: Any) -> dict[str, Any]:
    r = api.post("/limits", json=spec)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def limited(call: dict[str, Any]) -> bool:
    return bool(call["fault"] and call["fault"].get("limit"))


# -- the API -----------------------------------------------------------------------------------------


def test_limit_api_lists_gets_and_deletes(api: httpx.Client) -> None:
    made = add_limit(api, service="openai", key="api_key", requests=2, per="1s")
    assert made["id"].startswith("l_") and made["requests"] == 2 and made["per"] == "1s"
    assert made["seen"] == 0 and made["limited"] == 0 and made["keys"] == []
    listed = api.get("/limits").json()
    assert listed["count"] == 1 and listed["limits"][0]["id"] == made["id"]
    assert api.get(f"/limits/{made['id']}").json()["key"] == "api_key"
    assert api.delete(f"/limits/{made['id']}").json() == {"deleted": 1}
    missing = api.get(f"/limits/{made['id']}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "limit_not_found"
    assert api.delete(f"/limits/{made['id']}").status_code == 404
    add_limit(api, service="slack", requests=1)
    add_limit(api, service="twilio", requests=1, match={"namespace": "other"})
    assert api.delete("/limits", params={"namespace": "other"}).json() == {"deleted": 1}
    assert api.delete("/limits").json() == {"deleted": 1}
    add_limit(api, service="slack", requests=1)
    api.post("/reset").raise_for_status()
    assert api.get("/limits").json()["count"] == 0


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"service": "openai", "key": "channel", "requests": 1}, "key", ["api_key", "model", "namespace"]),
        ({"service": "slack", "key": "model", "requests": 1}, "key", ["channel"]),
        ({"service": "slack", "tokens": 100}, "tokens", ["openai", "anthropic"]),
        ({"service": "openai"}, "requests", ["'requests' or 'tokens'"]),
        ({"service": "openai", "requests": 1, "per": "1 minute"}, "per", ["1s"]),
        ({"service": "openai", "requests": 1, "stage": "mail"}, "stage", ["smtp"]),
        ({"service": "openai", "requests": 0}, "requests", ["greater than or equal to 1"]),
        ({"service": "opnai", "requests": 1}, "service", ["openai"]),
        ({"service": "openai", "requests": 1, "bogus": 1}, "bogus", ["Extra"]),
    ],
)
def test_a_limit_that_cannot_work_is_refused_naming_the_field(
    api: httpx.Client, spec: dict[str, Any], field: str, words: list[str]
) -> None:
    r = api.post("/limits", json=spec)
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert field in message and all(w in message for w in words), message
    assert api.get("/limits").json()["count"] == 0


def test_the_catalogue_lists_each_fakes_limit_keys(api: httpx.Client) -> None:
    services = {s["name"]: s for s in api.get("/services").json()["services"]}
    assert {"api_key", "model", "namespace"} <= set(services["openai"]["limit_keys"])
    assert services["openai"]["limit_tokens"] and services["anthropic"]["limit_tokens"]
    assert {"channel", "namespace"} <= set(services["slack"]["limit_keys"])
    assert {"from", "to"} <= set(services["twilio"]["limit_keys"])
    assert {"from", "to"} <= set(services["smtp"]["limit_keys"])
    assert not services["slack"]["limit_tokens"]


# -- OpenAI --------------------------------------------------------------------------------------------


# A window of one second can be missed on a loaded machine (two calls more than a second apart):
# such a round proves nothing, so the scenario is tried again with a fresh key, a few times at most.
ROUNDS = 5


def test_openai_sdk_retries_as_told_and_passes(server: ThreadedHub, api: httpx.Client) -> None:
    import openai

    add_limit(api, service="openai", key="api_key", requests=2, per="1s")
    ask = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    for round_ in range(ROUNDS):
        key = f"sk-limited-{round_}"
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=3)
        client.chat.completions.create(**ask)
        client.chat.completions.create(**ask)
        started = time.monotonic()
        answer = client.chat.completions.create(**ask)  # over the limit: one 429, then a retry that passes
        waited = time.monotonic() - started
        assert answer.choices[0].message.content
        mine = [
            c for c in support.calls(api, "openai", order="asc") if c["headers"]["authorization"] == f"Bearer {key}"
        ]
        if [limited(c) for c in mine] == [False, False, False]:
            continue  # the first call had left the window before the third: try again
        assert [limited(c) for c in mine] == [False, False, True, False]  # exactly 4 attempts
        break
    else:
        pytest.fail(f"no round of {ROUNDS} had its three calls within one second")
    openai.OpenAI(base_url=server.url + "/v1", api_key="sk-other", max_retries=0).chat.completions.create(**ask)
    refused = mine[2]
    assert refused["response"]["status"] == 429
    told = int(refused["response"]["headers"]["retry-after-ms"]) / 1000
    assert 0 < told <= 1.0
    assert refused["response"]["headers"]["retry-after"] == "1"
    assert refused["response"]["headers"]["x-ratelimit-remaining-requests"] == "0"
    assert refused["fault"]["id"].startswith("l_") and refused["fault"]["key"] == key
    # The SDK waited what it was told (loosely: it cannot have retried sooner; it did not dawdle).
    assert told - 0.05 <= waited < told + 1.5
    rule = api.get("/limits").json()["limits"][0]
    assert rule["limited"] == 1 and rule["passed"] == 3 * (round_ + 1) + 1  # sk-other counts on its own


def test_openai_sdk_without_retries_raises_rate_limit_error(server: ThreadedHub, api: httpx.Client) -> None:
    import openai

    add_limit(api, service="openai", requests=1, per="1m")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-x", max_retries=0)
    ask = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    client.chat.completions.create(**ask)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(**ask)
    assert caught.value.status_code == 429
    assert caught.value.code == "rate_limit_exceeded"
    assert "Limit 1, Used 1, Requested 1" in caught.value.message
    headers = caught.value.response.headers
    assert 59 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-limit-requests"] == "1"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"].endswith("s")


def test_openai_headers_on_every_answer_default_and_under_a_rule(server: ThreadedHub, api: httpx.Client) -> None:
    import openai

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-x", max_retries=0)
    ask = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    raw = client.chat.completions.with_raw_response.create(**ask)
    assert raw.headers["x-ratelimit-limit-requests"] == "10000"
    assert raw.headers["x-ratelimit-remaining-requests"] == "9999"
    assert raw.headers["x-ratelimit-reset-requests"] == "6ms"
    assert raw.headers["x-ratelimit-limit-tokens"] == "30000000"
    used = raw.parse().usage
    assert used is not None
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) == 30_000_000 - used.total_tokens
    models = client.models.with_raw_response.list()  # not only chat: every answer
    assert models.headers["x-ratelimit-limit-requests"] == "10000"

    add_limit(api, service="openai", requests=5, tokens=1000, per="1m")
    first = client.chat.completions.with_raw_response.create(**ask)
    usage = first.parse().usage
    assert usage is not None
    assert first.headers["x-ratelimit-limit-requests"] == "5"
    assert first.headers["x-ratelimit-remaining-requests"] == "4"
    assert first.headers["x-ratelimit-limit-tokens"] == "1000"
    assert int(first.headers["x-ratelimit-remaining-tokens"]) == 1000 - usage.total_tokens
    reset = first.headers["x-ratelimit-reset-requests"]
    assert reset.endswith("s") and ("m" in reset or float(reset[:-1]) > 59), reset
    second = client.chat.completions.with_raw_response.create(**ask)
    assert second.headers["x-ratelimit-remaining-requests"] == "3"


def test_openai_token_limit_counts_prompt_and_answer(server: ThreadedHub, api: httpx.Client) -> None:
    import openai

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-x", max_retries=0)
    ask = {"model": MODEL, "messages": [{"role": "user", "content": "hello there"}]}
    probe = client.chat.completions.create(**ask).usage
    assert probe is not None
    # Room for two calls, not three.
    add_limit(api, service="openai", tokens=probe.total_tokens * 2 + probe.prompt_tokens - 1, per="1m")
    client.chat.completions.create(**ask)
    client.chat.completions.create(**ask)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(**ask)
    assert "tokens" in caught.value.message


# -- concurrency -------------------------------------------------------------------------------------


def test_a_thousand_concurrent_requests_let_exactly_a_hundred_through(server: ThreadedHub, api: httpx.Client) -> None:
    add_limit(api, service="webhook", requests=100, per="1m")

    async def burst() -> list[int]:
        # All 1,000 are in flight at once; at most 100 connections carry them (a shared CI machine is slow:
        # waiting for a pooled connection is not a failure).
        limits = httpx.Limits(max_connections=100)
        timeout = httpx.Timeout(60, pool=None)
        async with httpx.AsyncClient(base_url=server.url, timeout=timeout, limits=limits) as client:
            answers = await asyncio.gather(*(client.post("/webhooks/burst", json={"n": i}) for i in range(1000)))
        return [a.status_code for a in answers]

    statuses = asyncio.run(burst())
    assert statuses.count(200) == 100
    assert statuses.count(429) == 900
    rule = api.get("/limits").json()["limits"][0]
    assert rule["passed"] == 100 and rule["limited"] == 900
    assert api.get("/calls/count", params={"service": "webhook"}).json()["count"] == 1000


def _rfc3339(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- Anthropic ----------------------------------------------------------------------------------------


def test_anthropic_sdk_backs_off_a_token_limit_as_told(server: ThreadedHub, api: httpx.Client) -> None:
    import anthropic

    ask: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "how full is the disk?"}],
    }
    probe_client = anthropic.Anthropic(base_url=server.url, api_key="sk-ant-probe", max_retries=0)
    probe = probe_client.messages.create(**ask).usage
    cost = probe.input_tokens + probe.output_tokens
    budget = cost * 2 + probe.input_tokens - 1  # two answers fit in a second; a third must wait
    add_limit(api, service="anthropic", key="api_key", tokens=budget, per="1s")
    for round_ in range(ROUNDS):
        key = f"sk-ant-tokens-{round_}"
        client = anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=3)
        first = client.messages.with_raw_response.create(**ask)
        client.messages.create(**ask)
        started = time.monotonic()
        answer = client.messages.create(**ask)
        waited = time.monotonic() - started
        assert answer.content[0].type == "text"
        seen = [
            c
            for c in support.calls(api, "anthropic", order="asc")
            if key in (c["headers"].get("x-api-key"), c["headers"].get("authorization", "")[7:])
        ]
        if [limited(c) for c in seen] == [False, False, False]:
            continue
        assert [limited(c) for c in seen] == [False, False, True, False]
        break
    else:
        pytest.fail(f"no round of {ROUNDS} had its three calls within one second")
    refused = seen[2]["response"]
    assert refused["status"] == 429
    assert orjson_type(refused["body"]) == "rate_limit_error"
    told = int(refused["headers"]["retry-after-ms"]) / 1000
    assert 0 < told <= 1.0 and refused["headers"]["retry-after"] == "1"
    assert told - 0.05 <= waited < told + 1.5
    headers = first.headers
    assert headers["anthropic-ratelimit-tokens-limit"] == str(budget)
    assert int(headers["anthropic-ratelimit-tokens-remaining"]) == budget - cost
    assert headers["anthropic-ratelimit-input-tokens-limit"] == headers["anthropic-ratelimit-tokens-limit"]
    assert headers["anthropic-ratelimit-requests-limit"] == "4000"  # no request limit: the default
    reset = _rfc3339(headers["anthropic-ratelimit-tokens-reset"])
    assert 0 <= (reset - datetime.now(UTC)).total_seconds() <= 2.5


def orjson_type(body: str) -> str:
    import json

    kind: str = json.loads(body)["error"]["type"]
    return kind


def test_anthropic_headers_on_every_answer_by_default(server: ThreadedHub, api: httpx.Client) -> None:
    import anthropic

    client = anthropic.Anthropic(base_url=server.url, api_key="sk-ant-x", max_retries=0)
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=32, messages=[{"role": "user", "content": "hi"}]
    )
    usage = raw.parse().usage
    h = raw.headers
    assert h["anthropic-ratelimit-requests-limit"] == "4000"
    assert h["anthropic-ratelimit-requests-remaining"] == "3999"
    assert h["anthropic-ratelimit-input-tokens-limit"] == "2000000"
    assert int(h["anthropic-ratelimit-input-tokens-remaining"]) == 2_000_000 - usage.input_tokens
    assert h["anthropic-ratelimit-output-tokens-limit"] == "400000"
    assert int(h["anthropic-ratelimit-output-tokens-remaining"]) == 400_000 - usage.output_tokens
    for name in ("requests", "tokens", "input-tokens", "output-tokens"):
        reset = _rfc3339(h[f"anthropic-ratelimit-{name}-reset"])
        assert reset.tzinfo is not None and 0 <= (reset - datetime.now(UTC)).total_seconds() <= 61


def test_anthropic_request_limit_raises_rate_limit_error(server: ThreadedHub, api: httpx.Client) -> None:
    import anthropic

    add_limit(api, service="anthropic", key="model", requests=1, per="1h", match={"data": {"model": "claude-x"}})
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-ant-x", max_retries=0)
    ask: dict[str, Any] = {"max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    client.messages.create(model="claude-x", **ask)
    client.messages.create(model="claude-y", **ask)  # not matched by the rule
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model="claude-x", **ask)
    headers = caught.value.response.headers
    assert 3590 <= int(headers["retry-after"]) <= 3600
    assert headers["anthropic-ratelimit-requests-limit"] == "1"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"


# -- Slack ---------------------------------------------------------------------------------------------


def test_slack_sdk_retry_handler_waits_out_one_per_second_per_channel(server: ThreadedHub, api: httpx.Client) -> None:
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError
    from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

    add_limit(api, service="slack", key="channel", requests=1, per="1s")
    patient = WebClient(
        token="xoxb-test", base_url=f"{server.url}/api/", retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)]
    )
    hasty = WebClient(token="xoxb-test", base_url=f"{server.url}/api/")
    for round_ in range(ROUNDS):
        channel = f"#ops-{round_}"
        assert patient.chat_postMessage(channel=channel, text="one")["ok"]
        assert hasty.chat_postMessage(channel=f"#dev-{round_}", text="another channel has its own second")["ok"]
        try:
            hasty.chat_postMessage(channel=channel, text="too soon")
        except SlackApiError as exc:
            caught = exc
            break
    else:
        pytest.fail(f"no round of {ROUNDS} had its two calls within one second")
    assert caught.response.status_code == 429
    assert caught.response["error"] == "ratelimited"
    assert caught.response.headers["retry-after"] in (["1"], "1")
    started = time.monotonic()
    assert patient.chat_postMessage(channel=channel, text="two")["ok"]  # a 429 (or two), sleeps Retry-After, passes
    assert time.monotonic() - started >= 1.0
    ops = [c for c in support.calls(api, "slack", order="asc") if c["data"].get("channel") == channel]
    statuses = [limited(c) for c in ops]
    assert statuses[:3] == [False, True, True] and statuses[-1] is False and all(statuses[2:-1])


def test_slack_webhook_limit_answers_retry_after_in_body_and_header(server: ThreadedHub, api: httpx.Client) -> None:
    add_limit(api, service="slack", key="channel", requests=1, per="1m")
    hook = f"{server.url}/services/T000/B000/XXXX"
    assert httpx.post(hook, json={"text": "one"}).status_code == 200
    refused = httpx.post(hook, json={"text": "two"})
    assert refused.status_code == 429
    wait = int(refused.headers["retry-after"])
    assert 58 <= wait <= 60 and refused.json() == {"ok": False, "error": "rate_limited", "retry_after": wait}
    assert httpx.post(f"{server.url}/services/T000/B000/YYYY", json={"text": "other hook"}).status_code == 200


# -- Twilio --------------------------------------------------------------------------------------------


def test_twilio_limit_per_from_number_answers_20429(server: ThreadedHub, api: httpx.Client) -> None:
    from twilio.base.exceptions import TwilioRestException
    from twilio.rest import Client

    add_limit(api, service="twilio", key="from", requests=2, per="1m")
    client = Client("AC" + "0" * 31 + "1", "token", environment={})
    client.api.base_url = server.url
    to = "+15551234567"
    for _ in range(2):
        client.messages.create(to=to, from_="+15550000001", body="page")
    client.messages.create(to=to, from_="+15550000002", body="another number, another queue")
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to=to, from_="+15550000001", body="one too many")
    assert caught.value.status == 429 and caught.value.code == 20429
    assert len(client.messages.list(limit=20)) == 3  # reading is not counted per From
    refused = [c for c in support.calls(api, "twilio") if limited(c)]
    assert len(refused) == 1 and refused[0]["fault"]["key"] == "+15550000001"
    assert 1 <= int(refused[0]["response"]["headers"]["retry-after"]) <= 60


# -- SMTP ----------------------------------------------------------------------------------------------


def test_smtp_send_rate_limit_answers_421(server: ThreadedHub, api: httpx.Client) -> None:
    import smtplib

    add_limit(api, service="smtp", key="from", requests=2, per="1m")
    sender = "alerts@example.com"
    for i in range(2):
        with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=10) as smtp:
            smtp.sendmail(sender, ["ops@example.com"], f"Subject: {i}\r\n\r\nbody".encode())
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=10) as smtp:
        smtp.sendmail("other@example.com", ["ops@example.com"], b"Subject: x\r\n\r\nanother sender")
    smtp = smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=10)
    with pytest.raises(smtplib.SMTPSenderRefused) as caught:
        smtp.sendmail(sender, ["ops@example.com"], b"Subject: 3\r\n\r\nthird")
    assert caught.value.smtp_code == 421
    assert caught.value.smtp_error.startswith(b"4.7.0 Rate limit exceeded")
    smtp.close()
    delivered = support.calls(api, "smtp", method="DATA")
    assert len(delivered) == 3
    refused = [c for c in support.calls(api, "smtp") if limited(c)]
    assert len(refused) == 1 and refused[0]["method"] == "MAIL" and refused[0]["response"]["status"] == 421
    assert refused[0]["fault"]["key"] == sender


def test_smtp_limit_per_recipient_answers_451_at_rcpt(server: ThreadedHub, api: httpx.Client) -> None:
    import smtplib

    add_limit(api, service="smtp", key="to", stage="rcpt", code=451, requests=1, per="1h")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=10) as smtp:
        smtp.sendmail("a@example.com", ["ops@example.com"], b"Subject: 1\r\n\r\nfirst")
        refused = smtp.sendmail("a@example.com", ["ops@example.com", "dev@example.com"], b"Subject: 2\r\n\r\nx")
    assert list(refused) == ["ops@example.com"]
    assert refused["ops@example.com"][0] == 451
    assert refused["ops@example.com"][1].startswith(b"4.7.1 Rate limit exceeded")


# -- the client ---------------------------------------------------------------------------------------


def test_client_limit_counts_and_removes_on_exit(server: ThreadedHub, api: httpx.Client) -> None:
    from mockhub.client import MockHub

    with MockHub(server.url) as hub:
        with hub.limit("webhook", requests=1, per="1m", path="/webhooks/limited") as rule:
            assert rule.id.startswith("l_") and rule.requests == 1
            assert httpx.post(f"{server.url}/webhooks/limited", json={}).status_code == 200
            assert httpx.post(f"{server.url}/webhooks/limited", json={}).status_code == 429
            assert httpx.post(f"{server.url}/webhooks/other", json={}).status_code == 200
            now = rule.refresh()
            assert (now.seen, now.passed, now.limited) == (2, 1, 1)
            assert [k.requests for k in now.keys] == [1]
            assert [r.id for r in hub.limits()] == [rule.id]
        assert hub.limits() == []
        assert httpx.post(f"{server.url}/webhooks/limited", json={}).status_code == 200
        refused = hub.calls("webhook", path="/webhooks/limited")[1]
        assert refused.fault is not None and refused.fault.id == rule.id


def test_async_client_limit(server: ThreadedHub, api: httpx.Client) -> None:
    from mockhub.client import AsyncMockHub

    async def run() -> None:
        async with AsyncMockHub(server.url, namespace="lim-async") as hub:
            async with hub.limit("webhook", requests=1, per="1s") as rule:
                assert rule.match.namespace == "lim-async"
                assert len(await hub.limits()) == 1
            assert await hub.limits() == []

    asyncio.run(run())


# -- the CLI -------------------------------------------------------------------------------------------


def test_cli_limit_add_list_clear(server: ThreadedHub, api: httpx.Client) -> None:
    import json

    from typer.testing import CliRunner

    from mockhub.cli import app

    def cli(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(app, list(args), env={"MOCKHUB_URL": server.url, "NO_COLOR": "", "FORCE_COLOR": ""})
        return result.exit_code, result.stdout, result.stderr

    code, out, err = cli(
        "limit", "add", "--service", "webhook", "--requests", "1", "--per", "1h", "--path", "/webhooks/cli"
    )
    assert code == 0, err
    rule = json.loads(out)
    assert rule["id"].startswith("l_") and rule["requests"] == 1 and rule["per"] == "1h"
    assert [httpx.post(f"{server.url}/webhooks/cli", json={}).status_code for _ in range(2)] == [200, 429]
    code, out, _ = cli("limit", "list")
    assert code == 0 and rule["id"] in out and "1 req / 1h" in out
    _, out, _ = cli("limit", "list", "--json")
    assert [(r["id"], r["passed"], r["limited"]) for r in json.loads(out)] == [(rule["id"], 1, 1)]
    code, _, err = cli("limit", "add", "--service", "slack", "--key", "model", "--requests", "1")
    assert code != 0 and "channel" in err
    code, _, err = cli("limit", "clear")
    assert code == 0 and "deleted 1 limit(s)" in err


# -- stub files ----------------------------------------------------------------------------------------


def test_a_stub_file_carries_limits(tmp_path: Any) -> None:
    (tmp_path / "rules.yaml").write_text(
        "limits:\n"
        "  - {service: webhook, requests: 1, per: 1h, match: {path: /webhooks/filed}}\n"
        "stubs:\n"
        "  - {service: webhook, response: {status: 202}}\n"
    )
    (tmp_path / "more.json").write_text('[{"service": "slack", "key": "channel", "requests": 3, "per": "1s"}]')
    with support.extra_hub(stubs=tmp_path) as hub, httpx.Client(base_url=hub.url, timeout=10) as api:
        limits = api.get("/limits").json()["limits"]
        assert sorted((r["service"], r["requests"]) for r in limits) == [("slack", 3), ("webhook", 1)]
        assert [api.post("/webhooks/filed", json={}).status_code for _ in range(2)] == [202, 429]


def test_a_stub_file_with_a_bad_limit_key_fails_naming_it(tmp_path: Any) -> None:
    from mockhub.recording import RecordingError
    from mockhub.server import Hub
    from mockhub.settings import Settings

    (tmp_path / "bad.yaml").write_text("limits:\n  - {service: twilio, key: channel, requests: 1}\n")
    with pytest.raises(RecordingError, match=r"key: service 'twilio' has no key 'channel'; valid keys: .*from"):
        Hub(Settings(host="127.0.0.1", http_port=0, smtp_port=0, stubs=tmp_path))
    (tmp_path / "bad.yaml").write_text("- {service: twilio, requests: 0}\n")
    with pytest.raises(RecordingError, match=r"entry 0 \(service 'twilio'\): invalid limit: requests"):
        Hub(Settings(host="127.0.0.1", http_port=0, smtp_port=0, stubs=tmp_path))


# -- the other fakes: their own rate_limited answer, with the window's wait ---------------------------------


def test_telegram_and_discord_put_the_wait_in_their_bodies(server: ThreadedHub, api: httpx.Client) -> None:
    add_limit(api, service="telegram", requests=1, per="1m")
    add_limit(api, service="discord", requests=1, per="1m")
    send = f"{server.url}/bot123:abc/sendMessage"
    assert httpx.post(send, json={"chat_id": 1, "text": "one"}).status_code == 200
    refused = httpx.post(send, json={"chat_id": 1, "text": "two"})
    body = refused.json()
    assert refused.status_code == 429 and body["ok"] is False and body["error_code"] == 429
    wait = body["parameters"]["retry_after"]
    assert 58 <= wait <= 60 and refused.headers["retry-after"] == str(wait)
    assert body["description"] == f"Too Many Requests: retry after {wait}"

    hook = f"{server.url}/api/webhooks/1/tok"
    assert httpx.post(hook, json={"content": "one"}).status_code == 204
    refused = httpx.post(hook, json={"content": "two"})
    assert refused.status_code == 429 and refused.headers["via"] == "1.1 google"
    assert 58 <= refused.json()["retry_after"] <= 60
    assert float(refused.headers["x-ratelimit-reset-after"]) == refused.json()["retry_after"]
    assert refused.headers["x-ratelimit-remaining"] == "0"


def test_other_fakes_answer_their_preset_with_the_wait(server: ThreadedHub, api: httpx.Client) -> None:
    add_limit(api, service="webhook", requests=1, per="1h")
    assert httpx.post(f"{server.url}/webhooks/x", json={}).status_code == 200
    refused = httpx.post(f"{server.url}/webhooks/x", json={})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert 3590 <= int(refused.headers["retry-after"]) <= 3600


def test_smtp_limit_at_data_and_at_connect(server: ThreadedHub, api: httpx.Client) -> None:
    import smtplib

    add_limit(api, service="smtp", stage="data", code=451, requests=1, per="1h", match={"to": "data@example.com"})
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=10) as smtp:
        smtp.sendmail("a@example.com", ["data@example.com"], b"Subject: 1\r\n\r\nfirst")
        with pytest.raises(smtplib.SMTPDataError) as caught:
            smtp.sendmail("a@example.com", ["data@example.com"], b"Subject: 2\r\n\r\nsecond")
        assert caught.value.smtp_code == 451 and caught.value.smtp_error.startswith(b"4.7.1 Rate limit exceeded")
        smtp.sendmail("a@example.com", ["else@example.com"], b"Subject: 3\r\n\r\nnot matched")  # the session goes on
    refused = [c for c in support.calls(api, "smtp") if limited(c)]
    assert [(c["method"], c["fault"]["stage"]) for c in refused] == [("DATA", "data")]

    api.delete("/limits").raise_for_status()
    add_limit(api, service="smtp", stage="connect", requests=1, per="1h")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=10) as smtp:
        assert smtp.noop()[0] == 250
    with pytest.raises(smtplib.SMTPConnectError) as refused_connect:
        smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=10)
    assert refused_connect.value.smtp_code == 421
