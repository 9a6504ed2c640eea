"""Each fake owns its facts: GET /services serves them, and a fake of one's own is one file.

The throwaway fake below lives in a file the test writes; nothing else in mockhub is edited, yet it
is served, listed in /services, filterable with the common filters and summarised (the UI part is
in test_ui.py: `test_a_fake_of_ones_own_is_masked_and_summarised_in_the_ui`).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import own_fake_hub

from mockhub.server import ThreadedHub

ACME = '''
from typing import Any

from mockhub.filters import DataFields
from mockhub.journal import Call
from mockhub.services.base import AppUrl, BadRequest, EnvVar, Reply, Request, Route, Service, json_reply, route


class AcmePagerService(Service):
    """Acme Pager: pages the person on call."""

    name = "acmepager"
    label = "Acme Pager"
    color = "#ff8800"
    hosts = ("api.acmepager.test",)
    urls = {"acme_base": AppUrl(path="/acme/v1", description="Acme's API root")}
    env = (EnvVar(name="ACME_PAGER_URL", value="{urls.acme_base}"), EnvVar(name="ACME_KEY", value="acme-key"))
    secret_headers = ("x-acme-key",)
    secret_paths = (r"^(/acme/v1/keys/)([^/?#]+)",)
    fields = DataFields(to=("pager",), text=("message",), subject=("title",))

    def routes(self) -> list[Route]:
        return [route("POST", "/acme/v1/keys/{key}/page", self.page, self.parse)]

    def parse(self, request: Request) -> dict[str, Any]:
        try:
            body = request.json()
        except ValueError:
            raise BadRequest(json_reply({"problem": "not JSON"}, 400)) from None
        return {"pager": body.get("pager"), "message": body.get("message"), "title": body.get("title")}

    async def page(self, request: Request) -> Reply:
        return json_reply({"paged": request.data["pager"]}, 202)

    @classmethod
    def summarize(cls, call: Call) -> str:
        return f"page {call.data.get('pager')}: {call.data.get('message')}"
'''


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedHub]:
    with own_fake_hub(tmp_path_factory.mktemp("acme"), "acme_fake", ACME, "AcmePagerService") as hub:
        yield hub


def _page(hub: ThreadedHub, key: str, pager: str, message: str, title: str) -> httpx.Response:
    return httpx.post(
        f"{hub.url}/acme/v1/keys/{key}/page",
        json={"pager": pager, "message": message, "title": title},
        headers={"x-acme-key": "TOPSECRET"},
    )


def test_a_fake_of_ones_own_is_served_listed_and_filterable(acme: ThreadedHub) -> None:
    assert _page(acme, "k-1", "oncall-7", "disk full on db-1", "Disk").status_code == 202
    assert _page(acme, "k-2", "oncall-9", "cpu hot", "CPU").json() == {"paged": "oncall-9"}

    info = httpx.get(f"{acme.url}/services/acmepager").json()
    assert info["label"] == "Acme Pager"
    assert info["hosts"] == ["api.acmepager.test"]
    assert info["routes"] == ["POST /acme/v1/keys/{key}/page"]
    assert info["urls"]["acme_base"]["path"] == "/acme/v1"
    assert info["secret_paths"] == [r"^(/acme/v1/keys/)([^/?#]+)"]
    assert info["fields"] == {"to": ["pager"], "text": ["message"], "subject": ["title"]}
    listed = httpx.get(f"{acme.url}/services").json()
    assert "acmepager" in [s["name"] for s in listed["services"]] and listed["count"] == len(listed["services"])

    def found(**params: str) -> list[str]:
        body = httpx.get(f"{acme.url}/calls", params={"service": "acmepager", **params}).json()
        return [c["data"]["pager"] for c in body["calls"]]

    # The common filters read the fields the fake declared.
    assert found(to="oncall-7") == ["oncall-7"]
    assert found(contains="cpu hot") == ["oncall-9"]
    assert found(subject="disk") == ["oncall-7"]
    call = httpx.get(f"{acme.url}/calls", params={"to": "oncall-9"}).json()["calls"][0]
    assert call["summary"] == "page oncall-9: cpu hot"


def test_rules_apply_to_a_fake_of_ones_own(acme: ThreadedHub) -> None:
    fault = httpx.post(
        f"{acme.url}/faults", json={"service": "acmepager", "preset": "rate_limited", "match": {"to": "oncall-1"}}
    )
    assert fault.status_code == 201, fault.text
    assert _page(acme, "k", "oncall-1", "x", "t").status_code == 429
    assert _page(acme, "k", "oncall-2", "x", "t").status_code == 202


def test_a_typo_in_a_service_name_is_a_422_naming_the_closest(acme: ThreadedHub) -> None:
    for method, path, kwargs in (
        ("GET", "/calls", {"params": {"service": "acmepagr"}}),
        ("GET", "/calls/count", {"params": {"service": "acmepagr"}}),
        ("POST", "/faults", {"json": {"service": "acmepagr", "preset": "server_error"}}),
        ("POST", "/stubs", {"json": {"service": "acmepagr", "response": {"status": 200}}}),
        ("GET", "/services/acmepagr", {}),
    ):
        r = httpx.request(method, acme.url + path, **kwargs)  # type: ignore[arg-type]
        assert r.status_code == 422, (path, r.text)
        error = r.json()["error"]
        assert error["code"] == "unknown_service"
        assert "did you mean 'acmepager'" in error["message"] and "twilio" in error["message"], error


def test_every_built_in_fake_declares_its_facts(api: httpx.Client) -> None:
    services = {s["name"]: s for s in api.get("/services").json()["services"]}
    assert {"smtp", "slack", "twilio", "webhook", "pagerduty", "teams", "discord", "sendgrid", "mailgun"} <= set(
        services
    )
    assert {"openai", "anthropic"} <= set(services)
    for name, info in services.items():
        assert re.fullmatch(r"#[0-9a-f]{6}", info["color"]), name
        assert info["description"], name
        assert info["routes"] or info["transport"] != "http", name
    assert "api.twilio.com" in services["twilio"]["hosts"]
    assert {"hooks.slack.com", "slack.com"} <= set(services["slack"]["hosts"])
    assert services["smtp"]["view"] == "email" and services["smtp"]["transport"] == "smtp"
    assert "status" in services["twilio"]["stub_reply"]["properties"]
    # The openapi document describes the catalogue.
    assert "/services" in api.get("/openapi.json").json()["paths"]


def test_a_bad_fakes_setting_is_one_clear_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from mockhub.cli import app; app()",
            "serve",
            "--http-port",
            "0",
            "--smtp-port",
            "0",
            "--fakes",
            "nope:X",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "mockhub: error: fakes: cannot load 'nope:X'" in done.stderr
    assert "Traceback" not in done.stderr


MODELS = '''
from typing import Any, Mapping

from mockhub.services.base import Reply, Request, Route, Service, json_reply, route, scope_header


def _acme_key(scope: Mapping[str, Any]) -> bool:
    return scope_header(scope, b"x-acme-key") is not None


class AcmeModelsService(Service):
    """Shares OpenAI's `GET /v1/models`, claiming only the requests that carry its own key header."""

    name = "acmemodels"

    def routes(self) -> list[Route]:
        return [route("GET", "/v1/models", self.models, accepts=_acme_key)]

    async def models(self, request: Request) -> Reply:
        return json_reply({"acme": True})
'''


def test_two_fakes_share_a_path_told_apart_by_the_request(tmp_path: Path) -> None:
    with own_fake_hub(tmp_path, "acme_models", MODELS, "AcmeModelsService") as hub:
        assert httpx.get(f"{hub.url}/v1/models", headers={"x-acme-key": "k"}).json() == {"acme": True}
        # Without the header the route declines and OpenAI's model list answers, as before.
        assert httpx.get(f"{hub.url}/v1/models", headers={"authorization": "Bearer sk-1"}).json()["object"] == "list"
        services = [c["service"] for c in httpx.get(f"{hub.url}/calls").json()["calls"]]
        assert services == ["acmemodels", "openai"]
