"""MOCKHUB_ADMIN_TOKEN guards the inspection API and UI; health stays open; fakes are unaffected."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from support import extra_hub

from mockhub.server import ThreadedHub


@pytest.fixture(scope="module")
def guarded() -> Iterator[ThreadedHub]:
    with extra_hub(admin_token="s3cret") as hub:
        yield hub


@pytest.mark.parametrize("path", ["/calls", "/faults", "/stubs", "/openapi.json", "/calls/count"])
def test_the_api_needs_the_token(guarded: ThreadedHub, path: str) -> None:
    r = httpx.get(guarded.url + path)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert httpx.get(guarded.url + path, headers={"Authorization": "Bearer wrong"}).status_code == 401


@pytest.mark.parametrize(
    "auth",
    [
        {"headers": {"Authorization": "Bearer s3cret"}},
        {"headers": {"X-Mockhub-Token": "s3cret"}},
        {"params": {"token": "s3cret"}},
    ],
)
def test_each_way_of_giving_the_token(guarded: ThreadedHub, auth: dict[str, dict[str, str]]) -> None:
    assert httpx.get(guarded.url + "/calls", **auth).status_code == 200  # type: ignore[arg-type]


def test_health_and_fakes_stay_open(guarded: ThreadedHub) -> None:
    for path in ("/health", "/livez", "/readyz"):
        assert httpx.get(guarded.url + path).status_code == 200
    assert httpx.post(guarded.url + "/webhooks/x", json={"a": 1}).status_code == 200
    calls = httpx.get(guarded.url + "/calls", headers={"X-Mockhub-Token": "s3cret"}).json()
    assert calls["count"] >= 1
