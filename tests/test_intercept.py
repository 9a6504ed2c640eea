"""Zero-code interception: official SDKs with their default base URLs reach the fakes.

Configured only by the proxy variables (`HTTPS_PROXY`, `NO_PROXY`) and the CA bundle (what
`MockHub.env(proxy=True)` and `mockhub env --proxy` print), or against the HTTPS listener with the
real host name pinned to loopback, each SDK gets the same answers as with a base URL.
"""

from __future__ import annotations

import base64
import http.server
import json
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import certifi
import httpcore
import httpcore2
import httpx
import httpx2
import openai
import pytest
import requests
from requests.adapters import HTTPAdapter
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient
from support import run_node
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client as TwilioClient

from mockhub.client import MockHub
from mockhub.server import ThreadedHub
from mockhub.settings import Settings

SID, TOKEN = "AC" + "1" * 32, "test-auth-token"
HOOK = "/services/T000/B000/XXXXXXXXXXXXXXXX"
PD_KEY = "R" * 32
HANDSHAKE_TIMEOUT = 1.5
ALERT = {
    "routing_key": PD_KEY,
    "event_action": "trigger",
    "payload": {"summary": "disk full on db-1", "source": "db-1", "severity": "critical"},
}


@pytest.fixture(scope="module")
def hub() -> Iterator[ThreadedHub]:
    """A mockhub with its HTTPS listener on, and a short handshake (and head) timeout for the bad-input tests."""
    settings = Settings(host="127.0.0.1", http_port=0, smtp_port=0, https_port=0, header_timeout=HANDSHAKE_TIMEOUT)
    with ThreadedHub(settings) as running:
        yield running


@pytest.fixture
def api(hub: ThreadedHub) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.url, timeout=10, trust_env=False) as client:
        client.post("/reset").raise_for_status()
        yield client


@pytest.fixture
def ns() -> str:
    return "icpt-" + uuid.uuid4().hex[:8]


@pytest.fixture
def proxied(hub: ThreadedHub, api: httpx.Client, ns: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The process environment of an unchanged application: the proxy settings `env(proxy=True)` gives."""
    with MockHub(hub.url, namespace=ns) as client:
        env = client.env(proxy=True)
    for key in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.setenv(key, env[key])
        monkeypatch.delenv(key.lower(), raising=False)
    return env


def calls(api: httpx.Client, **filters: Any) -> list[dict[str, Any]]:
    r = api.get("/calls", params=filters)
    r.raise_for_status()
    found: list[dict[str, Any]] = r.json()["calls"]
    return found


def wait_calls(api: httpx.Client, count: int, **filters: Any) -> list[dict[str, Any]]:
    body = api.get("/calls", params={**filters, "wait": 10, "min": count}).json()
    assert not body.get("timed_out"), f"only {body['count']} calls arrived: {body['calls']}"
    found: list[dict[str, Any]] = body["calls"]
    return found


def ca_file(api: httpx.Client, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_bytes(api.get("/tls/ca.pem").content)
    return path


# -- the proxy: official SDKs, default base URLs ----------------------------------------------------------


def test_env_proxy_settings(hub: ThreadedHub, api: httpx.Client, ns: str) -> None:
    with MockHub(hub.url, namespace=ns) as client:
        env = client.env(proxy=True)
        assert client.proxy_url == f"http://{ns}:mockhub@127.0.0.1:{hub.hub.http_port}"
    assert env["HTTPS_PROXY"] == env["HTTP_PROXY"] == f"http://{ns}:mockhub@127.0.0.1:{hub.hub.http_port}"
    assert "127.0.0.1" in env["NO_PROXY"].split(",")
    assert env["NODE_USE_ENV_PROXY"] == "1"
    bundle = Path(env["SSL_CERT_FILE"]).read_bytes()
    ca = Path(env["NODE_EXTRA_CA_CERTS"]).read_bytes()
    assert env["REQUESTS_CA_BUNDLE"] == env["SSL_CERT_FILE"]
    assert ca == api.get("/tls/ca.pem").content and ca.startswith(b"-----BEGIN CERTIFICATE-----")
    # The bundle keeps the public roots (SSL_CERT_FILE replaces them) and adds mockhub's CA.
    assert bundle.startswith(Path(certifi.where()).read_bytes().rstrip(b"\n")) and bundle.endswith(ca)
    assert api.get("/tls/bundle.pem").content == bundle
    # Without proxy=True nothing of the kind (and no files are fetched).
    with MockHub(hub.url, namespace=ns) as client:
        assert "HTTPS_PROXY" not in client.env()


def test_twilio_default_base_url_with_status_callbacks(proxied: dict[str, str], api: httpx.Client, ns: str) -> None:
    received: list[dict[str, list[str]]] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["content-length"])
            from urllib.parse import parse_qs

            received.append(parse_qs(self.rfile.read(length).decode()))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    callback = f"http://127.0.0.1:{app.server_address[1]}/sms-status"
    try:
        client = TwilioClient(SID, TOKEN, environment={})
        assert client.api.base_url == "https://api.twilio.com"  # untouched
        message = client.messages.create(
            to="+15551234567", from_="+15550000000", body="disk full", status_callback=callback
        )
        assert message.sid.startswith("SM") and message.status == "queued" and message.body == "disk full"
        deadline = time.monotonic() + 10
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [r["MessageStatus"] for r in received] == [["sent"], ["delivered"]]
        assert client.messages(message.sid).fetch().status == "delivered"
    finally:
        app.shutdown()
    create = calls(api, service="twilio", namespace=ns, method="POST", direction="inbound")[0]
    assert (create["scheme"], create["host"]) == ("https", "api.twilio.com")
    assert create["path"] == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert create["data"]["status_callback"] == callback
    # The answer's own URIs are the real host's, as Twilio's are.
    assert create["response"]["status"] == 201


def test_slack_webhook_and_web_client_default_urls(proxied: dict[str, str], api: httpx.Client, ns: str) -> None:
    hook = WebhookClient(f"https://hooks.slack.com{HOOK}")
    response = hook.send(text="disk full on db-1")
    assert (response.status_code, response.body) == (200, "ok")

    web = WebClient(token="xoxb-test-token")
    assert web.base_url == "https://slack.com/api/"
    posted = web.chat_postMessage(channel="#alerts", text="db-1 is back")
    assert posted["ok"] is True and posted["channel"] and posted["message"]["text"] == "db-1 is back"

    got = calls(api, service="slack", namespace=ns)
    assert [(c["scheme"], c["host"], c["path"]) for c in got] == [
        ("https", "hooks.slack.com", HOOK),
        ("https", "slack.com", "/api/chat.postMessage"),
    ]


def test_openai_plain_and_streamed_match_the_base_url_answers(
    hub: ThreadedHub, proxied: dict[str, str], api: httpx.Client, ns: str
) -> None:
    messages: Any = [{"role": "user", "content": "summarise the incident"}]
    through_proxy = openai.OpenAI(api_key="sk-test", max_retries=0)
    assert str(through_proxy.base_url) == "https://api.openai.com/v1/"
    plain = through_proxy.chat.completions.create(model="gpt-4o-mini", messages=messages)
    streamed = through_proxy.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)

    direct = openai.OpenAI(api_key="sk-test", base_url=f"{hub.url}/v1", http_client=httpx.Client(trust_env=False))
    expected = direct.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert plain.choices[0].message.content == expected.choices[0].message.content == text
    got = calls(api, service="openai", namespace=ns)
    assert [(c["host"], c["data"]["stream"]) for c in got] == [("api.openai.com", False), ("api.openai.com", True)]


def test_anthropic_plain_and_streamed_match_the_base_url_answers(
    hub: ThreadedHub, proxied: dict[str, str], api: httpx.Client, ns: str
) -> None:
    messages: Any = [{"role": "user", "content": "summarise the incident"}]
    claude = anthropic.Anthropic(api_key="sk-ant-test", max_retries=0)
    assert str(claude.base_url) == "https://api.anthropic.com"
    plain = claude.messages.create(model="claude-sonnet-4-5", max_tokens=256, messages=messages)
    with claude.messages.stream(model="claude-sonnet-4-5", max_tokens=256, messages=messages) as stream:
        text = "".join(stream.text_stream)

    # NO_PROXY keeps mockhub's own address unproxied.
    direct = anthropic.Anthropic(api_key="x", base_url=hub.url)
    expected = direct.messages.create(model="claude-sonnet-4-5", max_tokens=256, messages=messages)
    assert plain.content[0].text == expected.content[0].text == text  # type: ignore[union-attr]
    got = calls(api, service="anthropic", namespace=ns)
    assert [c["host"] for c in got] == ["api.anthropic.com", "api.anthropic.com"]


def test_requests_to_pagerduty(proxied: dict[str, str], api: httpx.Client, ns: str) -> None:
    r = requests.post("https://events.pagerduty.com/v2/enqueue", json=ALERT, timeout=10)
    assert r.status_code == 202 and r.json()["status"] == "success"
    (call,) = calls(api, service="pagerduty", namespace=ns)
    assert (call["scheme"], call["host"], call["data"]["summary"]) == (
        "https",
        "events.pagerduty.com",
        ALERT["payload"]["summary"],
    )  # type: ignore[index]


def test_plain_http_proxy_requests_are_served_directly(proxied: dict[str, str], api: httpx.Client, ns: str) -> None:
    # An http:// URL through the proxy: the absolute-form request line, no tunnel.
    r = requests.post(f"http://hooks.slack.com{HOOK}", json={"text": "plain"}, timeout=10)
    assert (r.status_code, r.text) == (200, "ok")
    (call,) = calls(api, service="slack", namespace=ns)
    assert (call["scheme"], call["host"], call["path"]) == ("http", "hooks.slack.com", HOOK)


def test_node_openai_default_base_url(hub: ThreadedHub, api: httpx.Client, ns: str) -> None:
    with MockHub(hub.url, namespace=ns) as client:
        env = client.env(proxy=True)
    # Node's own fetch reads the proxy variables with NODE_USE_ENV_PROXY=1 in Node 24 / 22.21+;
    # on older Node (this machine has 20) undici's EnvHttpProxyAgent reads the same variables.
    source = """
import OpenAI from "openai";
import { EnvHttpProxyAgent, fetch as undiciFetch } from "undici";
const [major, minor] = process.versions.node.split(".").map(Number);
const native = major >= 24 || (major === 22 && minor >= 21);
const dispatcher = new EnvHttpProxyAgent();
const options = native ? {} : { fetch: (url, init) => undiciFetch(url, { ...init, dispatcher }) };
const client = new OpenAI({ apiKey: "sk-test", maxRetries: 0, ...options });
const plain = await client.chat.completions.create({
  model: "gpt-4o-mini", messages: [{ role: "user", content: "summarise the incident" }],
});
const stream = await client.chat.completions.create({
  model: "gpt-4o-mini", messages: [{ role: "user", content: "summarise the incident" }], stream: true,
});
let text = "";
for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
console.log(JSON.stringify({ base: client.baseURL, plain: plain.choices[0].message.content, text, native }));
"""
    keys = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "NODE_EXTRA_CA_CERTS", "NODE_USE_ENV_PROXY")
    out = json.loads(run_node(source, {k: env[k] for k in keys}))
    assert out["base"] == "https://api.openai.com/v1"
    assert out["plain"] and out["plain"] == out["text"]
    got = calls(api, service="openai", namespace=ns)
    assert [(c["scheme"], c["host"]) for c in got] == [("https", "api.openai.com")] * 2


# -- the HTTPS listener, the real host name pinned to loopback --------------------------------------------


def _pinned(backend: type[Any], https_port: int) -> Any:
    """A network backend connecting every host name to mockhub's HTTPS port: a DNS override without /etc/hosts."""

    class Pinned(backend):  # type: ignore[misc, valid-type]
        def connect_tcp(self, host: str, port: int, **kwargs: Any) -> Any:
            return super().connect_tcp(host="127.0.0.1", port=https_port, **kwargs)

    return Pinned()


def pinned_httpx(port: int, ca: Path) -> httpx.Client:
    """An httpx client (openai's) that reaches every host at 127.0.0.1:port, verifying the URL's host name."""
    transport = httpx.HTTPTransport()
    context = ssl.create_default_context(cafile=str(ca))
    transport._pool = httpcore.ConnectionPool(ssl_context=context, network_backend=_pinned(httpcore.SyncBackend, port))
    return httpx.Client(transport=transport, trust_env=False)


def pinned_httpx2(port: int, ca: Path) -> httpx2.Client:
    """The same for httpx2 (anthropic's)."""
    transport = httpx2.HTTPTransport()
    context = ssl.create_default_context(cafile=str(ca))
    transport._pool = httpcore2.ConnectionPool(
        ssl_context=context, network_backend=_pinned(httpcore2.SyncBackend, port)
    )
    return httpx2.Client(transport=transport, trust_env=False)


class PinnedAdapter(HTTPAdapter):
    """A requests adapter that connects to 127.0.0.1:port, sending SNI and verifying the URL's host name.

    The CA is the session's `verify`.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        super().__init__()

    def get_connection_with_tls_context(self, request: Any, verify: Any, proxies: Any = None, cert: Any = None) -> Any:
        from urllib.parse import urlsplit

        host = urlsplit(request.url).hostname
        return self.poolmanager.connection_from_host(
            "127.0.0.1",
            self.port,
            "https",
            pool_kwargs={"server_hostname": host, "assert_hostname": host},
        )

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        from urllib.parse import urlsplit

        request.headers["Host"] = urlsplit(request.url).hostname
        return super().send(request, *args, **kwargs)


def test_https_listener_health_and_certificates(hub: ThreadedHub, api: httpx.Client, tmp_path: Path) -> None:
    port = hub.hub.https_port
    assert port and api.get("/health").json()["https_port"] == port
    ca = ca_file(api, tmp_path)
    context = ssl.create_default_context(cafile=str(ca))
    for name in ("api.openai.com", "hooks.slack.com", "x.webhook.office.com"):
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            context.wrap_socket(raw, server_hostname=name) as tls,
        ):
            assert tls.selected_alpn_protocol() is None  # none offered by this client
            names = [v for k, v in tls.getpeercert()["subjectAltName"] if k == "DNS"]
            assert names == [name]
    # A client that offers h2 and http/1.1 gets http/1.1; one that insists on h2 gets no ALPN at all.
    both = ssl.create_default_context(cafile=str(ca))
    both.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        both.wrap_socket(raw, server_hostname="api.openai.com") as tls,
    ):
        assert tls.selected_alpn_protocol() == "http/1.1"
    only_h2 = ssl.create_default_context(cafile=str(ca))
    only_h2.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        only_h2.wrap_socket(raw, server_hostname="api.openai.com") as tls,
    ):
        assert tls.selected_alpn_protocol() is None
    # The same app behind TLS: the inspection API too, by mockhub's own name.
    with httpx.Client(verify=context, trust_env=False) as client:
        assert client.get(f"https://localhost:{port}/health").json()["status"] == "ok"


def test_https_listener_sdks_verify_the_real_host_name(
    hub: ThreadedHub, api: httpx.Client, tmp_path: Path, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = hub.hub.https_port
    assert port
    ca = ca_file(api, tmp_path)
    # requests (and so twilio) verifies with REQUESTS_CA_BUNDLE when set: mockhub's CA alone here.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    headers = {"X-Mockhub-Namespace": ns}
    messages: Any = [{"role": "user", "content": "summarise the incident"}]
    oai = openai.OpenAI(api_key="sk-test", http_client=pinned_httpx(port, ca), default_headers=headers, max_retries=0)
    plain = oai.chat.completions.create(model="gpt-4o-mini", messages=messages)
    text = "".join(
        c.choices[0].delta.content or ""
        for c in oai.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
        if c.choices
    )
    assert plain.choices[0].message.content == text

    claude = anthropic.Anthropic(
        api_key="x", http_client=pinned_httpx2(port, ca), default_headers=headers, max_retries=0
    )
    with claude.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=messages) as stream:
        assert "".join(stream.text_stream)

    session = requests.Session()
    session.mount("https://", PinnedAdapter(port))
    r = session.post("https://events.pagerduty.com/v2/enqueue", json=ALERT, headers=headers, timeout=10)
    assert r.status_code == 202

    twilio_http = TwilioHttpClient()
    assert twilio_http.session is not None
    twilio_http.session.mount("https://", PinnedAdapter(port))
    twilio_http.session.headers.update(headers)
    twilio = TwilioClient(SID, TOKEN, http_client=twilio_http, environment={})
    assert twilio.messages.create(to="+15551234567", from_="+15550000000", body="hi").status == "queued"

    got = calls(api, namespace=ns)
    assert [(c["service"], c["scheme"], c["host"]) for c in got] == [
        ("openai", "https", "api.openai.com"),
        ("openai", "https", "api.openai.com"),
        ("anthropic", "https", "api.anthropic.com"),
        ("pagerduty", "https", "events.pagerduty.com"),
        ("twilio", "https", "api.twilio.com"),
    ]

    # Without mockhub's CA the certificate does not pass: the clients above really verified it.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    bad = requests.Session()
    bad.mount("https://", PinnedAdapter(port))
    with pytest.raises(requests.exceptions.SSLError):
        bad.post("https://events.pagerduty.com/v2/enqueue", json=ALERT, timeout=10)


# -- namespaces, host routing, unmatched --------------------------------------------------------------------


def test_two_parallel_namespaces_from_proxy_user_names(hub: ThreadedHub, api: httpx.Client, tmp_path: Path) -> None:
    ca = ssl.create_default_context(cafile=str(ca_file(api, tmp_path)))
    port = hub.hub.http_port
    errors: list[BaseException] = []

    def run(team: str) -> None:
        try:
            with httpx.Client(proxy=f"http://{team}@127.0.0.1:{port}", verify=ca, trust_env=False) as client:
                for i in range(10):
                    r = client.post(f"https://hooks.slack.com{HOOK}", json={"text": f"{team} #{i}"})
                    assert r.text == "ok"
        except BaseException as exc:
            errors.append(exc)

    teams = [f"team-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    threads = [threading.Thread(target=run, args=(t,)) for t in teams]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    for team in teams:
        got = calls(api, namespace=team)
        assert len(got) == 10 and all(c["data"]["text"].startswith(team) for c in got)
        with MockHub(hub.url, namespace=team) as client:
            assert len(client.calls("slack", host="hooks.slack.com")) == 10
            assert len(client.calls(host="*.SLACK.com")) == 10  # a glob, any case
            assert client.calls(host="slack.com") == [] and client.calls(host="*.twilio.com") == []


def test_host_routing_wins_over_path_routing(
    hub: ThreadedHub, proxied: dict[str, str], api: httpx.Client, ns: str
) -> None:
    # /api/... is Slack's and Discord's path space; the host says which fake it is.
    r = requests.post("https://discord.com/api/webhooks/123/tok", json={"content": "hi"}, timeout=10)
    assert r.status_code == 204
    # Slack's Web API path on OpenAI's host is no Slack call: OpenAI does not serve it.
    r = requests.post("https://api.openai.com/api/chat.postMessage", json={"channel": "#a", "text": "x"}, timeout=10)
    assert r.status_code == 502
    got = calls(api, namespace=ns)
    assert [(c["service"], c["host"]) for c in got] == [("discord", "discord.com"), ("unmatched", "api.openai.com")]
    # Without the proxy and with mockhub's own host, path routing stays as it was.
    assert httpx.post(f"{hub.url}/api/webhooks/1/t", json={"content": "x"}, trust_env=False).status_code == 204
    direct = calls(api, service="discord", host=f"127.0.0.1:{hub.hub.http_port}")
    assert len(direct) == 1 and direct[0]["scheme"] == "http"


def test_unknown_host_is_502_unmatched_and_never_leaves(proxied: dict[str, str], api: httpx.Client, ns: str) -> None:
    # A real listener stands in for the internet, at a name that resolves (this machine's): it must see nothing.
    name = socket.gethostname().lower()
    assert name not in proxied["NO_PROXY"].split(",")
    outside = socket.socket()
    outside.bind(("0.0.0.0", 0))
    outside.listen(8)
    outside.settimeout(0.5)
    port = outside.getsockname()[1]
    with socket.create_connection((name, port), timeout=5):  # the name does lead to the listener
        outside.accept()[0].close()
    try:
        r = requests.post(f"http://{name}:{port}/alert?x=1", json={"a": 1}, timeout=10)
        assert r.status_code == 502
        error = r.json()["error"]
        assert error["code"] == "not_intercepted" and error["host"] == f"{name}:{port}"
        assert "does not forward" in error["message"] and f"http://{name}:{port}/alert?x=1" in error["message"]
        r = requests.get("https://alerts.internal.example.com/v1/notify", timeout=10)
        assert r.status_code == 502 and "alerts.internal.example.com" in r.json()["error"]["message"]
        with pytest.raises(TimeoutError):
            outside.accept()
    finally:
        outside.close()
    got = calls(api, service="unmatched", namespace=ns)
    assert [(c["method"], c["scheme"], c["host"], c["path"], c["response"]["status"]) for c in got] == [
        ("POST", "http", f"{name}:{port}", "/alert", 502),
        ("GET", "https", "alerts.internal.example.com", "/v1/notify", 502),
    ]
    assert got[0]["data"]["url"] == f"http://{name}:{port}/alert?x=1" and got[0]["body"] == '{"a": 1}'
    assert "no fake; not forwarded" in got[1]["summary"]


def test_faults_and_stubs_apply_to_intercepted_calls(proxied: dict[str, str], api: httpx.Client, ns: str) -> None:
    r = api.post("/faults", json={"service": "pagerduty", "action": "reset", "times": 1, "match": {"namespace": ns}})
    assert r.status_code == 201
    with requests.Session() as session:
        with pytest.raises(requests.exceptions.ConnectionError):
            session.post("https://events.pagerduty.com/v2/enqueue", json=ALERT, timeout=10)
        # The tunnel's TCP connection was reset; a new tunnel works.
        assert session.post("https://events.pagerduty.com/v2/enqueue", json=ALERT, timeout=10).status_code == 202
    r = api.post(
        "/stubs",
        json={
            "service": "unmatched",
            "match": {"host": "hooks.example.com"},
            "response": {"status": 201, "json": {"id": 7}},
        },
    )
    assert r.status_code == 201, r.text
    r = requests.post("https://hooks.example.com/alerts", json={}, timeout=10)
    assert (r.status_code, r.json()) == (201, {"id": 7})
    r = api.post("/faults", json={"service": "slack", "preset": "rate_limited", "match": {"namespace": ns}})
    assert r.status_code == 201
    assert WebhookClient(f"https://hooks.slack.com{HOOK}").send(text="x").status_code == 429
    got = calls(api, namespace=ns)
    assert [(c["service"], (c["fault"] or {}).get("action"), c["stub"] is not None) for c in got] == [
        ("pagerduty", "reset", False),
        ("pagerduty", None, False),
        ("unmatched", None, True),
        ("slack", "error", False),
    ]
    assert got[0]["fault"]["reason"] == "connection reset" and got[0]["response"] is None


def test_timeout_fault_holds_the_tunnel(proxied: dict[str, str], api: httpx.Client, ns: str) -> None:
    api.post("/faults", json={"service": "openai", "action": "timeout", "delay_ms": 5000, "match": {"namespace": ns}})
    client = openai.OpenAI(api_key="sk-test", max_retries=0, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert time.monotonic() - started < 4
    (call,) = wait_calls(api, 1, service="openai", namespace=ns)
    assert call["fault"]["action"] == "timeout" and call["host"] == "api.openai.com"


# -- bad input ----------------------------------------------------------------------------------------------


def connect(port: int, target: str, headers: str = "") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{headers}\r\n".encode())
    return sock


def read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def read_rest(sock: socket.socket) -> bytes:
    """What arrives until the server closes the connection (a reset counts as closed)."""
    try:
        return read_all(sock)
    except ConnectionResetError:
        return b""


def test_bad_proxy_input_gets_a_clear_error_and_the_server_keeps_serving(
    hub: ThreadedHub, proxied: dict[str, str], api: httpx.Client, ns: str
) -> None:
    assert requests.post("https://events.pagerduty.com/v2/enqueue", json=ALERT, timeout=10).status_code == 202
    before = calls(api)
    port = hub.hub.http_port

    # CONNECT to a port that is neither 443 nor 80.
    with connect(port, "db.internal:5432") as sock:
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 403 ") and b"port 5432" in answer and b"never forwards" in answer
    with connect(port, "not a target") as sock:
        assert read_all(sock).startswith(b"HTTP/1.1 400 ")

    # Plain HTTP inside a tunnel that expects TLS.
    with connect(port, "api.openai.com:443") as sock:
        assert read_head(sock).startswith(b"HTTP/1.1 200 Connection established")
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: api.openai.com\r\n\r\n")
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"expects TLS" in answer

    # A handshake of garbage: the tunnel is closed.
    with connect(port, "api.openai.com:443") as sock:
        assert read_head(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"\x16\x03\x01\x00\x10" + b"\x00garbage-garbage" * 4)
        assert not read_rest(sock).startswith(b"HTTP")  # at most a TLS alert, then closed

    # Not TLS at all, not HTTP either.
    with connect(port, "api.openai.com:443") as sock:
        assert read_head(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"\x00\x01\x02\x03")
        assert read_rest(sock) == b""

    # A client that never sends its ClientHello: closed after the handshake timeout.
    with connect(port, "api.openai.com:443") as sock:
        assert read_head(sock).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert read_rest(sock) == b""
        waited = time.monotonic() - started
    assert HANDSHAKE_TIMEOUT - 0.5 < waited < HANDSHAKE_TIMEOUT + 5

    # The same on the HTTPS listener: silence, and plain HTTP.
    https_port = hub.hub.https_port
    assert https_port
    with socket.create_connection(("127.0.0.1", https_port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 400 ")

    # The server kept serving, and nothing recorded was lost.
    assert requests.post("https://events.pagerduty.com/v2/enqueue", json=ALERT, timeout=10).status_code == 202
    after = calls(api)
    assert [c["id"] for c in after[: len(before)]] == [c["id"] for c in before]
    assert len(after) == len(before) + 1


def test_proxy_authorization_variants(hub: ThreadedHub, api: httpx.Client, tmp_path: Path) -> None:
    port = hub.hub.http_port
    basic = base64.b64encode(b"ops%2Fteam:secret").decode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"POST http://hooks.slack.com{HOOK} HTTP/1.1\r\nHost: hooks.slack.com\r\n"
            f"Proxy-Authorization: Basic {basic}\r\n"
            "Content-Type: application/json\r\nContent-Length: 13\r\nConnection: close\r\n\r\n"
            '{"text":"hi"}'.encode()
        )
        assert read_all(sock).startswith(b"HTTP/1.1 200")
    # Anything but Basic, or a broken one: no namespace from it.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"POST http://hooks.slack.com{HOOK} HTTP/1.1\r\nHost: hooks.slack.com\r\nProxy-Authorization: Basic !!!\r\n"
            "Content-Type: application/json\r\nContent-Length: 13\r\nConnection: close\r\n\r\n"
            '{"text":"hi"}'.encode()
        )
        assert read_all(sock).startswith(b"HTTP/1.1 200")
    got = calls(api, service="slack")
    assert [c["namespace"] for c in got] == ["ops/team", "default"]


def test_proxy_on_a_hub_without_https_listener(server: ThreadedHub) -> None:
    """The session's plain mockhub (no --https-port): tunnels work, unknown hosts are unmatched."""
    ns = "plain-" + uuid.uuid4().hex[:8]
    with MockHub(server.url, namespace=ns) as hub:
        trust = ssl.create_default_context(cadata=hub.ca_pem().decode())
        with httpx.Client(proxy=hub.proxy_url, verify=trust, trust_env=False) as app:
            assert app.post(f"https://hooks.slack.com{HOOK}", json={"text": "x"}).text == "ok"
            assert app.get("https://example.org/").status_code == 502
            assert app.get("http://example.org/webhooks/x").status_code == 502
            # Through the proxy to mockhub's own port: served by path, as if it came directly.
            own = app.post(f"http://127.0.0.1:{server.hub.http_port}/webhooks/own", json={"a": 1})
            assert own.json() == {"ok": True}
        got = hub.calls()
    assert [(c.service, c.scheme, c.host, c.path) for c in got] == [
        ("slack", "https", "hooks.slack.com", HOOK),
        ("unmatched", "https", "example.org", "/"),
        ("unmatched", "http", "example.org", "/webhooks/x"),
        ("webhook", "http", f"127.0.0.1:{server.hub.http_port}", "/webhooks/own"),
    ]


def test_cli_env_proxy(hub: ThreadedHub, api: httpx.Client) -> None:
    from typer.testing import CliRunner

    from mockhub.cli import app

    result = CliRunner().invoke(
        app, ["env", "--proxy", "--namespace", "team-9", "--format", "json"], env={"MOCKHUB_URL": hub.url}
    )
    assert result.exit_code == 0, result.output
    env = json.loads(result.output)
    assert env["HTTPS_PROXY"] == f"http://team-9:mockhub@127.0.0.1:{hub.hub.http_port}"
    assert env["NODE_USE_ENV_PROXY"] == "1" and "127.0.0.1" in env["NO_PROXY"]
    assert Path(env["NODE_EXTRA_CA_CERTS"]).read_bytes() == api.get("/tls/ca.pem").content
    assert Path(env["SSL_CERT_FILE"]).read_bytes() == api.get("/tls/bundle.pem").content
    plain = CliRunner().invoke(app, ["env", "--format", "json"], env={"MOCKHUB_URL": hub.url})
    assert "HTTPS_PROXY" not in json.loads(plain.output)
    # A call through that proxy lands in the namespace.
    trust = ssl.create_default_context(cafile=env["NODE_EXTRA_CA_CERTS"])
    with httpx.Client(proxy=env["HTTPS_PROXY"], verify=trust, trust_env=False) as client:
        assert client.post(f"https://hooks.slack.com{HOOK}", json={"text": "cli"}).text == "ok"
    assert [c["host"] for c in calls(api, namespace="team-9")] == ["hooks.slack.com"]
