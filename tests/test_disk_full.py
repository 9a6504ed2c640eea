"""A full disk, then space freed: no acknowledged call is lost, none is glued to a torn line, replay reads it all.

Driven on a real, small tmpfs (mounting one needs root; the test skips without it) through the real
server: the record file lives on the tmpfs, the disk is filled by another file, calls are sent while it
is full and after space is freed, and a second server replays the folder.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from mockhub.journal import Call
from mockhub.recording import load_journal
from mockhub.server import ThreadedHub
from mockhub.settings import Settings


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path) -> None:
    """Write `path` until the disk refuses another byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (65536, 4096, 1):
            while True:
                try:
                    if os.write(fd, b"x" * size) < size:
                        continue
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)


def _settings(**kw: Any) -> Settings:
    return Settings(host="127.0.0.1", http_port=0, smtp_port=0, **kw)


def test_disk_full_then_freed_loses_no_acknowledged_call(small_disk: Path) -> None:
    record = small_disk / "rec"
    acknowledged: list[int] = []
    refused: list[int] = []
    with ThreadedHub(_settings(record_dir=record)) as hub, httpx.Client(base_url=hub.url, timeout=10) as c:

        def send(i: int) -> None:
            # Bodies of a few KiB: a line spans a page boundary, so a full tmpfs writes part of it.
            r = c.post(f"/webhooks/d/{i}", json={"i": i, "pad": "p" * (1500 + 97 * i)})
            if r.is_success:
                acknowledged.append(i)
            else:
                assert r.status_code >= 500, r.text
                # The fake's own error shape, saying why: not a bare "Internal Server Error".
                assert "record" in r.text, r.text
                refused.append(i)

        send(0)
        _fill(small_disk / "filler")
        for i in range(1, 6):
            send(i)
        assert refused, "the full disk refused nothing: the test did not fill it"
        assert hub.hub.health()["status"] == "ok"
        (small_disk / "filler").unlink()
        for i in range(6, 11):
            send(i)
        assert acknowledged[-5:] == [6, 7, 8, 9, 10]
        # In memory: exactly the acknowledged calls.
        assert [x["data"]["i"] for x in c.get("/calls").json()["calls"]] == acknowledged

    # Every line on disk is a whole record: nothing torn, nothing glued.
    for file in record.glob("*.jsonl"):
        for line in file.read_bytes().splitlines():
            orjson.loads(line)

    with (
        ThreadedHub(_settings(replay=record)) as again,
        httpx.Client(base_url=again.url, timeout=10) as c,
    ):
        replayed = [x["data"]["i"] for x in c.get("/calls").json()["calls"]]
        assert c.get("/health").json()["replay_skipped"] == 0
    assert replayed == acknowledged


def _line(i: int) -> bytes:
    call = Call(service="webhook", method="POST", path=f"/webhooks/{i}", id=f"c_{i}", seq=i, data={"i": i})
    return orjson.dumps(call.to_dict())


def test_replay_skips_bad_lines_with_a_warning_and_counts_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "rec"
    folder.mkdir()
    # What an older mockhub left after ENOSPC: a torn line with the next call glued onto it.
    glued = _line(2)[:50] + _line(3)
    (folder / "calls-1.jsonl").write_bytes(_line(1) + b"\n" + glued + b"\n{oops\n" + _line(4) + b"\n")
    (folder / "calls-2.jsonl").write_bytes(b'{"id": "c_x"}\n[1, 2]\n' + _line(5) + b"\n")
    skipped: list[str] = []
    with caplog.at_level(logging.WARNING, logger="mockhub"):
        calls, _ = load_journal(folder, skipped=skipped)
    # The glued call is recovered; the torn one it was glued to was never acknowledged.
    assert [c.data["i"] for c in calls] == [1, 3, 4, 5]
    assert len(skipped) == 4, skipped
    assert any("calls-1.jsonl:2" in s for s in skipped)
    assert any("calls-1.jsonl:3" in s for s in skipped)
    assert any("calls-2.jsonl:1" in s for s in skipped)
    assert sum("skipping" in r.getMessage() for r in caplog.records) == 4

    # The server starts from that folder, serves what was good, and says how many lines it skipped.
    with ThreadedHub(_settings(replay=folder)) as hub, httpx.Client(base_url=hub.url, timeout=10) as c:
        assert [x["data"]["i"] for x in c.get("/calls").json()["calls"]] == [1, 3, 4, 5]
        assert c.get("/health").json()["replay_skipped"] == 4
