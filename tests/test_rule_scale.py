"""Thousands of rules: a call looks only at those that could match it, order semantics unchanged, and a bound."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson
import pytest
from support import extra_hub

from mockhub.journal import Call
from mockhub.recording import RecordingError
from mockhub.rules import FaultSpec, RuleBook, StubSpec
from mockhub.server import Hub
from mockhub.settings import Settings


def _stub(service: str | None, namespace: str | None, content: str, **more: object) -> StubSpec:
    match = {"namespace": namespace} if namespace else {}
    return StubSpec.model_validate({"service": service, "match": match, "reply": {"content": content}, **more})


def test_newest_first_across_service_namespace_and_catch_all_rules() -> None:
    book = RuleBook()
    any_rule = book.add_stub(_stub(None, None, "any"))
    book.add_stub(_stub("openai", None, "openai"))
    ns_rule = book.add_stub(_stub(None, "a", "ns a"))
    book.add_stub(_stub("slack", "a", "slack a"))
    book.add_stub(_stub("openai", "b", "openai b"))

    def answer(service: str, namespace: str) -> str | None:
        hit = book.stub_for(Call(service=service, method="POST", path="/x", namespace=namespace))
        return hit.reply.content if hit is not None and hit.reply is not None else None

    assert answer("openai", "a") == "ns a"  # newer than the openai-only rule
    assert answer("openai", "b") == "openai b"
    assert answer("openai", "c") == "openai"
    assert answer("slack", "a") == "slack a"
    assert answer("slack", "c") == "any"
    book.remove_stub(ns_rule.id)
    assert answer("openai", "a") == "openai"
    book.remove_stub(any_rule.id)
    assert answer("slack", "c") is None
    # `times` and `sequence`: an exhausted stub lets the older one answer, and stays listed.
    seq = book.add_stub(
        StubSpec.model_validate({"service": "openai", "sequence": [{"content": "one"}, {"content": "two"}], "times": 2})
    )
    assert [answer("openai", "c") for _ in range(3)] == ["one", "two", "openai"]
    assert book.stub(seq.id) is not None and book.stub(seq.id).hits == 2  # type: ignore[union-attr]
    # Faults: the newest live one of the four buckets fires; `times` used up, the next one does.
    old = book.add_fault(FaultSpec(service=None, status=500, times=None))
    new = book.add_fault(FaultSpec.model_validate({"service": "openai", "match": {"namespace": "a"}, "status": 503}))
    call = Call(service="openai", method="POST", path="/x", namespace="a")
    assert book.fault_for(call) is new
    assert book.fault_for(call) is old
    assert book.fault(new.id) is not None and new.fired == 1


def test_a_call_costs_about_the_same_with_100k_rules_elsewhere() -> None:
    book = RuleBook()
    probe = Call(service="webhook", method="POST", path="/webhooks/x", namespace="mine")

    def per_call() -> float:
        started = time.perf_counter()
        for _ in range(2000):
            book.fault_for(probe)
            book.stub_for(probe)
        return (time.perf_counter() - started) / 2000

    book.add_stub(_stub("webhook", "mine", "never", match={"namespace": "mine", "path": "/nope"}))
    empty = per_call()
    for i in range(100_000):
        book.add_stub(_stub(("openai", "slack", "webhook")[i % 3], f"ns-{i % 1000}", f"s{i}"))
    for i in range(20_000):
        book.add_fault(
            FaultSpec.model_validate({"service": "webhook", "match": {"namespace": f"ns-{i % 1000}"}, "status": 503})
        )
    crowded = per_call()
    # Unindexed, each call tested every one of the 120,000 rules (tens of ms); now only its own.
    assert crowded < max(empty * 5, 50e-6), (empty, crowded)


def test_max_rules_bounds_faults_and_stubs_together(tmp_path: Path) -> None:
    with extra_hub(max_rules=3) as hub, httpx.Client(base_url=hub.url, timeout=10) as api:
        assert api.post("/faults", json={"service": "slack", "preset": "rate_limited"}).status_code == 201
        assert api.post("/stubs", json={"service": "openai", "reply": {"content": "x"}}).status_code == 201
        assert api.post("/stubs", json={"service": "openai", "reply": {"content": "y"}}).status_code == 201
        for kind, body in (("faults", {"preset": "server_error"}), ("stubs", {"reply": {"content": "z"}})):
            r = api.post(f"/{kind}", json=body)
            assert r.status_code == 409, r.text
            error = r.json()["error"]
            assert error["code"] == "too_many_rules"
            assert "max_rules" in error["message"] and "MOCKHUB_MAX_RULES" in error["message"]
        assert api.get("/faults").json()["count"] + api.get("/stubs").json()["count"] == 3
        # Room again once rules are deleted.
        assert api.delete("/stubs").status_code == 200
        assert api.post("/stubs", json={"reply": {"content": "z"}}).status_code == 201

    # Stub files beyond the bound: a clear error at start.
    entries = [{"service": "openai", "reply": {"content": str(i)}} for i in range(4)]
    (tmp_path / "many.json").write_bytes(orjson.dumps(entries))
    with pytest.raises(RecordingError, match="max_rules"):
        Hub(Settings(host="127.0.0.1", http_port=0, smtp_port=0, stubs=tmp_path, max_rules=3))
