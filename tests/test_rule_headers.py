"""Fault and stub `headers` are checked when a rule is made (API, stub files, client), so the record
matches what the client really got: no 201 followed by a bare 500 or a dropped connection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from support import add_fault, add_stub

from mockhub import MockHub
from mockhub.recording import RecordingError, load_rule_files

BAD_HEADERS: list[tuple[dict[str, str], str]] = [
    ({"x-check": "✓ done"}, "latin-1"),
    ({"x-split": "a\r\nx-injected: 1"}, "CR, LF or NUL"),
    ({"x-split": "a\nb"}, "CR, LF or NUL"),
    ({"x-nul": "a\x00b"}, "CR, LF or NUL"),
    ({"bad name": "x"}, "not a valid header name"),
    ({"x-ü": "x"}, "not a valid header name"),
    ({"": "x"}, "not a valid header name"),
    ({"x:y": "x"}, "not a valid header name"),
    ({"content-length": "5"}, "mockhub sets"),
    ({"Transfer-Encoding": "chunked"}, "mockhub sets"),
]


@pytest.mark.parametrize(("headers", "why"), BAD_HEADERS)
def test_bad_fault_headers_are_refused_at_post(api: httpx.Client, headers: dict[str, str], why: str) -> None:
    r = api.post("/faults", json={"service": "webhook", "action": "error", "status": 503, "headers": headers})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith("headers"), error
    assert why in error["message"], error
    assert api.get("/faults").json()["count"] == 0
    # And the same for `malformed`, the other action that takes headers.
    r = api.post("/faults", json={"service": "webhook", "action": "malformed", "status": 200, "headers": headers})
    assert r.status_code == 422, r.text


@pytest.mark.parametrize(("headers", "why"), BAD_HEADERS)
def test_bad_stub_headers_are_refused_at_post(api: httpx.Client, headers: dict[str, str], why: str) -> None:
    r = api.post("/stubs", json={"service": "webhook", "response": {"status": 200, "headers": headers}})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"].startswith("response.headers"), r.text
    assert why in r.json()["error"]["message"]
    assert api.get("/stubs").json()["count"] == 0


def test_latin1_header_values_are_sent_and_recorded_as_sent(api: httpx.Client) -> None:
    add_stub(api, "webhook", match={"path": "/webhooks/stubbed"}, response={"headers": {"X-Cafe": "  café  "}})
    add_fault(api, "webhook", match={"path": "/webhooks/faulted"}, status=503, headers={"X-Why": "maintenance ½"})
    for path, name, value in (
        ("/webhooks/stubbed", b"x-cafe", "café"),
        ("/webhooks/faulted", b"x-why", "maintenance ½"),
    ):
        r = api.post(path, json={})
        sent = [v for k, v in r.headers.raw if k.lower() == name]
        assert sent == [value.encode("latin-1")]
        (call,) = api.get("/calls", params={"path": path}).json()["calls"]
        assert call["response"]["status"] == r.status_code
        # What the journal says was sent is what the client got.
        assert call["response"]["headers"][name.decode()] == value


@pytest.mark.parametrize(("headers", "why"), BAD_HEADERS[:5])
def test_bad_headers_in_stub_files_name_the_file(tmp_path: Path, headers: dict[str, str], why: str) -> None:
    import json

    (tmp_path / "bad.json").write_text(json.dumps([{"service": "webhook", "response": {"headers": headers}}]))
    with pytest.raises(RecordingError, match=r"bad\.json") as info:
        load_rule_files(tmp_path)
    assert why in str(info.value)


@pytest.mark.parametrize(("headers", "why"), BAD_HEADERS[:5])
def test_the_client_refuses_bad_headers_before_sending(server: Any, headers: dict[str, str], why: str) -> None:
    with MockHub(server.url) as hub:
        with pytest.raises(ValidationError, match=why.replace("(", r"\(")):
            hub.stub("webhook", status=200, headers=headers)
        with pytest.raises(ValidationError, match=why):
            hub.fault("webhook", status=503, headers=headers)
