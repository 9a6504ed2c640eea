"""Soak: mixed traffic from concurrent clients, faults firing at random, and not one call lost.

A real `mockhub serve` process (so its memory is its own) with a small `max_calls` and a record
folder. Several client threads drive it with real clients for about half a minute: httpx to the
generic webhook, the Slack incoming webhook and PagerDuty, the openai SDK (`max_retries=0`) for chat
completions, smtplib for email. Meanwhile a chaos thread keeps adding and removing fault rules:
error presets and statuses with a probability, delays, resets, empty and malformed answers, holds,
and SMTP replies and hang-ups at random stages.

What each client may claim, and what is checked against the record file (which keeps what the
journal evicts, so the check is exact):
- an HTTP call that got any response was recorded exactly once, with that status;
- an HTTP call that got no response (reset, closed, garbage) was recorded exactly once, with no
  response and the transport fault that broke it;
- an email that got `250 ... queued as <id>` was recorded as DATA 250 under that id; an SMTP
  session refused with a code has a record of that code, and one cut without a reply a record with
  no response, both from a fault;
- nothing else carries a client's tag (no phantom or duplicate calls).
The whole record has unique ids and strictly increasing seq; `/health` counts every call (in memory
plus evicted equals recorded); the journal in memory is exactly the newest `max_calls` calls; and
the server's RSS stays within a sane bound.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import re
import smtplib
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from serving import Served, serve

from mockhub.recording import call_from_dict

pytestmark = pytest.mark.soak

TRAFFIC_SECONDS = 30.0
MAX_PER_CLIENT = 2500  # bounds the request count on a fast machine
MAX_CALLS = 2000  # small, so that eviction is part of the run
MAX_JOURNAL_BYTES = 8 * 1024 * 1024
RSS_LIMIT_MIB = 256
TIMEOUT = 15.0
TAG = re.compile(r"soak-[a-z]+-\d+")
TRANSPORT_ACTIONS = {"reset", "empty", "malformed", "timeout"}


@dataclass
class Server(Served):
    """The soak's `mockhub serve` process, with the record folder it writes."""

    record_dir: Path = Path()


@pytest.fixture
def soak_server(tmp_path: Path) -> Iterator[Server]:
    record_dir = tmp_path / "rec"
    args = (f"--max-calls={MAX_CALLS}", f"--max-journal-bytes={MAX_JOURNAL_BYTES}", f"--record-dir={record_dir}")
    with serve(*args, "--seed=12") as served:
        # The same stderr list: the helper's drain thread keeps filling it.
        yield Server(served.proc, served.http_port, served.smtp_port, served.stderr, record_dir)


# -- what the clients saw -----------------------------------------------------------------------------


@dataclass
class Outcome:
    tag: str
    kind: str  # "http" or "smtp"
    status: int | None  # HTTP status or SMTP reply code; None: no answer at all
    error: str | None = None
    queued_id: str | None = None  # SMTP: the id the 250 named
    peer: str | None = None  # SMTP: the client's address as the server saw it


@dataclass
class Ledger:
    outcomes: list[Outcome] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)


def http_client(
    name: str,
    send: Callable[[httpx.Client, str], httpx.Response],
    server: Server,
    ledger: Ledger,
    stop: threading.Event,
) -> None:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        for i in range(MAX_PER_CLIENT):
            if stop.is_set():
                return
            tag = f"soak-{name}-{i}"
            try:
                r = send(client, tag)
                ledger.add(Outcome(tag, "http", r.status_code))
            except httpx.TransportError as exc:
                ledger.add(Outcome(tag, "http", None, repr(exc)))


def webhook(client: httpx.Client, tag: str) -> httpx.Response:
    return client.post(f"/webhooks/soak/{tag}", json={"tag": tag, "n": random.random()})


def slack(client: httpx.Client, tag: str) -> httpx.Response:
    return client.post("/services/T0SOAK/B0SOAK/secret", json={"text": f"alert {tag}"})


def pagerduty(client: httpx.Client, tag: str) -> httpx.Response:
    event = {
        "routing_key": "R" * 32,
        "event_action": "trigger",
        "payload": {"summary": f"disk full {tag}", "source": "db-1", "severity": "critical"},
    }
    return client.post("/v2/enqueue", json=event)


def openai_client(name: str, server: Server, ledger: Ledger, stop: threading.Event) -> None:
    llm = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-soak", max_retries=0, timeout=TIMEOUT)
    try:
        for i in range(MAX_PER_CLIENT):
            if stop.is_set():
                return
            tag = f"soak-{name}-{i}"
            try:
                llm.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": tag}])
                ledger.add(Outcome(tag, "http", 200))
            except openai.APIStatusError as exc:
                ledger.add(Outcome(tag, "http", exc.status_code))
            except openai.APIConnectionError as exc:
                ledger.add(Outcome(tag, "http", None, repr(exc.__cause__ or exc)))
    finally:
        llm.close()


_QUEUED = re.compile(r"queued as (\S+)")


class PeerSMTP(smtplib.SMTP):
    """smtplib's client, noting its own address as soon as it is connected (before the greeting,
    which a connect-stage fault may never send): the server records it as the session's `peer`."""

    peer: str | None = None

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        local_host, local_port = sock.getsockname()[:2]
        self.peer = f"{local_host}:{local_port}"
        return sock  # type: ignore[no-any-return]


def smtp_client(name: str, server: Server, ledger: Ledger, stop: threading.Event) -> None:
    for i in range(MAX_PER_CLIENT):
        if stop.is_set():
            return
        tag = f"soak-{name}-{i}"
        smtp = PeerSMTP(timeout=TIMEOUT)
        try:
            code, reply = smtp.connect("127.0.0.1", server.smtp_port)
            if code == 220:
                code, reply = smtp.ehlo("soak.example")
            if code == 250:
                code, reply = smtp.mail(f"{tag}@soak.example")
            if code == 250:
                code, reply = smtp.rcpt(f"{tag}@rcpt.soak.example")
            if code == 250:
                message = f"From: {tag}@soak.example\r\nTo: ops@soak.example\r\nSubject: {tag}\r\n\r\nbody {tag}\r\n"
                code, reply = smtp.data(message.encode())
            queued = _QUEUED.search(reply.decode("utf-8", "replace")) if code == 250 else None
            ledger.add(Outcome(tag, "smtp", code, queued_id=queued.group(1) if queued else None, peer=smtp.peer))
        except smtplib.SMTPResponseException as exc:  # DATA refused before the message (no 354)
            ledger.add(Outcome(tag, "smtp", exc.smtp_code, peer=smtp.peer))
        except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
            ledger.add(Outcome(tag, "smtp", None, repr(exc), peer=smtp.peer))
        finally:
            with contextlib.suppress(OSError):
                smtp.close()


# -- chaos ----------------------------------------------------------------------------------------------

PRESETS = ["rate_limited", "server_error", "unavailable", "overloaded", "unauthorized"]
STAGES = ["connect", "ehlo", "mail", "rcpt", "data"]


def _smtp(rng: random.Random, spec: dict[str, Any]) -> dict[str, Any]:
    stage = rng.choice(STAGES)
    return {"service": "smtp", "stage": stage, "times": None, **spec}


def _http(rng: random.Random, spec: dict[str, Any]) -> dict[str, Any]:
    service = rng.choice(["webhook", "slack", "pagerduty", "openai"])
    return {"service": service, "times": rng.choice([None, rng.randint(1, 30)]), **spec}


# Every kind of fault, taken in turn (parameters at random), so each one fires in every run.
FAULT_KINDS: list[Callable[[random.Random], dict[str, Any]]] = [
    lambda rng: _http(rng, {"action": "error", "preset": rng.choice(PRESETS)}),
    lambda rng: _http(rng, {"action": "error", "status": rng.choice([400, 404, 409, 500, 502, 503])}),
    lambda rng: _http(rng, {"action": "delay", "delay_ms": rng.randint(1, 40)}),
    lambda rng: _http(rng, {"action": "reset"}),
    lambda rng: _http(rng, {"action": "empty"}),
    lambda rng: _http(rng, {"action": "malformed"}),
    lambda rng: _http(rng, {"action": "timeout", "delay_ms": 150}),
    lambda rng: _smtp(rng, {"action": "smtp_reply", "code": rng.choice([421, 450, 451, 452, 550, 554])}),
    lambda rng: _smtp(rng, {"action": "disconnect"}),
    lambda rng: _smtp(rng, {"action": "error", "preset": rng.choice(PRESETS)}),
    lambda rng: _smtp(rng, {"action": "delay", "delay_ms": rng.randint(1, 40)}),
    lambda rng: _smtp(rng, {"action": "timeout", "delay_ms": 150}),
]


def chaos(server: Server, stop: threading.Event, created: Counter[str]) -> None:
    rng = random.Random(1234)
    active: list[str] = []
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as api:
        while not stop.wait(rng.uniform(0.02, 0.3)):
            if len(active) >= 5 or (active and rng.random() < 0.3):
                api.delete(f"/faults/{active.pop(rng.randrange(len(active)))}")
                continue
            if rng.random() < 0.03:
                api.delete("/faults")
                active.clear()
                continue
            spec = FAULT_KINDS[sum(created.values()) % len(FAULT_KINDS)](rng)
            spec["probability"] = round(rng.uniform(0.02, 0.25), 3)
            r = api.post("/faults", json=spec)
            assert r.status_code == 201, (spec, r.text)
            active.append(r.json()["id"])
            created[spec["action"]] += 1
        api.delete("/faults")


# -- the test -------------------------------------------------------------------------------------------


def _records(record_dir: Path) -> list[dict[str, Any]]:
    """Every call line of the record, in file order (stream updates set aside: none are made here)."""
    lines: list[dict[str, Any]] = []
    for file in sorted(record_dir.glob("*.jsonl")):
        with file.open("rb") as fh:
            lines.extend(orjson.loads(line) for line in fh if line.strip())
    assert not [line for line in lines if "update" in line]
    for line in lines:
        if line.get("data_is_body"):  # a JSON body stored once: `data` is the body's object
            line["data"] = call_from_dict(line, record_dir).data
    return lines


def _tag(record: dict[str, Any]) -> str | None:
    text = " ".join(str(record["data"].get(k) or "") for k in ("mail_from", "rcpt_to")) + record["body"]
    found = TAG.search(text)
    return found.group(0) if found else None


def test_soak_mixed_traffic_with_random_faults_loses_nothing(soak_server: Server) -> None:
    server = soak_server
    ledger = Ledger()
    stop = threading.Event()
    created: Counter[str] = Counter()
    rss_start = server.status("VmRSS")

    crashed: list[str] = []

    def thread(target: Callable[..., None], *args: Any) -> threading.Thread:
        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:  # a client that dies must fail the test, not shrink it
                crashed.append(f"{target.__name__}{args[:1]}: {exc!r}")
                stop.set()

        return threading.Thread(target=run, name=f"{target.__name__}-{args[0]}")

    workers = [
        thread(http_client, "webhook", webhook, server, ledger, stop),
        thread(http_client, "hook", webhook, server, ledger, stop),
        thread(http_client, "slack", slack, server, ledger, stop),
        thread(http_client, "pagerduty", pagerduty, server, ledger, stop),
        thread(openai_client, "openai", server, ledger, stop),
        thread(smtp_client, "smtp", server, ledger, stop),
        thread(smtp_client, "mail", server, ledger, stop),
    ]
    monkey = thread(chaos, server, stop, created)
    for worker in [*workers, monkey]:
        worker.start()
    deadline = time.monotonic() + TRAFFIC_SECONDS
    while time.monotonic() < deadline and any(t.is_alive() for t in workers):
        time.sleep(0.2)
    stop.set()
    for worker in [*workers, monkey]:
        worker.join(TIMEOUT * 2)
        assert not worker.is_alive(), f"{worker.name} hangs"
    assert not crashed, crashed

    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as api:
        health = api.get("/health").json()
        memory: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 1000}
        while True:  # a page at a time (GET /calls answers at most 1000), following `next`
            page = api.get("/calls", params=params).json()
            memory += page["calls"]
            if "next" not in page:
                break
            params = {"limit": 1000, "cursor": page["next"]}
    assert health["status"] == "ok"
    rss, hwm = server.status("VmRSS"), server.status("VmHWM")

    outcomes = ledger.outcomes
    records = _records(server.record_dir)
    # The run did what it is for: plenty of traffic, eviction, and faults of every kind firing.
    assert len(outcomes) > MAX_CALLS
    assert health["evicted"] > 0
    assert {"error", "delay", "reset", "empty", "malformed", "timeout", "smtp_reply", "disconnect"} <= set(created)
    faulted = Counter(r["fault"]["action"] for r in records if r["fault"])
    assert {"error", "delay", "reset", "empty", "malformed", "timeout", "smtp_reply", "disconnect"} <= set(faulted)
    assert sum(1 for o in outcomes if o.status is None) > 0
    assert sum(1 for o in outcomes if o.kind == "smtp" and o.status == 250) > 0

    # The record as a whole: unique ids, seq strictly increasing, and every call counted.
    ids = [r["id"] for r in records]
    assert len(set(ids)) == len(ids)
    seqs = [r["seq"] for r in records]
    assert all(a < b for a, b in itertools.pairwise(seqs))
    assert health["recorded"] == len(records) == health["last_seq"] == seqs[-1]
    assert health["calls"] + health["evicted"] == len(records)
    assert health["calls"] == len(memory) == MAX_CALLS
    assert [c["id"] for c in memory] == ids[-MAX_CALLS:]  # the journal keeps exactly the newest calls
    assert health["body_bytes"] <= health["held_bytes"] <= MAX_JOURNAL_BYTES

    # Every call a client made is in the record, as the client saw it.
    by_tag: dict[str, list[dict[str, Any]]] = {}
    by_peer: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        tag = _tag(record)
        if tag is not None:
            by_tag.setdefault(tag, []).append(record)
        if record["service"] == "smtp":
            by_peer.setdefault(record["data"].get("peer") or "", []).append(record)
    problems: list[str] = []
    claimed: set[str] = set()
    for seen in outcomes:
        if seen.kind == "http":
            found = by_tag.get(seen.tag, [])
            claimed.add(seen.tag)
            if len(found) != 1:
                problems.append(f"{seen.tag}: {len(found)} records for one call ({seen})")
                continue
            (call,) = found
            if seen.status is not None:
                if call["response"] is None or call["response"]["status"] != seen.status:
                    problems.append(f"{seen.tag}: client saw {seen.status}, record says {call['response']}")
            elif call["response"] is not None or (call["fault"] or {}).get("action") not in TRANSPORT_ACTIONS:
                problems.append(f"{seen.tag}: client got no answer ({seen.error}), record: {call}")
            continue
        session = by_peer.get(seen.peer or "", [])
        # An SMTP tag names one session: its MAIL/RCPT/DATA records (a connect or EHLO fault knows no tag).
        tagged = [r for r in session if _tag(r) in (seen.tag, None)]
        claimed.add(seen.tag)
        if seen.status == 250:
            delivered = [r for r in by_tag.get(seen.tag, []) if r["method"] == "DATA" and r["response"]]
            if [r["id"] for r in delivered] != [seen.queued_id] or delivered[0]["response"]["status"] != 250:
                problems.append(f"{seen.tag}: 250 queued as {seen.queued_id}, records: {delivered}")
        elif seen.status is None:
            if not any(r["response"] is None and r["fault"] for r in tagged):
                problems.append(f"{seen.tag}: cut without a reply ({seen.error}); session records: {tagged}")
        elif not any(r["response"] and r["response"]["status"] == seen.status and r["fault"] for r in tagged):
            problems.append(f"{seen.tag}: refused with {seen.status}; session records: {tagged}")
    phantoms = sorted(set(by_tag) - claimed)
    assert not phantoms, f"records no client made: {phantoms[:10]}"
    assert not problems, f"{len(problems)} of {len(outcomes)} calls differ from their record:\n" + "\n".join(
        problems[:20]
    )

    # Memory stays bounded (the journal holds at most MAX_CALLS small calls).
    assert rss < RSS_LIMIT_MIB * 1024, f"RSS {rss // 1024} MiB (started at {rss_start // 1024} MiB)"
    assert hwm < RSS_LIMIT_MIB * 1024, f"peak RSS {hwm // 1024} MiB"
    print(
        f"\nsoak: {len(outcomes)} calls ({Counter(o.kind for o in outcomes)}), {len(records)} recorded, "
        f"{health['evicted']} evicted, faults fired {dict(faulted)}, "
        f"RSS {rss_start // 1024} -> {rss // 1024} MiB (peak {hwm // 1024} MiB)"
    )
