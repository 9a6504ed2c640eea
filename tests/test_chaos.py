"""Chaos (issue 22): every hostile input of the issue's table at once, against a server under steady load.

A real `mockhub serve` process (so its memory and its event loop are its own) with a replayed journal
of 10,000 calls, a 48 MiB body budget, a record folder and a connection limit. Steady clients post
tagged webhooks throughout while a probe on its own connection asks `/livez` every few ms.

Phase one, the inputs whose fixes are paging, streaming and the memory budget: `GET /calls` without
`limit` and HAR / JSONL exports of the whole journal over and over, SSE readers that never read (one
with the whole backlog), long polls with a huge `min`, the body budget filled again and again, and
rounds of 100 long polls on one filter. Asserted: the probe's p99 (against what it sees of the idle
server on this shared machine), every round of 100 long polls woken promptly.

Phase two adds the inputs that stress parsing and matching on top (issue 22 items 1, 2 and 4: nested
JSON, a 20,000-part multipart body, MIME nested 5,000 deep, a backtracking fault regex, the
connection limit held). Asserted for now: the server stays up. (Its p99 is printed; it is asserted
once the bounded parsing and linear-time regex of those items are in, `STRICT_PHASE_TWO`.)

Throughout: RSS stays within 1.5x the budget plus a fixed base (an empty server's RSS and an
allowance for the chaos's connections). Afterwards: every acknowledged
steady call is in the record file exactly once, and each one still in memory is listed (paging) and
readable by id.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import smtplib
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
from serving import Probe, Served, serve, write_recording

pytestmark = pytest.mark.soak

MIB = 1024 * 1024
REPLAYED = 10_000
BUDGET = 48 * MIB
# Beyond an empty server's RSS (measured first) and 1.5x the budget: thread stacks, parser and socket
# buffers for the ~130 connections the chaos keeps open (430 in phase two), exports' chunks in flight,
# a 20,000-part form and a 5,000-deep MIME message being parsed in a worker thread, allocator slack.
# Measured on the 2-core CI machine after the parsing limits were merged: peaks 234 / 253 MiB over a
# base of ~125 MiB, i.e. 37 / 56 MiB beyond 1.5x the budget; 64 leaves room for noise while a
# journal that held whole calls (RSS +124 MiB over a 24 MiB budget before issue 22) still fails.
CHAOS_ALLOWANCE_MIB = 64
PHASE_ONE_S = 20.0
PHASE_TWO_S = 12.0
MAX_CONNECTIONS = 300
STRICT_PHASE_TWO = True  # issue 22 items 1, 2 and 4 are in: phase two is held to the same bounds


class Chaos:
    """Worker threads that run until told to stop, and what they saw."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.url = served.url
        self.stop_all = threading.Event()
        self.stop_two = threading.Event()
        self.phase_two = threading.Event()
        self.threads: list[threading.Thread] = []
        self.acked: dict[str, int] = {}  # steady tag -> status
        self.lock = threading.Lock()
        self.errors: list[str] = []
        self.rounds: list[tuple[bool, float]] = []  # (during phase two, seconds to the last wake)
        self.peak_rss = [0.0, 0.0]  # per phase
        # While every connection is held (and a moment after), other clients are refused with 503 by
        # design (only the health routes are exempt): those answers are not findings.
        self.limit_until = 0.0

    def at_limit(self) -> bool:
        return time.monotonic() < self.limit_until

    def spawn(self, target: Callable[[], None], name: str) -> None:
        def run() -> None:
            try:
                target()
            except Exception as exc:  # a worker's failure is a finding, reported at the end
                self.errors.append(f"{name}: {exc!r}")

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(60)

    # -- steady load and the watcher ------------------------------------------------------------------
    def steady(self, name: str) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as c:
            for i in itertools.count():
                if self.stop_all.is_set():
                    return
                tag = f"{name}-{i}"
                try:
                    r = c.post(f"/webhooks/steady/{tag}", json={"tag": tag, "n": random.random()})
                except httpx.TransportError:
                    continue
                if r.status_code == 200:
                    with self.lock:
                        self.acked[tag] = r.status_code
                time.sleep(0.01)

    def watch_rss(self) -> None:
        while not self.stop_all.is_set():
            phase = 1 if self.phase_two.is_set() else 0
            self.peak_rss[phase] = max(self.peak_rss[phase], self.served.rss_mib())
            time.sleep(0.1)

    # -- phase one: paging, streaming, memory -----------------------------------------------------------
    def lister(self) -> None:
        with httpx.Client(base_url=self.url, timeout=120) as c:
            for fmt in itertools.cycle(("har", "jsonl")):
                if self.stop_two.is_set():
                    return
                r = c.get("/calls")
                if r.status_code == 503 and self.at_limit():
                    continue
                if r.status_code != 200 or r.json()["count"] > 100:  # noted, and the load goes on
                    self.errors.append(f"GET /calls: {r.status_code}, {len(r.content)} bytes")
                with c.stream("GET", "/calls/export", params={"format": fmt}) as export:
                    if export.status_code == 503 and self.at_limit():
                        continue
                    assert export.status_code == 200
                    for _ in export.iter_raw():
                        pass

    def filler(self) -> None:
        # Encoded once: the test process's own work must not be what slows the clients down.
        text = orjson.dumps({"text": "f" * 256 * 1024})
        keys = orjson.dumps({f"k{j}": j for j in range(3000)})
        headers = {"content-type": "application/json"}
        with httpx.Client(base_url=self.url, timeout=30) as c:
            for i in itertools.count():
                if self.stop_two.is_set():
                    return
                c.post(f"/webhooks/fill/{i}", content=text if i % 3 else keys, headers=headers)
                time.sleep(0.02)

    def long_poll_rounds(self) -> None:
        async def one_round(n: int) -> float | None:
            limits = httpx.Limits(max_connections=110)
            async with httpx.AsyncClient(base_url=self.url, timeout=60, limits=limits) as c:
                woke: list[float] = []
                answers: list[httpx.Response] = []
                refused: list[int] = []

                async def poll() -> None:
                    r = await c.get("/calls", params={"path": f"/webhooks/round/{n}", "wait": 30, "min": 1})
                    woke.append(time.perf_counter())
                    if r.status_code == 503 and self.at_limit():
                        refused.append(n)
                    answers.append(r)

                tasks = [asyncio.create_task(poll()) for _ in range(100)]
                await asyncio.sleep(2)
                start = time.perf_counter()
                sent = await c.post(f"/webhooks/round/{n}", json={"round": n})
                await asyncio.gather(*tasks)
                # A round that met the connection limit (its polls or its call refused) measures nothing.
                if refused or sent.status_code == 503:
                    return None
                for r in answers:
                    assert r.status_code == 200 and r.json()["count"] == 1, r.text[:200]
                return max(woke) - start

        for n in itertools.count():
            if self.stop_two.is_set():
                return
            during_two = self.phase_two.is_set()
            took = asyncio.run(one_round(n))
            if took is None:
                continue
            self.rounds.append((during_two or self.phase_two.is_set(), took))

    # -- phase two: parsing and matching (issue 22 items 1, 2 and 4) ----------------------------------------
    def poisons(self) -> None:
        host, port = "127.0.0.1", self.served.http_port
        deep = b"[" * 300 + b"]" * 300
        deep_obj = b'{"a":' * 300 + b"1" + b"}" * 300
        with httpx.Client(base_url=self.url, timeout=60) as c:
            c.post(
                "/faults",
                json={
                    "service": "webhook",
                    "action": "error",
                    "status": 500,
                    "times": None,
                    "match": {"path": "/webhooks/regex", "regex": "^(a+)+$"},
                },
            ).raise_for_status()
            for i in itertools.count():
                if self.stop_all.is_set():
                    return
                with contextlib.suppress(httpx.HTTPError):
                    c.post("/webhooks/deep", content=deep, headers={"content-type": "application/json"})
                    c.post(
                        "/api/chat.postMessage",
                        content=deep_obj,
                        headers={"content-type": "application/json", "authorization": "Bearer xoxb-chaos"},
                    )
                    files = {f"f{j}": (None, "v") for j in range(20_000)}
                    c.post("/v3/chaos.example.com/messages", files=files, auth=("api", "key-chaos"))
                    c.post("/webhooks/regex", content=b"a" * 24 + b"!", headers={"content-type": "text/plain"})
                if i % 3 == 0:
                    with contextlib.suppress(OSError, smtplib.SMTPException):
                        _send_deep_mime(host, self.served.smtp_port)
                if i % 4 == 1:
                    self.limit_until = time.monotonic() + 60  # until the hold is over, then a moment
                    _hold_connections(host, port, MAX_CONNECTIONS, 2.0)
                    self.limit_until = time.monotonic() + 1.0
                time.sleep(0.2)


def _deep_mime(depth: int) -> bytes:
    """A message of `depth` nested multiparts (built by hand: the email package recurses per level)."""
    head = b"From: a@chaos.example\r\nTo: b@chaos.example\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    opening = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(depth))
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    return head + opening + b"Content-Type: text/plain\r\n\r\ndeep\r\n" + closing


def _send_deep_mime(host: str, port: int) -> None:
    with smtplib.SMTP(host, port, timeout=30) as smtp:
        smtp.sendmail("a@chaos.example", ["b@chaos.example"], _deep_mime(5_000))


def _hold_connections(host: str, port: int, count: int, seconds: float) -> None:
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            with contextlib.suppress(OSError):
                held.append(socket.create_connection((host, port), timeout=5))
        time.sleep(seconds)
    finally:
        for sock in held:
            sock.close()


def _stalled(host: str, port: int, target: str) -> socket.socket:
    sock = socket.create_connection((host, port))
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return sock


def _records(folder: Path) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):
                out.append(orjson.loads(line))
    return out


def test_chaos_every_hostile_input_at_once(tmp_path: Path) -> None:
    with serve() as empty:
        # The fixed base: a server that has built its inspection API (lazily, on the first request)
        # and parsed each kind of input once, with nothing in its journal to speak of.
        with httpx.Client(base_url=empty.url, timeout=30) as c:
            c.get("/calls").raise_for_status()
            c.post("/webhooks/base", json={"base": 1})
            c.post(
                "/api/chat.postMessage", json={"channel": "C1", "text": "x"}, headers={"authorization": "Bearer xoxb-1"}
            )
            c.post("/v3/base.example.com/messages", files={"to": (None, "a@b.c")}, auth=("api", "key-1"))
            base_fault = {"service": "webhook", "action": "error", "status": 500, "match": {"regex": "^x$"}, "times": 1}
            c.post("/faults", json=base_fault).raise_for_status()
            c.post("/reset")
        time.sleep(0.5)
        empty_rss = empty.rss_mib()
    record = write_recording(tmp_path / "replay.jsonl", REPLAYED)
    rec_dir = tmp_path / "rec"
    args = (
        f"--replay={record}",
        f"--max-journal-bytes={BUDGET}",
        f"--record-dir={rec_dir}",
        f"--max-connections={MAX_CONNECTIONS}",
    )
    with serve(*args) as served:
        url = served.url
        with Probe(url, interval=0.005) as idle:
            time.sleep(1.5)
        # What the probe sees of the idle server on this shared (often busy) machine, with a floor.
        allowance = max(3 * idle.p99_ms(), 25.0)
        chaos = Chaos(served)
        chaos.spawn(chaos.watch_rss, "rss")
        for name in ("steady-a", "steady-b"):
            chaos.spawn(lambda n=name: chaos.steady(n), name)  # type: ignore[misc]
        host, port = "127.0.0.1", served.http_port
        stalled = [
            _stalled(host, port, "/calls/stream?heartbeat=60"),
            _stalled(host, port, "/calls/stream?after=0&heartbeat=60"),
            _stalled(host, port, "/calls?wait=300&min=1000000000"),
            _stalled(host, port, "/calls?wait=300&min=1000000000&order=desc"),
        ]
        try:
            with Probe(url, interval=0.005) as phase_one:
                chaos.spawn(chaos.lister, "lister")
                chaos.spawn(chaos.filler, "filler")
                chaos.spawn(chaos.long_poll_rounds, "long-polls")
                time.sleep(PHASE_ONE_S)
            with Probe(url, interval=0.005) as phase_two:
                chaos.phase_two.set()
                chaos.spawn(chaos.poisons, "poisons")
                time.sleep(PHASE_TWO_S)
                chaos.stop_two.set()
                chaos.stop_all.set()
                chaos.join()
        finally:
            chaos.stop_all.set()
            chaos.stop_two.set()
            for sock in stalled:
                sock.close()
        rounds = [(two, round(took * 1000)) for two, took in chaos.rounds]
        print(
            f"chaos: idle p99 {idle.p99_ms():.0f} ms; phase one p99 {phase_one.p99_ms():.0f} ms"
            f" (max {phase_one.max_ms():.0f}); phase two p99 {phase_two.p99_ms():.0f} ms"
            f" (max {phase_two.max_ms():.0f}); long-poll rounds (phase two?, ms) {rounds};"
            f" peak RSS {chaos.peak_rss[0]:.0f} / {chaos.peak_rss[1]:.0f} MiB; acknowledged {len(chaos.acked)}"
        )
        assert not chaos.errors, chaos.errors
        # The server stayed up and answers.
        with httpx.Client(base_url=url, timeout=30) as c:
            health = c.get("/health").json()
        assert health["status"] == "ok" and served.proc.poll() is None
        # Phase one: other clients kept being served promptly, and 100 long polls woke together.
        assert phase_one.p99_ms() < 100 + allowance, f"phase one p99 {phase_one.p99_ms():.0f} ms"
        phase_one_rounds = [took for two, took in chaos.rounds if not two]
        assert phase_one_rounds and max(phase_one_rounds) < 2.5 + allowance / 1000, chaos.rounds
        if STRICT_PHASE_TWO:
            assert phase_two.p99_ms() < 100 + allowance, f"phase two p99 {phase_two.p99_ms():.0f} ms"
        # Memory stayed within its budget, whatever the readers did.
        assert health["held_bytes"] <= BUDGET
        bound = empty_rss + 1.5 * BUDGET / MIB + CHAOS_ALLOWANCE_MIB
        assert chaos.peak_rss[0] < bound, f"peak RSS {chaos.peak_rss[0]:.0f} MiB in phase one (bound {bound:.0f})"
        if STRICT_PHASE_TWO:
            assert chaos.peak_rss[1] < bound, f"peak RSS {chaos.peak_rss[1]:.0f} MiB in phase two (bound {bound:.0f})"
        _check_acknowledged(url, rec_dir, chaos.acked)


def _check_acknowledged(url: str, rec_dir: Path, acked: dict[str, int]) -> None:
    """Every acknowledged steady call is recorded exactly once; those in memory are listed and readable."""
    assert len(acked) > 200, f"only {len(acked)} steady calls were acknowledged"
    by_tag: dict[str, list[dict[str, object]]] = {}
    for rec in _records(rec_dir):
        path = str(rec.get("path", ""))
        if path.startswith("/webhooks/steady/"):
            by_tag.setdefault(path.rsplit("/", 1)[1], []).append(rec)
    missing = [tag for tag in acked if len(by_tag.get(tag, [])) != 1]
    assert not missing, f"{len(missing)} acknowledged calls not recorded exactly once: {missing[:5]}"
    with httpx.Client(base_url=url, timeout=30) as c:
        listed: dict[str, str] = {}
        params: dict[str, object] = {"path": "/webhooks/steady/*", "limit": 1000}
        while True:
            body = c.get("/calls", params=params).json()
            listed.update({str(call["path"]).rsplit("/", 1)[1]: call["id"] for call in body["calls"]})
            if "next" not in body:
                break
            params = {**params, "cursor": body["next"]}
        oldest = c.get("/calls", params={"limit": 1}).json()["calls"][0]["seq"]
        held = {tag for tag in acked if int(str(by_tag[tag][0]["seq"])) >= oldest}
        assert held <= set(listed), f"{len(held - set(listed))} acknowledged calls in memory but not listed"
        assert held, "no acknowledged call is left in memory"
        for tag in random.sample(sorted(held), min(300, len(held))):
            r = c.get(f"/calls/{listed[tag]}")
            assert r.status_code == 200 and r.json()["data"]["tag"] == tag
