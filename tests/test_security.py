"""Safe by default: no path traversal (attachments, raw bodies, UI files, exports, recordings),
no CORS grants, and no fake that calls out without MOCKHUB_CALLBACK_ALLOW's say-so."""

from __future__ import annotations

import http.client
import json
import re
import smtplib
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

import mockhub.services
from mockhub.filters import CallFilter
from mockhub.journal import Call, ResponseRecord
from mockhub.recording import JsonlSink, load_journal
from mockhub.server import Hub, ThreadedHub
from mockhub.settings import Settings

TIMEOUT = 10
SECRET = "TOP-SECRET-OUTSIDE-THE-FOLDER"


def _get(server: ThreadedHub, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A GET with the path sent exactly as given (httpx would normalise `..` segments away)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.hub.http_port, timeout=TIMEOUT)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.fixture
def email_id(server: ThreadedHub, api: httpx.Client) -> str:
    """A recorded email with an HTML attachment whose file name tries to climb out of any folder."""
    msg = EmailMessage()
    msg["From"] = "a@example.com"
    msg["To"] = "traversal@example.com"
    msg["Subject"] = "attachments"
    msg.set_content("see attached\n")
    msg.add_attachment(b"<script>alert(1)</script>", maintype="text", subtype="html", filename="../../evil.html")
    msg.add_attachment(b"plain", maintype="application", subtype="octet-stream", filename="..\\..\\win.bin")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp:
        smtp.send_message(msg)
    calls = api.get("/calls", params={"to": "traversal@example.com", "wait": 5}).json()["calls"]
    assert len(calls) == 1
    call_id: str = calls[0]["id"]
    return call_id


@pytest.mark.parametrize(
    "suffix",
    [
        "/attachments/../../../../etc/passwd",
        "/attachments/..%2f..%2f..%2fetc%2fpasswd",
        "/attachments/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/attachments/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/attachments/0/../../../../etc/passwd",
        "/attachments/..",
        "/attachments/%2e%2e",
        "/../../../../etc/passwd",
        "/raw/../../../../etc/passwd",
        "/attachments/0%00",
        "/attachments/-1",
        "/attachments/1e3",
        "/attachments/0x1",
        "/attachments/99999999999999999999999999999999",
        "/attachments/" + "9" * 5000,
    ],
)
def test_attachment_and_raw_paths_cannot_escape(server: ThreadedHub, email_id: str, suffix: str) -> None:
    status, _, body = _get(server, f"/calls/{email_id}{suffix}")
    assert 400 <= status < 500, (status, body[:200])
    assert b"root:" not in body
    if status != 431:  # an over-long request line is refused before routing, as plain text
        assert "error" in json.loads(body)


@pytest.mark.parametrize(
    "path",
    [
        "/calls/..%2f..%2f..%2fetc%2fpasswd/raw",
        "/calls/../../../etc/passwd/raw",
        "/calls/%2e%2e/raw",
        "/ui/../../pyproject.toml",
        "/ui/..%2f..%2fpyproject.toml",
        "/ui/%2e%2e%2fserver.py",
        "/ui/__init__.py",
        "/tls/../settings.py",
    ],
)
def test_other_file_like_paths_cannot_escape(server: ThreadedHub, api: httpx.Client, path: str) -> None:
    status, _, body = _get(server, path)
    assert 400 <= status < 500, (status, body[:200])
    assert b"root:" not in body
    assert b"[project]" not in body
    assert b"import " not in body


def test_an_attachment_download_names_no_folder_and_cannot_run(server: ThreadedHub, email_id: str) -> None:
    status, headers, body = _get(server, f"/calls/{email_id}/attachments/0")
    assert status == 200
    assert body == b"<script>alert(1)</script>"
    assert headers["content-disposition"] == "attachment; filename*=UTF-8''evil.html"
    assert "sandbox" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    status, headers, _ = _get(server, f"/calls/{email_id}/attachments/1")
    assert status == 200
    assert headers["content-disposition"] == "attachment; filename*=UTF-8''win.bin"
    # The record keeps the name as sent: tests assert on what the application wrote.
    call = httpx.get(f"{server.url}/calls/{email_id}").json()
    assert [a["filename"] for a in call["data"]["attachments"]] == ["../../evil.html", "..\\..\\win.bin"]


def test_export_file_names_are_fixed(server: ThreadedHub, api: httpx.Client) -> None:
    api.post("/webhooks/x", json={"a": 1})
    for fmt, name in (("jsonl", "mockhub.jsonl"), ("har", "mockhub.har")):
        r = api.get("/calls/export", params={"format": fmt, "path": "/../../etc/passwd*", "service": "webhook"})
        assert r.status_code == 200
        assert r.headers["content-disposition"] == f'attachment; filename="{name}"'
    r = api.get("/calls/export", params={"format": "../../etc/passwd"})
    assert r.status_code == 422
    # A service name is checked against the fakes mockhub has, so a path-like one is refused too.
    assert api.get("/calls/export", params={"service": "../x"}).json()["error"]["code"] == "unknown_service"


# -- recordings ---------------------------------------------------------------------------------------


def _record(call_id: Any = "c_1", **extra: Any) -> dict[str, Any]:
    record = {
        "id": call_id,
        "seq": 1,
        "time": "2026-01-01T00:00:00.000000Z",
        "service": "webhook",
        "method": "POST",
        "path": "/webhooks/x",
        "body": "",
    }
    record.update(extra)
    return record


def _write_jsonl(path: Path, *records: dict[str, Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    return secret


@pytest.mark.parametrize(
    "body_file", ["../secret.txt", "bodies/../../secret.txt", "SECRET_ABSOLUTE", "link/secret.txt"]
)
def test_a_replayed_body_file_cannot_lead_outside_the_record_folder(
    tmp_path: Path, outside: Path, body_file: str
) -> None:
    folder = tmp_path / "rec"
    folder.mkdir()
    (folder / "link").symlink_to(tmp_path, target_is_directory=True)
    if body_file == "SECRET_ABSOLUTE":
        body_file = str(outside)
    path = _write_jsonl(folder / "calls.jsonl", _record(body_file=body_file), _record("c_2", body="fine"))
    skipped: list[str] = []
    calls, _ = load_journal(path, skipped=skipped)
    # The hostile line is skipped with a warning (nothing read outside the folder); the rest replays.
    assert [c.id for c in calls] == ["c_2"]
    assert len(skipped) == 1 and "body_file" in skipped[0] and "record folder" in skipped[0]
    assert all(SECRET.encode() not in c.body for c in calls)
    # The same through the server's own start-up: the line is not served, and /health counts it.
    hub = Hub(Settings(host="127.0.0.1", http_port=0, smtp_port=0, replay=path))
    assert [c.id for c in hub.journal.query(CallFilter())] == ["c_2"]
    assert hub.health()["replay_skipped"] == 1


@pytest.mark.parametrize("bad_id", [{"x": 1}, ["a"], 7, None])
def test_a_replayed_id_must_be_a_string(tmp_path: Path, bad_id: Any) -> None:
    path = _write_jsonl(tmp_path / "calls.jsonl", _record(bad_id))
    skipped: list[str] = []
    assert load_journal(path, skipped=skipped)[0] == []
    assert len(skipped) == 1 and "id must be a string" in skipped[0]


CRAFTED_IDS = ["../../escaped", "/tmp/absolute", "a/b", "..", ".", "x\\..\\..\\win", "c_\x00nul", "ok-id_1", "é" * 300]


def test_bodies_of_calls_with_crafted_ids_stay_in_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "deep" / "rec"
    recorder = JsonlSink(folder, inline_max_bytes=4)
    for n, crafted in enumerate(CRAFTED_IDS, 1):
        call = Call(service="webhook", method="POST", path="/webhooks/x", body=b"request %d" % n)
        call.id, call.seq = crafted, n
        call.response = ResponseRecord(200, {}, b"response %d" % n)
        recorder.write(call)
    recorder.close()
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert all(p.is_relative_to(folder) for p in written), written
    bodies = sorted(p.name for p in (folder / "bodies").iterdir())
    assert len(bodies) == 2 * len(CRAFTED_IDS)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+\.(request|response)", name) for name in bodies), bodies
    assert "ok-id_1.request" in bodies  # well-formed ids keep their readable names
    # ... and the recording replays byte-exact, every crafted id intact.
    calls, _ = load_journal(folder)
    assert [c.id for c in calls] == CRAFTED_IDS
    assert [c.body for c in calls] == [b"request %d" % n for n in range(1, len(CRAFTED_IDS) + 1)]
    assert [c.response.body for c in calls if c.response] == [
        b"response %d" % n for n in range(1, len(CRAFTED_IDS) + 1)
    ]


def test_a_replayed_crafted_id_is_inert_in_a_running_server(tmp_path: Path) -> None:
    """Served back as data, looked up as a key, never used as a path; new calls record normally."""
    replay = _write_jsonl(tmp_path / "old.jsonl", _record("../../../../etc/passwd", body="old"))
    record_dir = tmp_path / "rec"
    settings = Settings(
        host="127.0.0.1", http_port=0, smtp_port=0, replay=replay, record_dir=record_dir, record_inline_max_bytes=0
    )
    with ThreadedHub(settings) as hub, httpx.Client(base_url=hub.url, timeout=TIMEOUT) as client:
        calls = client.get("/calls").json()["calls"]
        assert [c["id"] for c in calls] == ["../../../../etc/passwd"]
        assert client.post("/webhooks/new", content=b"new body").status_code == 200
        status, _, body = _get(hub, "/calls/..%2F..%2F..%2F..%2Fetc%2Fpasswd/raw")
        assert status == 404
        assert b"root:" not in body
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.is_relative_to(record_dir) or p == replay for p in written), written
    (new,) = load_journal(record_dir)[0]
    assert new.body == b"new body"


# -- CORS -------------------------------------------------------------------------------------------

ORIGIN = "http://evil.example"
CORS_PATHS = [
    ("GET", "/calls"),
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/ui"),
    ("POST", "/faults"),
    ("POST", "/webhooks/cors"),
    ("POST", "/services/T000/B000/XXXX"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/messages"),
    ("POST", "/2010-04-01/Accounts/AC1/Messages.json"),
]


def _no_cors_grant(headers: httpx.Headers) -> None:
    granted = [k for k in headers if k.lower().startswith("access-control-")]
    assert not granted, {k: headers[k] for k in granted}


@pytest.mark.parametrize(("method", "path"), CORS_PATHS)
def test_no_cors_headers_on_a_cross_origin_request(api: httpx.Client, method: str, path: str) -> None:
    r = api.request(method, path, headers={"Origin": ORIGIN}, json={} if method == "POST" else None)
    assert r.status_code < 500
    _no_cors_grant(r.headers)


@pytest.mark.parametrize(("method", "path"), CORS_PATHS)
def test_a_cross_origin_preflight_gets_no_grant(api: httpx.Client, method: str, path: str) -> None:
    r = api.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type, authorization, x-mockhub-token",
        },
    )
    assert r.status_code < 500
    _no_cors_grant(r.headers)


# -- outbound calls ---------------------------------------------------------------------------------

_NETWORK_IMPORT = re.compile(
    r"^\s*(?:import|from)\s+(?:httpx|aiohttp|requests|urllib3|urllib\.request|http\.client)\b", re.MULTILINE
)
_NETWORK_CALL = re.compile(r"\b(?:open_connection|create_connection|sock_connect|urlopen)\s*\(|\.connect\(")


def test_every_fake_that_can_call_out_asks_the_allowlist() -> None:
    """Outbound calls live in `mockhub/outbound.py` (`Outbound`), which asks the refusal (MOCKHUB_CALLBACK_ALLOW,
    and never mockhub's own inspection API) before every delivery; a fake that opens a connection itself
    must ask `ctx.outbound_refusal` too."""
    from mockhub import outbound

    folder = Path(mockhub.services.__file__).parent
    for module in sorted(folder.rglob("*.py")):
        source = module.read_text()
        if _NETWORK_IMPORT.search(source) or _NETWORK_CALL.search(source):
            assert "outbound_refusal(" in source, f"{module.name} can call out but never asks outbound_refusal"
    sender = Path(outbound.__file__).read_text()
    assert _NETWORK_IMPORT.search(sender)  # the check sees the one module known to call out
    deliver = sender[sender.index("    async def deliver(") : sender.index("    async def _attempt(")]
    assert "await self._refusal(call.path)" in deliver


# -- cross-site requests ----------------------------------------------------------------------------


def test_a_foreign_page_cannot_change_state(server: ThreadedHub, api: httpx.Client) -> None:
    """No CORS stops a page from *reading* answers, not from sending a simple POST: that is refused."""
    api.post("/webhooks/kept", json={"a": 1})
    host = f"127.0.0.1:{server.hub.http_port}"
    for origin in (ORIGIN, "null", f"http://{host}.evil.example", "http://localhost:1"):
        r = api.post("/reset", headers={"Origin": origin, "Content-Type": "text/plain"})
        assert r.status_code == 403, origin
        assert r.json()["error"]["code"] == "cross_origin"
        assert api.delete("/calls", headers={"Origin": origin}).status_code == 403
    assert api.get("/calls/count").json()["count"] == 1
    # Reading is left to the browser's same-origin policy (no CORS grant, see above).
    assert api.get("/calls", headers={"Origin": ORIGIN}).status_code == 200
    # The fakes answer whoever calls them, as the real services do.
    assert api.post("/webhooks/x", json={}, headers={"Origin": ORIGIN}).status_code == 200
    # The UI's own requests (same origin), and clients that send no Origin, change state as ever.
    assert api.post("/reset", headers={"Origin": f"http://{host}"}).status_code == 200
    api.post("/webhooks/again", json={})
    assert api.post("/reset").status_code == 200
    assert api.get("/calls/count").json()["count"] == 0
