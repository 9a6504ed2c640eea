"""The web UI at /ui: served safely from the package, and driven in a real Chromium (Playwright).

Browser tests need Debian's Chromium at /usr/bin/chromium (`.ci/run` installs it); they skip without it.
Screenshots land in test-results/ at the repository root.
"""

from __future__ import annotations

import os
import re
import smtplib
import socket
import time
from collections.abc import Iterator
from email.message import EmailMessage
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, Playwright, Request, expect, sync_playwright
from support import extra_hub

from mockhub.server import ThreadedHub
from mockhub.ui import ASSETS, CSP

CHROMIUM = os.environ.get("MOCKHUB_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
expect.set_options(timeout=15_000)  # generous: the machine may be busy; nothing here measures speed
RESULTS = Path(__file__).resolve().parent.parent / "test-results"

browser_test = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
)


# -- served from the package, safely (no browser needed) ---------------------------------------------


def test_ui_files_ship_in_the_package() -> None:
    root = files("mockhub.ui")
    for name in ("index.html", "app.js", "style.css"):
        assert root.joinpath(name).is_file(), name
    assert set(ASSETS) == {"index.html", "app.js", "style.css"}


def test_ui_is_served_with_a_strict_policy(api: httpx.Client) -> None:
    for path in ("/ui", "/ui/"):
        r = api.get(path)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-content-type-options"] == "nosniff"
        assert '<script src="/ui/app.js"' in r.text
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'none'"
    assert api.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
    assert api.get("/ui/style.css").headers["content-type"].startswith("text/css")
    missing = api.get("/ui/secrets.txt")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_ui_source_has_no_inline_script_and_no_html_sinks() -> None:
    root = files("mockhub.ui")
    html = root.joinpath("index.html").read_text()
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None, "inline <script> would need 'unsafe-inline'"
    assert re.search(r"\son[a-z]+\s*=", html) is None, "inline event handlers are blocked by the CSP"
    js = root.joinpath("app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in js, f"app.js must render call data as text, not through {sink}"


def test_calls_page_back_with_before(api: httpx.Client) -> None:
    for i in range(7):
        api.post(f"/webhooks/page/{i}", json={"i": i})
    seqs = [c["seq"] for c in api.get("/calls", params={"order": "desc", "limit": 3}).json()["calls"]]
    older = api.get("/calls", params={"order": "desc", "limit": 3, "before": seqs[-1]}).json()["calls"]
    assert [c["seq"] for c in older] == [seqs[-1] - 1, seqs[-1] - 2, seqs[-1] - 3]
    rest = api.get("/calls", params={"order": "desc", "limit": 3, "before": older[-1]["seq"]}).json()["calls"]
    assert [c["data"]["i"] for c in rest] == [0]


def test_raw_bodies_never_run_on_mockhubs_origin(api: httpx.Client) -> None:
    api.post("/webhooks/html", content=b"<script>alert(1)</script>", headers={"content-type": "text/html"})
    call = api.get("/calls").json()["calls"][0]
    raw = api.get(f"/calls/{call['id']}/raw")
    assert raw.content == b"<script>alert(1)</script>"
    assert raw.headers["content-security-policy"].startswith("sandbox")
    assert raw.headers["x-content-type-options"] == "nosniff"


# -- in a real browser -------------------------------------------------------------------------------


class Watched:
    """A page plus everything it did that a test may want to assert never happened."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.failed: dict[str, str | None] = {}
        self.responses: list[str] = []
        page.on("requestfailed", lambda r: self.failed.__setitem__(r.url, r.failure))
        page.on("response", lambda r: self.responses.append(r.url))
        page.on("dialog", self._dialog)
        page.on("request", self._request)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", self._console)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _console(self, msg: ConsoleMessage) -> None:
        # CSP and sandbox refusals are console errors too; only failures of app.js itself matter here.
        if msg.type == "error" and "app.js" in (msg.location or {}).get("url", ""):
            self.errors.append(msg.text)

    def open_ui(self, base_url: str, query: str = "") -> Page:
        self.page.goto(f"{base_url}/ui{query}")
        # "live" means the first page of calls is listed and the event stream is connected.
        expect(self.page.locator("#conn")).to_have_attribute("data-state", "live", timeout=15_000)
        return self.page


@pytest.fixture(scope="session")
def playwright_session() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright_session: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    chromium = playwright_session.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def watched(browser: Browser, api: httpx.Client) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    w = Watched(page)
    yield w
    context.close()
    assert not w.errors, f"the UI's script failed: {w.errors}"


def screenshot(page: Page, name: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    page.screenshot(path=str(RESULTS / name), full_page=False)


def send_email(
    server: ThreadedHub, subject: str, html: str, text: str = "plain part", inline_png: dict[str, bytes] | None = None
) -> None:
    """Send a text + HTML email; `inline_png` maps Content-IDs to PNG images related to the HTML."""
    msg = EmailMessage()
    msg["From"] = "Alerts <alerts@example.com>"
    msg["To"] = "ops@example.com"
    msg["Subject"] = subject
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    for cid, png in (inline_png or {}).items():
        msg.get_payload()[1].add_related(png, "image", "png", cid=f"<{cid}>", filename=f"{cid}.png")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=10) as smtp:
        smtp.send_message(msg)


def pipelined_webhooks(server: ThreadedHub, n: int) -> int:
    """POST `n` webhooks over one keep-alive connection, pipelined (HTTP/1.1): a fast real client."""
    requests = []
    for i in range(n):
        body = b'{"i": %d, "text": "load %d"}' % (i, i)
        requests.append(
            b"POST /webhooks/load/%d HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (i, len(body), body)
        )
    answered = 0
    tail = b""
    with socket.create_connection(("127.0.0.1", server.hub.http_port), timeout=60) as sock:
        sock.sendall(b"".join(requests))
        while answered < n:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            data = tail + chunk
            answered += data.count(b"HTTP/1.1 200 ")
            tail = data[-16:]  # a status line split across reads is counted once, in the next round
            answered -= tail.count(b"HTTP/1.1 200 ")
    return answered + tail.count(b"HTTP/1.1 200 ")


def rows(page: Page) -> Any:
    return page.locator("#list .row")


@pytest.mark.browser
@browser_test
def test_a_webhook_posted_after_load_appears_live(watched: Watched, server: ThreadedHub, api: httpx.Client) -> None:
    api.post("/webhooks/before", json={"summary": "already there"})
    page = watched.open_ui(server.url)
    expect(rows(page)).to_have_count(1)
    page.evaluate("window.__sameDocument = true")

    api.post("/webhooks/alerts/disk", json={"severity": "critical", "summary": "disk full on db-1"})
    api.post("/faults", json={"service": "webhook", "action": "error", "preset": "rate_limited"})
    api.post("/webhooks/alerts/disk", json={"summary": "second try"})

    expect(rows(page)).to_have_count(3)
    newest = rows(page).first
    expect(newest).to_contain_text("POST /webhooks/alerts/disk")
    expect(newest).to_contain_text("second try")
    expect(newest.locator(".badge.svc")).to_have_text("webhook")
    expect(newest.locator(".status")).to_have_text("429")
    expect(newest.locator(".badge.fault")).to_contain_text("rate_limited")
    expect(rows(page).nth(1).locator(".status")).to_have_text("200")
    expect(rows(page).nth(1)).to_contain_text("disk full on db-1")
    expect(rows(page).nth(1).locator(".badge.fault")).to_have_count(0)
    expect(page.locator("#calls-total")).to_have_text("3")
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded instead of updating live"
    screenshot(page, "ui-list.png")


@pytest.mark.browser
@browser_test
def test_clicking_an_email_shows_its_subject_text_source_and_html_in_a_sandbox(
    watched: Watched, server: ThreadedHub, api: httpx.Client
) -> None:
    page = watched.open_ui(server.url)
    send_email(
        server, "Disk alert on db-1", "<h1 style='color:#c00'>Disk 91% full</h1><p>Act now.</p>", "Disk 91% full"
    )
    row = rows(page).filter(has_text="Disk alert on db-1")
    expect(row.locator(".badge.svc")).to_have_text("smtp")
    expect(row).to_contain_text("Alerts <alerts@example.com> → ops@example.com")
    row.click()

    detail = page.locator("#detail")
    expect(detail.locator("h3.subject")).to_have_text("Disk alert on db-1")
    frame_el = detail.locator("iframe.email-html")
    expect(frame_el).to_have_attribute("sandbox", "")
    expect(page.frame_locator("iframe.email-html").locator("h1")).to_have_text("Disk 91% full")
    screenshot(page, "ui-email.png")

    detail.locator(".subtab[data-tab=text]").click()
    expect(detail.locator(".tab-body pre")).to_contain_text("Disk 91% full")
    detail.locator(".subtab[data-tab=headers]").click()
    expect(detail.locator(".tab-body")).to_contain_text("Disk alert on db-1")
    detail.locator(".subtab[data-tab=attachments]").click()
    expect(detail.locator(".tab-body")).to_contain_text("no attachments")
    detail.locator(".subtab[data-tab=source]").click()
    expect(detail.locator(".tab-body pre")).to_contain_text("Subject: Disk alert on db-1")
    expect(detail.locator(".tab-body pre")).to_contain_text("Content-Type: text/html")


# A 2x1 PNG (red, blue): small enough to inline, real enough for the browser to decode.
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000020000000108020000007b40e8dd"
    "0000000d49444154789c63f8cf0004ff01070001ffe2239e590000000049454e44ae426082"
)


@pytest.mark.browser
@browser_test
def test_inline_cid_images_show_from_the_emails_own_parts(
    watched: Watched, server: ThreadedHub, api: httpx.Client
) -> None:
    page = watched.open_ui(server.url)
    html = '<p>CPU:</p><img id="graph" src="cid:graph@mockhub"><img id="gone" src="cid:nope">'
    send_email(server, "Graph attached inline", html, inline_png={"graph@mockhub": TINY_PNG})

    rows(page).filter(has_text="Graph attached inline").click()
    graph = page.frame_locator("iframe.email-html").locator("img#graph")
    expect(graph).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
    assert graph.evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])") == [2, 1]
    # A cid: naming no part of the email stays as it was, and nothing is fetched for it (the browser
    # may try the cid: URL itself, which its policy refuses; it cannot leave the browser).
    expect(page.frame_locator("iframe.email-html").locator("img#gone")).to_have_attribute("src", "cid:nope")
    assert [u for u in watched.requests if "nope" in u and not u.startswith("cid:")] == []
    attachments = [u for u in watched.requests if "/attachments/" in u]
    assert attachments and all(u.endswith("/attachments/0") for u in attachments)


@pytest.mark.browser
@browser_test
def test_hostile_email_html_executes_and_loads_nothing(
    watched: Watched, server: ThreadedHub, api: httpx.Client
) -> None:
    page = watched.open_ui(server.url)
    hook = f"{server.url}/webhooks/pwned"
    payload = f"""
      <h1 id="visible">Quarterly report</h1>
      <script>alert("script"); parent.document.title = "pwned"; document.body.dataset.ran = "script";</script>
      <img src="x" onerror="alert('onerror'); parent.document.body.dataset.pwned = 'onerror'">
      <svg onload="alert('svg')"><circle r="3"/></svg>
      <body onload="alert('body')">
      <img src="{hook}/img">
      <link rel="stylesheet" href="{hook}/css">
      <link rel="prefetch" href="{hook}/prefetch">
      <div style="background-image: url('{hook}/bg')">styled</div>
      <style>@import url("{hook}/import"); p {{ background: url("{hook}/style-bg"); }}</style>
      <iframe src="{hook}/frame"></iframe>
      <iframe srcdoc="<script>parent.parent.document.title='nested'</script>"></iframe>
      <object data="{hook}/object"></object>
      <video src="{hook}/video" autoplay></video>
      <form action="{hook}/form" method="post"><input name="a" value="1" autofocus onfocus="alert('focus')"></form>
      <meta http-equiv="refresh" content="0;url={hook}/refresh">
      <a href="javascript:alert('href')">click</a>
      <p>end of mail</p>
    """
    send_email(server, "Quarterly report", payload)
    title = page.title()
    rows(page).filter(has_text="Quarterly report").click()
    frame = page.frame_locator("iframe.email-html")
    expect(frame.locator("#visible")).to_have_text("Quarterly report")
    expect(frame.locator("p").last).to_have_text("end of mail")
    page.wait_for_timeout(1500)  # give any refresh, load or handler the chance to run

    assert watched.dialogs == []
    assert page.title() == title
    assert page.evaluate("document.body.dataset.pwned === undefined")
    email_frame = next(f for f in page.frames if f.url == "about:srcdoc")
    assert email_frame.evaluate("document.body.dataset.ran === undefined")
    assert email_frame.evaluate("document.getElementById('visible') !== null"), "the frame navigated away"
    # Chromium reports loads refused by the policy as failed requests ("csp"): they never leave the browser.
    origin = server.url
    for url in watched.requests:
        path = url.removeprefix(origin)
        if url.startswith(origin) and re.match(r"/(ui|calls|faults|stubs|limits|services)\b", path):
            continue
        assert watched.failed.get(url) in ("csp", "net::ERR_BLOCKED_BY_CSP"), f"unexpected load: {url}"
    for url in watched.responses:
        assert "pwned" not in url, f"the email's HTML reached the network: {url}"
    pwned = api.get("/calls", params={"path": "/webhooks/pwned*"}).json()
    assert pwned["count"] == 0, f"the email's HTML reached the network: {[c['path'] for c in pwned['calls']]}"
    screenshot(page, "ui-email-hostile.png")


@pytest.mark.browser
@browser_test
def test_secret_headers_are_masked_and_bodies_pretty_printed(
    watched: Watched, server: ThreadedHub, api: httpx.Client
) -> None:
    page = watched.open_ui(server.url)
    api.post(
        "/webhooks/signed",
        json={"event": {"kind": "deploy", "ok": True}},
        headers={"Authorization": "Bearer sk-live-TOPSECRET-1", "X-Api-Key": "key-TOPSECRET-2", "X-Trace": "t-1"},
    )
    api.post("/webhooks/form", data={"To": "+15551234567", "Body": "CPU high"})
    rows(page).filter(has_text="/webhooks/signed").click()
    detail = page.locator("#detail")
    expect(detail).to_contain_text("Bearer ••••••••")
    expect(detail.locator("td.masked")).to_have_count(2)
    expect(detail).to_contain_text("t-1")
    expect(detail.locator("pre.json").first).to_contain_text('"kind": "deploy"')
    assert "TOPSECRET" not in detail.inner_text()
    assert "TOPSECRET" not in page.content()

    # A webhook URL's credential is its last path segment: masked in the list and in the detail.
    api.post("/services/T0SECRET/B0SECRET/url-TOPSECRET-3", json={"text": "deploy done"})
    row = rows(page).filter(has_text="/services/T0SECRET/B0SECRET/••••••••")
    expect(row).to_have_count(1)
    row.click()
    expect(detail).to_contain_text("POST /services/T0SECRET/B0SECRET/••••••••")
    assert "TOPSECRET" not in page.content()

    rows(page).filter(has_text="/webhooks/form").click()
    expect(detail.locator("h4", has_text="form fields")).to_be_visible()
    expect(detail.locator("table.kv").filter(has_text="CPU high").first).to_contain_text("+15551234567")


@pytest.mark.browser
@browser_test
def test_a_call_whose_data_was_cut_shows_in_the_detail_view(
    watched: Watched, server: ThreadedHub, api: httpx.Client
) -> None:
    """Issue 22: a body nested past every reader's limit neither breaks the list nor the detail view."""
    page = watched.open_ui(server.url)
    deep = '{"a":' * 300 + '"bottom"' + "}" * 300
    api.post("/webhooks/deep", content=deep, headers={"content-type": "application/json"})
    api.post("/webhooks/after", json={"text": "still listed"})
    expect(rows(page).filter(has_text="/webhooks/after")).to_have_count(1)
    rows(page).filter(has_text="/webhooks/deep").click()
    detail = page.locator("#detail")
    expect(detail.locator("p.truncated")).to_contain_text("cut to stay readable")
    expect(detail.locator("details.section", has_text="Parsed data")).to_contain_text(
        "truncated, nested deeper than 64 levels"
    )
    # The whole list reloads with it (GET /calls), and the other calls still open.
    page.reload()
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    rows(page).filter(has_text="/webhooks/after").click()
    expect(detail).to_contain_text("still listed")


@pytest.mark.browser
@browser_test
def test_filters_pause_and_clear(watched: Watched, server: ThreadedHub, api: httpx.Client) -> None:
    api.post("/webhooks/a", json={"text": "alpha"})
    api.post("/ns/team-b/webhooks/b", json={"text": "beta"})
    send_email(server, "Gamma mail", "<p>gamma</p>")
    page = watched.open_ui(server.url)
    expect(rows(page)).to_have_count(3)

    page.select_option("#f-service", "smtp")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("Gamma mail")
    api.post("/webhooks/c", json={"text": "not an email"})
    send_email(server, "Delta mail", "<p>delta</p>")
    expect(rows(page)).to_have_count(2)
    expect(rows(page).first).to_contain_text("Delta mail")

    page.select_option("#f-service", "")
    page.fill("#f-namespace", "team-b")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("team-b")
    page.fill("#f-namespace", "")
    page.fill("#f-text", "alpha")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("/webhooks/a")
    page.fill("#f-text", "/webhooks/c")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("not an email")
    page.fill("#f-text", "")
    expect(rows(page)).to_have_count(5)

    page.click("#pause")
    expect(page.locator("#conn")).to_have_attribute("data-state", "paused")
    api.post("/webhooks/while-paused", json={"text": "held"})
    page.wait_for_timeout(500)
    expect(rows(page)).to_have_count(5)
    page.click("#pause")
    expect(rows(page)).to_have_count(6)
    expect(rows(page).first).to_contain_text("/webhooks/while-paused")

    page.click("#clear")
    expect(rows(page)).to_have_count(0)
    api.post("/webhooks/after-clear", json={"text": "fresh"})
    expect(rows(page)).to_have_count(1)
    assert api.get("/calls/count").json()["count"] == 7, "Clear only clears the view, not the journal"
    page.click("#unclear")
    expect(rows(page)).to_have_count(7)


@pytest.mark.browser
@browser_test
def test_fault_and_stub_panels_show_rules_created_through_the_api(
    watched: Watched, server: ThreadedHub, api: httpx.Client
) -> None:
    page = watched.open_ui(server.url)
    fault = api.post(
        "/faults",
        json={
            "service": "webhook",
            "match": {"path": "/webhooks/pay*"},
            "action": "error",
            "preset": "server_error",
            "times": 3,
        },
    ).json()
    stub = api.post(
        "/stubs",
        json={"service": "webhook", "match": {"path": "/webhooks/dup"}, "response": {"status": 409, "json": {"e": 1}}},
    ).json()
    expect(page.locator("#faults-count")).to_have_text("1")  # refreshed in the background, no reload
    assert api.post("/webhooks/pay", json={}).status_code == 500

    page.click("#tab-faults")
    fault_row = page.locator("#faults-table tbody tr")
    expect(fault_row).to_have_count(1)
    expect(fault_row).to_contain_text(fault["id"])
    expect(fault_row).to_contain_text("server_error")
    expect(fault_row).to_contain_text("/webhooks/pay*")
    expect(fault_row).to_contain_text("1 / 1")  # fired / seen
    expect(fault_row.locator("td").nth(5)).to_have_text("2")  # remaining
    screenshot(page, "ui-faults.png")
    fault_row.get_by_role("button", name="Delete").click()
    expect(fault_row).to_have_count(0)
    assert api.get("/faults").json()["count"] == 0

    page.click("#tab-stubs")
    stub_row = page.locator("#stubs-table tbody tr")
    expect(stub_row).to_contain_text(stub["id"])
    expect(stub_row).to_contain_text("409")
    stub_row.get_by_role("button", name="Delete").click()
    expect(stub_row).to_have_count(0)
    assert api.get("/stubs").json()["count"] == 0


@pytest.mark.browser
@browser_test
def test_limits_panel_shows_rules_and_their_keys(watched: Watched, server: ThreadedHub, api: httpx.Client) -> None:
    page = watched.open_ui(server.url)
    made = api.post("/limits", json={"service": "slack", "key": "channel", "requests": 1, "per": "1m"}).json()
    expect(page.locator("#limits-count")).to_have_text("1")
    hook = "/api/chat.postMessage"
    for _ in range(2):
        api.post(hook, json={"channel": "#ops", "text": "x"}, headers={"authorization": "Bearer xoxb-1"})
    page.click("#tab-limits")
    page.click("#limits-refresh")
    row = page.locator("#limits-table tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(made["id"])
    expect(row).to_contain_text("1 requests / 1m")
    expect(row).to_contain_text("channel")
    expect(row).to_contain_text("1 / 1")  # passed / limited
    expect(row).to_contain_text("#ops: 1")
    row.get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    assert api.get("/limits").json()["count"] == 0


@pytest.mark.browser
@browser_test
@pytest.mark.timeout(300)
def test_stays_usable_with_ten_thousand_calls(watched: Watched, server: ThreadedHub, api: httpx.Client) -> None:
    assert pipelined_webhooks(server, 10_000) == 10_000
    assert api.get("/calls/count").json()["count"] == 10_000
    last = api.get("/calls", params={"order": "desc", "limit": 1}).json()["calls"][0]["seq"]

    started = time.monotonic()
    page = watched.open_ui(server.url)
    expect(rows(page)).to_have_count(200)  # one page, not ten thousand rows
    expect(page.locator("#calls-total")).to_have_text("10000")
    expect(page.locator("#shown")).to_contain_text("200 shown of 10,000")
    assert rows(page).first.get_attribute("data-seq") == str(last)

    page.click("#more")
    expect(rows(page)).to_have_count(400)
    assert rows(page).last.get_attribute("data-seq") == str(last - 399)

    api.post("/webhooks/live-one", json={"text": "still live"})
    expect(rows(page).first).to_contain_text("/webhooks/live-one")
    rows(page).nth(300).click()
    expect(page.locator("#detail pre.json").first).to_contain_text('"i":')
    assert time.monotonic() - started < 60  # generous: usable, not a benchmark
    screenshot(page, "ui-10k.png")


@pytest.mark.browser
@browser_test
def test_the_ui_works_behind_the_admin_token(watched: Watched) -> None:

    with extra_hub(admin_token="ui-s3cret") as guarded:
        assert httpx.get(f"{guarded.url}/ui").status_code == 401
        page = watched.open_ui(guarded.url, "?token=ui-s3cret")
        httpx.post(f"{guarded.url}/webhooks/guarded", json={"summary": "behind the token"})
        expect(rows(page)).to_have_count(1)
        expect(rows(page).first).to_contain_text("behind the token")
        rows(page).first.click()
        expect(page.locator("body")).to_contain_text("/webhooks/guarded")


@pytest.mark.browser
@browser_test
def test_a_fake_of_ones_own_is_masked_and_summarised_in_the_ui(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The throwaway fake of test_catalogue.py: its colour, secret path part and summary reach the UI."""
    from support import own_fake_hub
    from test_catalogue import ACME

    folder = tmp_path_factory.mktemp("acme-ui")
    with own_fake_hub(folder, "acme_ui_fake", ACME, "AcmePagerService") as hub:
        r = httpx.post(
            f"{hub.url}/acme/v1/keys/key-TOPSECRET/page",
            json={"pager": "oncall-7", "message": "disk full on db-1", "title": "Disk"},
            headers={"x-acme-key": "hdr-TOPSECRET"},
        )
        assert r.status_code == 202
        page = browser.new_page()
        try:
            page.goto(f"{hub.url}/ui")
            row = page.locator("#list .row").filter(has_text="page oncall-7: disk full on db-1")
            expect(row).to_have_count(1)
            expect(row).to_contain_text("/acme/v1/keys/••••••••/page")
            badge = row.locator(".badge.svc")
            expect(badge).to_have_text("acmepager")
            assert badge.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(255, 136, 0)"
            row.click()
            detail = page.locator("#detail")
            expect(detail).to_contain_text("x-acme-key")
            assert "TOPSECRET" not in page.content()
            screenshot(page, "ui-own-fake.png")
        finally:
            page.close()


@pytest.mark.browser
@browser_test
def test_credentials_in_queries_forms_and_json_bodies_are_masked(
    watched: Watched, server: ThreadedHub, api: httpx.Client
) -> None:
    """Slack's form `token=`, a webhook's `?api_key=`, PagerDuty's `routing_key`: never shown in full."""
    page = watched.open_ui(server.url)
    slack = api.post(
        "/api/chat.postMessage",
        data={"token": "xoxb-TOPSECRET-1", "channel": "#ops", "text": "form post"},
        params={"token": "xoxb-TOPSECRET-2"},
    )
    assert slack.status_code == 200
    api.post("/webhooks/keyed", params={"api_key": "TOPSECRET-3", "page": "2"}, json={"max_tokens": 7})
    api.post(
        "/v2/enqueue",
        json={
            "routing_key": "R0TOPSECRET4" + "0" * 20,
            "event_action": "trigger",
            "payload": {"summary": "disk full", "source": "db-1", "severity": "critical"},
        },
    )
    detail = page.locator("#detail")
    rows(page).filter(has_text="form post").click()
    expect(detail.locator("h4", has_text="form fields")).to_be_visible()
    expect(detail).to_contain_text("#ops")
    expect(detail.locator("td.masked")).to_have_count(2)  # the form field and the query parameter
    assert "TOPSECRET" not in page.content()

    rows(page).filter(has_text="/webhooks/keyed").click()
    expect(detail).to_contain_text("page")
    expect(detail).to_contain_text('"max_tokens": 7')  # a field that only looks like a secret stays
    assert "TOPSECRET" not in page.content()

    rows(page).filter(has_text="disk full").click()
    expect(detail).to_contain_text('"routing_key"')
    expect(detail).to_contain_text("db-1")
    assert "TOPSECRET" not in page.content()
