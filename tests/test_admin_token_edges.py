"""Admin token edge cases: non-ASCII tokens sent or configured, and every path that serves the UI page."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from support import extra_hub

from mockhub.server import ThreadedHub
from mockhub.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def guarded() -> Iterator[ThreadedHub]:
    with extra_hub(admin_token="s3cret") as hub:
        yield hub


def _raw_get(hub: ThreadedHub, path: bytes, headers: bytes = b"") -> bytes:
    """A GET with raw header bytes (clients refuse to send non-ASCII header values; attackers don't)."""
    with socket.create_connection(("127.0.0.1", hub.hub.http_port), timeout=10) as sock:
        sock.sendall(b"GET " + path + b" HTTP/1.1\r\nhost: x\r\nconnection: close\r\n" + headers + b"\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    "headers",
    [
        "authorization: Bearer s3crét\r\n".encode(),
        "authorization: Bearer s3crét\r\n".encode("latin-1"),
        "x-mockhub-token: ключ\r\n".encode(),
        b"x-mockhub-token: \xff\xfe\r\n",
        b"authorization: \xc3\xa9 s3cret\r\n",
    ],
)
def test_a_non_ascii_token_sent_is_401_not_500(guarded: ThreadedHub, headers: bytes) -> None:
    answer = _raw_get(guarded, b"/calls", headers)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b'"unauthorized"' in answer


@pytest.mark.parametrize("query", [b"/calls?token=s3cr%C3%A9t", b"/calls?token=%FF", b"/calls?token=%00"])
def test_a_non_ascii_token_in_the_query_is_401(guarded: ThreadedHub, query: bytes) -> None:
    answer = _raw_get(guarded, query)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_the_right_token_still_works_every_way(guarded: ThreadedHub) -> None:
    for path, headers in (
        (b"/calls", b"authorization: Bearer s3cret\r\n"),
        (b"/calls", b"x-mockhub-token: s3cret\r\n"),
        (b"/calls?token=s3cret", b""),
        (b"/calls?token=s3%63ret", b""),
    ):
        assert _raw_get(guarded, path, headers).startswith(b"HTTP/1.1 200"), (path, headers)


@pytest.mark.parametrize("path", [b"/ui", b"/ui/", b"/ui/index.html", b"/ui/%69ndex.html"])
def test_every_path_serving_the_ui_page_needs_the_token(guarded: ThreadedHub, path: bytes) -> None:
    assert _raw_get(guarded, path).startswith(b"HTTP/1.1 401"), path
    assert _raw_get(guarded, path, b"x-mockhub-token: s3cret\r\n").startswith(b"HTTP/1.1 200"), path


@pytest.mark.parametrize("path", [b"/ui/app.js", b"/ui/style.css"])
def test_the_uis_script_and_style_stay_open(guarded: ThreadedHub, path: bytes) -> None:
    assert _raw_get(guarded, path).startswith(b"HTTP/1.1 200"), path


@pytest.mark.parametrize("token", ["tökén", "two words", "tab\there", "\u2603", ""])
def test_a_token_every_client_cannot_send_is_refused_at_start(token: str) -> None:
    with pytest.raises(ValidationError, match="printable ASCII"):
        Settings(admin_token=token)
    done = subprocess.run(
        [sys.executable, "-m", "mockhub", "serve", "--http-port", "0", "--smtp-port", "0"],
        env={"MOCKHUB_ADMIN_TOKEN": token, "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    err = done.stderr.decode()
    assert "mockhub: error: admin_token: the admin token must be printable ASCII" in err, err
    assert "Traceback" not in err
