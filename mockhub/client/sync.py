"""`MockHub`: the synchronous client (httpx.Client). Its non-I/O half is `_Base`, shared with `AsyncMockHub`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any, Literal, Unpack

import httpx

from mockhub.client.base import (
    _EXPORT_TIMEOUT,
    _STREAM_TIMEOUT,
    MockHubError,
    Prices,
    _Base,
    _error,
    _jsonl,
    _lenient,
    _Sse,
)
from mockhub.client.base import _spec_json as spec_json
from mockhub.client.models import (
    ActiveFault,
    ActiveLimit,
    ActiveStub,
    Call,
    CallFilters,
    Health,
    ResetResult,
    SimulationResult,
)
from mockhub.client.options import FaultOptions, LimitOptions, StubOptions
from mockhub.limits import Limit, LimitSpec
from mockhub.rules import Fault, FaultSpec, Stub, StubSpec
from mockhub.usage import PriceTable, UsageOut
from mockhub.webhooks_config import WebhookConfig

__all__ = ["MockHub"]


class MockHub(_Base):
    """A typed client of a running mockhub's inspection API.

    `MockHub()` connects to `MOCKHUB_URL` (default http://127.0.0.1:8080). With `namespace=`, every
    query and reset is scoped to that namespace, and rules created here only match it.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        namespace: str | None = None,
        timeout: float = 10.0,
        smtp_host: str | None = None,
        smtp_port: int | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        super().__init__(url, namespace, smtp_host, smtp_port)
        self._owns_client = client is None
        self._http = client or httpx.Client(base_url=self.url, timeout=timeout, trust_env=False)

    # -- plumbing ------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> Any:
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        response = self._http.request(method, self.url + path, **kwargs, **extra)
        if response.status_code >= 400:
            raise _error(response)
        return response.json()

    def close(self) -> None:
        if self._owns_client:
            self._http.close()

    def __enter__(self) -> MockHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def namespaced(self, namespace: str | None) -> MockHub:
        """A client for another namespace (None: all of them), sharing this one's connections."""
        return MockHub(
            self.url, namespace=namespace, smtp_host=self._smtp_host, smtp_port=self._smtp_port, client=self._http
        )

    # -- health ----------------------------------------------------------------------------------------
    def health(self) -> Health:
        return self._health_of(self._request("GET", "/health"))

    @property
    def smtp_port(self) -> int | None:
        """The SMTP listener's port (asked from `/health` once when not given)."""
        if self._smtp_port is None:
            self._smtp_port = self.health().smtp_port
        return self._smtp_port

    def services(self) -> list[dict[str, Any]]:
        """Every fake the server has, with its facts (`GET /services`): routes, URLs, env, filter fields..."""
        return self._learn(self._services_of(self._http.get(f"{self.url}/services")))

    def _catalogue_now(self) -> list[dict[str, Any]]:
        return self._catalogue if self._catalogue is not None else self.services()

    def env(self, proxy: bool = False, mapping: Mapping[str, str] | None = None) -> dict[str, str]:
        """Ready-made settings pointing an application at this namespace's fakes (see `app_env`).

        With `proxy=True`, also the settings that send an unchanged application's HTTPS calls to the
        fakes: `HTTPS_PROXY` (this namespace as the proxy user), `NO_PROXY`, and the CA files
        (`SSL_CERT_FILE`, `NODE_EXTRA_CA_CERTS`, ...), written under `trust_dir()` (docs/interception.md).
        `mapping` fills in the project's own variable names, `{"ALERT_SMS_TWILIO_ACCOUNT_SID": "twilio.account_sid"}`
        (sources: `mockhub.client.urls.map_env`); an unknown source raises `EnvMapError`.
        """
        trust = None
        if proxy:
            trust = (self.ca_pem(), self._pem_of(self._http.get(f"{self.url}/tls/bundle.pem")))
        return self._env(self.smtp_port, trust, mapping)

    def ca_pem(self) -> bytes:
        """mockhub's CA certificate (`GET /tls/ca.pem`): what a client trusts for the HTTPS listener and the proxy."""
        return self._pem_of(self._http.get(f"{self.url}/tls/ca.pem"))

    # -- calls -------------------------------------------------------------------------------------------
    def calls(
        self,
        service: str | None = None,
        *,
        limit: int | None = None,
        order: Literal["asc", "desc"] = "asc",
        **filters: Unpack[CallFilters],
    ) -> list[Call]:
        """The recorded calls matching the filters, oldest first: every one, or the first `limit`
        (the server answers pages; this follows their `next` cursors)."""
        return self._all_calls(self._params(service, filters, limit=limit, order=order), limit)

    def _all_calls(self, params: dict[str, Any], limit: int | None = None, body: Any = None) -> list[Call]:
        """Every call of `GET /calls` with `params` (its first page `body` when already had), page by page."""
        if body is None:
            body = self._request("GET", "/calls", params=params)
        calls = self._calls_of(body)
        while (more := self._next_params(params, body, limit, len(calls))) is not None:
            body = self._request("GET", "/calls", params=more)
            calls += self._calls_of(body)
        return calls if limit is None else calls[:limit]

    def call(self, call_id: str) -> Call:
        return self._call_of(self._request("GET", self._call_path(call_id)))

    def raw(self, call_id: str) -> bytes:
        """A call's body byte-exact: an email's message source, a webhook's payload."""
        response = self._http.get(self.url + self._call_path(call_id, "/raw"))
        if response.status_code >= 400:
            raise _error(response)
        return response.content

    def count(self, service: str | None = None, **filters: Unpack[CallFilters]) -> int:
        return self._number(self._request("GET", "/calls/count", params=self._params(service, filters)), "count")

    def delete_calls(self, service: str | None = None, **filters: Unpack[CallFilters]) -> int:
        """Forget the matching calls (faults and stubs stay); returns how many were forgotten."""
        return self._number(self._request("DELETE", "/calls", params=self._params(service, filters)), "deleted")

    def wait_for(
        self, service: str | None = None, *, count: int = 1, timeout: float = 5.0, **filters: Unpack[CallFilters]
    ) -> list[Call]:
        """Wait (long poll, no sleeping) until at least `count` calls match; return every matching call.

        On timeout, raise an AssertionError listing what did arrive in this namespace, most similar first,
        and which other namespaces received matching calls.
        """
        __tracebackhide__ = True  # pytest: show the test's line, not the client's insides
        params = self._wait_params(service, count, timeout, filters)
        got = self._all_calls(params, body=self._request("GET", "/calls", params=params, timeout=timeout + 10.0))
        if len(got) >= count:
            return got
        others = self.namespaced(params.get("namespace")).calls(limit=500, order="desc")
        # The same filters in every namespace: mail sent with the wrong namespace is the common miss.
        elsewhere: list[Call] = []
        if (query := self._elsewhere_params(params)) is not None:
            with contextlib.suppress(MockHubError, httpx.HTTPError):
                elsewhere = self._calls_of(self._request("GET", "/calls", params=query))
        if self._catalogue is None:
            # Which data fields hold recipients and text, for the near-miss explanation.
            with contextlib.suppress(MockHubError, httpx.HTTPError):
                self.services()
        raise AssertionError(self._miss(params, count, got, others, timeout, elsewhere))

    def wait_for_code(self, service: str | None = None, *, timeout: float = 5.0, **filters: Unpack[CallFilters]) -> str:
        """The one-time code of the newest matching message (its first `data.codes`), waiting for one.

        Built on the long poll (no sleeping): `hub.wait_for_code(to="+15551234567")`. The filters are
        those of `wait_for` (`to`, `contains`, `subject`, `namespace`, ...). On timeout, AssertionError.
        """
        __tracebackhide__ = True
        return self._wait_for_value("code", service, timeout, None, filters)

    def wait_for_link(self, service: str | None = None, *, timeout: float = 5.0, **filters: Unpack[CallFilters]) -> str:
        """The first link of the newest matching message (`data.links`), waiting for one.

        Here `contains` picks the link (`contains="/reset"`: the first link holding "/reset"), not the
        message; the other filters are those of `wait_for`. On timeout, AssertionError.
        """
        __tracebackhide__ = True
        needle = filters.pop("contains", None)
        return self._wait_for_value("link", service, timeout, needle, filters)

    def _wait_for_value(
        self,
        kind: Literal["code", "link"],
        service: str | None,
        timeout: float,
        needle: str | None,
        filters: CallFilters,
    ) -> str:
        __tracebackhide__ = True
        query = self._value_query(kind, filters)
        deadline = time.monotonic() + timeout
        seen: list[Call] = []
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            params = self._wait_params(service, 1, remaining, query)  # type: ignore[arg-type]
            got = self._calls_of(self._request("GET", "/calls", params=params, timeout=remaining + 10.0))
            if (value := self._found(kind, got, needle)) is not None:
                return value
            if not got or remaining <= 0:
                break
            # Messages with links, none of them the one wanted: wait for newer ones only.
            seen.extend(got)
            query["after"] = got[-1].seq
        if needle is not None and seen:
            raise AssertionError(self._no_link(needle, seen, timeout))
        query.pop("after", None)
        if "after" in filters:
            query["after"] = filters["after"]
        self.wait_for(service, timeout=0, **query)
        raise AssertionError(f"no {kind} arrived within {timeout:g}s")  # pragma: no cover - wait_for raised

    def stream(self, service: str | None = None, **filters: Unpack[CallFilters]) -> Iterator[Call]:
        """Each new matching call as it is recorded (Server-Sent Events); with `after`, earlier ones first."""
        params = self._params(service, filters)
        with self._http.stream("GET", f"{self.url}/calls/stream", params=params, timeout=_STREAM_TIMEOUT) as response:
            if response.status_code >= 400:
                response.read()
                raise _error(response)
            parser = _Sse()
            for line in response.iter_lines():
                if (call := parser.call(line)) is not None:
                    yield call

    def export(
        self, fmt: Literal["jsonl", "har"] = "jsonl", service: str | None = None, **filters: Unpack[CallFilters]
    ) -> Iterator[bytes]:
        """The journal as JSON Lines or HAR, in chunks (servers without `/calls/export`: JSONL from `/calls`)."""
        params = self._export_params(fmt, service, filters)
        url = f"{self.url}/calls/export"
        with self._http.stream("GET", url, params=params, timeout=_EXPORT_TIMEOUT) as response:
            if response.status_code < 400:
                yield from response.iter_bytes()
                return
            response.read()
            if (failure := self._export_failure(response, fmt)) is not None:
                raise failure
        yield from (_jsonl(call) for call in self._all_raw(self._params(service, filters)))

    def _all_raw(self, params: dict[str, Any]) -> Iterator[Any]:
        """Every call of `GET /calls` as the server's JSON, page by page."""
        body = self._request("GET", "/calls", params=params)
        have = 0
        while True:
            yield from body["calls"]
            have += len(body["calls"])
            more = self._next_params(params, body, None, have)
            if more is None:
                return
            body = self._request("GET", "/calls", params=more)

    # -- faults ------------------------------------------------------------------------------------------
    def fault(self, service: str | None = None, **options: Unpack[FaultOptions]) -> ActiveFault:
        """Add a fault rule (docs/faults.md); `with hub.fault(...):` removes it again on exit.

        `times=None` fails every matching call until the rule is deleted. The options: `FaultOptions`.
        """
        return self.add_fault(self._fault_spec(service, options))

    def add_fault(self, spec: FaultSpec) -> ActiveFault:
        rule: ActiveFault = _lenient(ActiveFault, self._request("POST", "/faults", json=spec_json(spec)))
        rule._hub = self
        return rule

    def get_fault(self, fault_id: str) -> Fault:
        return self._fault_of(self._request("GET", self._rule_path("faults", fault_id)))

    def faults(self) -> list[Fault]:
        return self._faults_of(self._request("GET", "/faults", params=self._params()))

    def delete_fault(self, fault_id: str, *, missing_ok: bool = False) -> bool:
        return self._delete_rule("faults", fault_id, missing_ok=missing_ok)

    def clear_faults(self) -> int:
        return self._number(self._request("DELETE", "/faults", params=self._params()), "deleted")

    # -- stubs -------------------------------------------------------------------------------------------
    def stub(self, service: str | None = None, **options: Unpack[StubOptions]) -> ActiveStub:
        """Script a reply (docs/stubs.md): `content`/`tool_calls` for LLMs, `status`/`json`/`body` for raw HTTP.

        `with hub.stub(...):` removes it again on exit. The options: `StubOptions`.
        """
        return self.add_stub(self._stub_spec(service, options))

    def add_stub(self, spec: StubSpec) -> ActiveStub:
        rule: ActiveStub = _lenient(ActiveStub, self._request("POST", "/stubs", json=spec_json(spec)))
        rule._hub = self
        return rule

    def get_stub(self, stub_id: str) -> Stub:
        return self._stub_of(self._request("GET", self._rule_path("stubs", stub_id)))

    def stubs(self) -> list[Stub]:
        return self._stubs_of(self._request("GET", "/stubs", params=self._params()))

    def delete_stub(self, stub_id: str, *, missing_ok: bool = False) -> bool:
        return self._delete_rule("stubs", stub_id, missing_ok=missing_ok)

    def clear_stubs(self) -> int:
        return self._number(self._request("DELETE", "/stubs", params=self._params()), "deleted")

    # -- limits ------------------------------------------------------------------------------------------
    def limit(self, service: str | None = None, **options: Unpack[LimitOptions]) -> ActiveLimit:
        """Add a rate limit (docs/limits.md): `requests` (and/or `tokens`) per `per`, counted per `key`.

        `with hub.limit("openai", key="api_key", requests=2, per="1s"):` removes it again on exit.
        """
        return self.add_limit(self._limit_spec(service, options))

    def add_limit(self, spec: LimitSpec) -> ActiveLimit:
        rule: ActiveLimit = _lenient(ActiveLimit, self._request("POST", "/limits", json=spec_json(spec)))
        rule._hub = self
        return rule

    def get_limit(self, limit_id: str) -> Limit:
        return self._limit_of(self._request("GET", self._rule_path("limits", limit_id)))

    def limits(self) -> list[Limit]:
        return self._limits_of(self._request("GET", "/limits", params=self._params()))

    def delete_limit(self, limit_id: str, *, missing_ok: bool = False) -> bool:
        return self._delete_rule("limits", limit_id, missing_ok=missing_ok)

    def clear_limits(self) -> int:
        return self._number(self._request("DELETE", "/limits", params=self._params()), "deleted")

    def _delete_rule(self, kind: Literal["faults", "stubs", "limits"], rule_id: str, *, missing_ok: bool) -> bool:
        try:
            self._request("DELETE", self._rule_path(kind, rule_id))
        except MockHubError as exc:
            if self._missing(exc, missing_ok):
                return False
            raise
        return True

    # -- event webhooks ----------------------------------------------------------------------------------
    def webhook(
        self,
        service: str,
        url: str,
        *,
        secret: str | None = None,
        events: list[str] | None = None,
        namespace: str | None = None,
    ) -> WebhookConfig:
        """Send a fake's event webhooks (deliveries, bounces, complaints; docs/delivery.md) to `url`.

        `secret`: Mailgun's signing key, Resend's `whsec_...` (SendGrid signs with mockhub's key pair).
        Scoped to this client's namespace unless `namespace` names one.
        """
        body = self._webhook_body(service, url, secret, events, namespace)
        return self._webhook_of(self._request("POST", "/webhooks-config", json=body))

    def webhooks(self) -> list[WebhookConfig]:
        return self._webhooks_of(self._request("GET", "/webhooks-config", params=self._params()))

    def delete_webhook(self, config_id: str, *, missing_ok: bool = False) -> bool:
        try:
            self._request("DELETE", self._webhook_path(config_id))
        except MockHubError as exc:
            if self._missing(exc, missing_ok):
                return False
            raise
        return True

    def clear_webhooks(self) -> int:
        return self._number(self._request("DELETE", "/webhooks-config", params=self._params()), "deleted")

    # -- inbound simulation ------------------------------------------------------------------------------
    def simulate(
        self, service: str, event: str, given: Mapping[str, Any] | None = None, /, **fields: Any
    ) -> SimulationResult:
        """Deliver a provider's inbound event to the application (`POST /simulate/{service}/{event}`).

        `hub.simulate("twilio", "inbound-sms", url=..., from_="+1555...", to=..., body="hi")`: signed as
        the provider signs it, recorded in this client's namespace; the result says what the application
        answered (`ok`, `status`, `response`) or why it could not (`error`). The body's fields are keyword
        arguments, or a mapping given third (positionally: a field may be named `body` or `payload`).
        Raises `MockHubError` for an unknown event (404), a bad body (422) or a target refused (403).
        """
        path, params, payload, timeout = self._simulate_args(service, event, given, fields)
        return self._simulation_of(self._request("POST", path, params=params, json=payload, timeout=timeout))

    def simulations(self, service: str | None = None) -> list[dict[str, Any]]:
        """The inbound events the fakes can deliver (`GET /simulate`), each with its body's JSON schema."""
        params = {"service": service} if service is not None else {}
        answer = self._request("GET", "/simulate", params=params)
        return list(answer["simulations"])

    # -- usage -------------------------------------------------------------------------------------------
    def usage(
        self, service: str | None = None, *, model: str | None = None, **filters: Unpack[CallFilters]
    ) -> UsageOut:
        """LLM requests, tokens and estimated cost of the matching calls (`GET /usage`), per service and model.

        `model` is a name or a glob (`gpt-4o*`); the client's namespace applies, as to every query.
        """
        params = self._usage_params(service, model, filters)
        return self._usage_of(self._request("GET", "/usage", params=params))

    def prices(self) -> PriceTable:
        """The price table in force (USD per million tokens), per service and model."""
        return self._prices_of(self._request("GET", "/usage/prices"))

    def set_prices(self, prices: Prices) -> PriceTable:
        """Price models your way (`{"openai": {"gpt-4o": {"input": 2.5, "output": 10}}}`); replaces earlier ones."""
        return self._prices_of(self._request("PUT", "/usage/prices", json=self._prices_json(prices)))

    def reset_prices(self) -> PriceTable:
        """Drop the prices `set_prices` gave: the built-in ones are in force again."""
        return self._prices_of(self._request("DELETE", "/usage/prices"))

    # -- reset -------------------------------------------------------------------------------------------
    def reset(self) -> ResetResult:
        """Forget calls, faults and stubs (only this namespace's when the client has one)."""
        return self._reset_of(self._request("POST", "/reset", params=self._params()))
