"""What `MockHub` and `AsyncMockHub` share: everything but the I/O (httpx-style).

Building query parameters and rule specs, reading the API's answers, parsing Server-Sent Events and
wording failures all live here, so the two clients differ only in `await`.
"""

from __future__ import annotations

import json as jsonlib
import os
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx
from pydantic import ValidationError

from mockhub.client.explain import explain_miss
from mockhub.client.models import Call, CallFilters, Health, ResetResult, SimulationResult
from mockhub.client.options import FaultOptions, LimitOptions, StubOptions, fault_spec, limit_spec, stub_spec
from mockhub.client.urls import (
    Catalogue,
    Urls,
    app_env,
    learn,
    map_env,
    proxy_env,
    proxy_url,
    template_values,
    write_trust,
)
from mockhub.limits import Limit, LimitSpec
from mockhub.rules import Fault, FaultSpec, Stub, StubSpec
from mockhub.usage import ModelPrice, PriceList, PriceTable, UsageOut
from mockhub.webhooks_config import WebhookConfig, WebhookSpec

# What `set_prices` takes: per service, per model, a ModelPrice or its JSON form `{"input": 2.5, "output": 10}`.
Prices = Mapping[str, Mapping[str, ModelPrice | Mapping[str, float]]]

__all__ = ["DEFAULT_URL", "MockHubError", "default_url"]

DEFAULT_URL = "http://127.0.0.1:8080"
# The long poll's server-side bound (GET /calls?wait= is at most 300 s).
_MAX_WAIT = 300.0
# Streams wait for calls indefinitely; only connecting is bounded.
_STREAM_TIMEOUT = httpx.Timeout(10.0, read=None)
_EXPORT_TIMEOUT = 60.0
# How many matching calls from other namespaces a failed `wait_for` fetches to name where they went.
_ELSEWHERE_LIMIT = 1000
# The largest page GET /calls answers; the client asks for pages this big when it follows `next`.
_PAGE = 1000


def default_url() -> str:
    """`MOCKHUB_URL` when set, else the default local server (127.0.0.1, not localhost: no IPv6 surprise)."""
    return (os.environ.get("MOCKHUB_URL") or DEFAULT_URL).rstrip("/")


class MockHubError(Exception):
    """The inspection API answered with an error (`{"error": {"code", "message"}}`)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def _lenient(model: type[Any], body: Any) -> Any:
    """Validate `body`, ignoring fields this client does not know (a newer server): drop them and retry."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        extra = [e["loc"] for e in exc.errors() if e["type"] == "extra_forbidden"]
        if not extra or not isinstance(body, dict):
            raise
        pruned = jsonlib.loads(jsonlib.dumps(body))
        for loc in extra:
            holder: Any = pruned
            for part in loc[:-1]:
                holder = holder[part]
            holder.pop(loc[-1], None)
        return model.model_validate(pruned)


def _spec_json(spec: FaultSpec | StubSpec | LimitSpec) -> Any:
    # exclude_defaults keeps requests minimal (and readable by older servers); `times=None` is not a default.
    return spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def _error(response: httpx.Response) -> MockHubError:
    code, message = "error", response.text[:500]
    try:
        detail = response.json()["error"]
        code, message = str(detail["code"]), str(detail["message"])
    except (ValueError, KeyError, TypeError):
        pass
    return MockHubError(response.status_code, code, message)


class _Sse:
    """An incremental Server-Sent Events parser: feed it lines, get (event, data) when one completes."""

    def __init__(self) -> None:
        self.event = "message"
        self.data: list[str] = []

    def feed(self, line: str) -> tuple[str, str] | None:
        if not line:
            done = (self.event, "\n".join(self.data)) if self.data else None
            self.event, self.data = "message", []
            return done
        if not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                self.event = value
            elif name == "data":
                self.data.append(value)
        return None

    def call(self, line: str) -> Call | None:
        """The call that `line` completes, if any (an overflow event raises)."""
        done = self.feed(line)
        if done is None:
            return None
        event, data = done
        if event == "overflow":
            raise MockHubError(503, "overflow", "the call stream fell behind and was cut off by the server")
        return Call.model_validate_json(data) if event == "call" else None


def _jsonl(call: Any) -> bytes:
    return jsonlib.dumps(call, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class _Base:
    """The state and the non-I/O half of a client: request building and answer parsing."""

    def __init__(self, url: str | None, namespace: str | None, smtp_host: str | None, smtp_port: int | None) -> None:
        self.url = (url or default_url()).rstrip("/")
        self.namespace = namespace
        self._smtp_host = smtp_host
        self._smtp_port = smtp_port
        self._catalogue: Catalogue | None = None

    @property
    def root(self) -> str:
        """This client's namespace root: `{url}/ns/{namespace}` (or the server itself when unscoped)."""
        if self.namespace is None:
            return self.url
        return f"{self.url}/ns/{quote(self.namespace, safe='')}"

    @property
    def urls(self) -> Urls:
        """The fakes' URLs for this client's namespace, as the server's fakes declare them (`GET /services`)."""
        return Urls.of(self.root, self._catalogue_now())

    def _catalogue_now(self) -> Catalogue:
        """The catalogue, asked for once (each client asks with its own connection and credentials)."""
        raise NotImplementedError

    def _learn(self, catalogue: Catalogue) -> Catalogue:
        learn(catalogue)
        self._catalogue = catalogue
        return catalogue

    @staticmethod
    def _services_of(response: httpx.Response) -> Catalogue:
        if response.status_code >= 400:
            raise _error(response)
        services: Catalogue = response.json()["services"]
        return services

    @property
    def smtp_host(self) -> str:
        return self._smtp_host or urlsplit(self.url).hostname or "127.0.0.1"

    def address(self, local: str = "test", domain: str = "example.com") -> str:
        """An email address that routes to this namespace (`local+ns-{namespace}@domain`) without SMTP AUTH."""
        if self.namespace is None:
            return f"{local}@{domain}"
        return f"{local}+ns-{self.namespace}@{domain}"

    def __repr__(self) -> str:
        scope = f", namespace={self.namespace!r}" if self.namespace is not None else ""
        return f"{type(self).__name__}({self.url!r}{scope})"

    # -- building requests -------------------------------------------------------------------------------
    def _params(self, service: str | None = None, filters: CallFilters | None = None, **extra: Any) -> dict[str, Any]:
        params: dict[str, Any] = {"service": service}
        params.update(filters or {})
        if self.namespace is not None:
            params.setdefault("namespace", self.namespace)
        params.update(extra)
        return {k: v for k, v in params.items() if v is not None}

    def _wait_params(self, service: str | None, count: int, timeout: float, filters: CallFilters) -> dict[str, Any]:
        return self._params(service, filters, wait=min(timeout, _MAX_WAIT), min=count)

    def _export_params(self, fmt: str, service: str | None, filters: CallFilters) -> dict[str, Any]:
        return self._params(service, filters, format=fmt)

    @staticmethod
    def _call_path(call_id: str, suffix: str = "") -> str:
        return f"/calls/{quote(call_id, safe='')}{suffix}"

    @staticmethod
    def _rule_path(kind: Literal["faults", "stubs", "limits"], rule_id: str) -> str:
        return f"/{kind}/{quote(rule_id, safe='')}"

    def _webhook_body(
        self, service: str, url: str, secret: str | None, events: list[str] | None, namespace: str | None
    ) -> dict[str, Any]:
        """A `POST /webhooks-config` body: this client's namespace unless one is named."""
        spec = WebhookSpec(
            service=service, namespace=namespace or self.namespace, url=url, secret=secret, events=events
        )
        return spec.model_dump(exclude_none=True)

    @staticmethod
    def _webhook_path(config_id: str) -> str:
        return f"/webhooks-config/{quote(config_id, safe='')}"

    @staticmethod
    def _webhook_of(body: Any) -> WebhookConfig:
        return _lenient(WebhookConfig, body)  # type: ignore[no-any-return]

    @staticmethod
    def _webhooks_of(body: Any) -> list[WebhookConfig]:
        return [_lenient(WebhookConfig, w) for w in body["webhooks"]]

    def _fault_spec(self, service: str | None, options: FaultOptions) -> FaultSpec:
        return fault_spec(service, self.namespace, options)

    def _stub_spec(self, service: str | None, options: StubOptions) -> StubSpec:
        return stub_spec(service, self.namespace, options)

    def _limit_spec(self, service: str | None, options: LimitOptions) -> LimitSpec:
        return limit_spec(service, self.namespace, options)

    def _env(
        self, smtp_port: int | None, trust: tuple[bytes, bytes] | None = None, mapping: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        catalogue = self._catalogue_now()
        listeners = {"smtp_port": smtp_port}
        urls = Urls.of(self.root, catalogue)
        env = app_env(catalogue, urls, self.smtp_host, listeners, self.namespace, self.url)
        if trust is not None:
            ca_file, bundle_file = write_trust(self.url, *trust)
            env.update(proxy_env(self.url, self.namespace, ca_file, bundle_file))
        if mapping:
            # After the proxy settings, so a project's own name may take one of them too (source `HTTPS_PROXY`).
            values = template_values(urls, self.smtp_host, listeners, self.namespace, self.url)
            env.update(map_env(mapping, catalogue, env, values))
        return dict(sorted(env.items()))

    @property
    def proxy_url(self) -> str:
        """mockhub as a forward proxy for this client's namespace: `http://{namespace}@host:port` (`HTTPS_PROXY`)."""
        return proxy_url(self.url, self.namespace)

    @staticmethod
    def _pem_of(response: httpx.Response) -> bytes:
        if response.status_code >= 400:
            raise _error(response)
        return response.content

    # -- reading answers ---------------------------------------------------------------------------------
    def _simulate_args(
        self, service: str, event: str, given: Mapping[str, Any] | None, fields: dict[str, Any]
    ) -> tuple[str, dict[str, Any], dict[str, Any], float]:
        """(path, query, JSON body, HTTP timeout) of `POST /simulate/{service}/{event}`.

        `from_=` is the body's `from` (a Python keyword). The HTTP timeout outlasts the delivery's own.
        """
        payload = {**(given or {}), **{("from" if k == "from_" else k): v for k, v in fields.items()}}
        path = f"/simulate/{quote(service, safe='')}/{quote(event, safe='')}"
        params = {"namespace": self.namespace} if self.namespace is not None else {}
        delivery = payload.get("timeout", 10.0)
        return path, params, payload, (float(delivery) if isinstance(delivery, int | float) else 10.0) + 10.0

    @staticmethod
    def _simulation_of(body: Any) -> SimulationResult:
        return SimulationResult.model_validate(body)

    @staticmethod
    def _health_of(body: Any) -> Health:
        return Health.model_validate(body)

    @staticmethod
    def _call_of(body: Any) -> Call:
        return Call.model_validate(body)

    @staticmethod
    def _calls_of(body: Any) -> list[Call]:
        return [Call.model_validate(c) for c in body["calls"]]

    @staticmethod
    def _fault_of(body: Any) -> Fault:
        return _lenient(Fault, body)  # type: ignore[no-any-return]

    @staticmethod
    def _faults_of(body: Any) -> list[Fault]:
        return [_lenient(Fault, f) for f in body["faults"]]

    @staticmethod
    def _stub_of(body: Any) -> Stub:
        return _lenient(Stub, body)  # type: ignore[no-any-return]

    @staticmethod
    def _stubs_of(body: Any) -> list[Stub]:
        return [_lenient(Stub, s) for s in body["stubs"]]

    @staticmethod
    def _limit_of(body: Any) -> Limit:
        return _lenient(Limit, body)  # type: ignore[no-any-return]

    @staticmethod
    def _limits_of(body: Any) -> list[Limit]:
        return [_lenient(Limit, rule) for rule in body["limits"]]

    @staticmethod
    def _reset_of(body: Any) -> ResetResult:
        return ResetResult.model_validate(body)

    def _usage_params(self, service: str | None, model: str | None, filters: CallFilters) -> dict[str, Any]:
        return self._params(service, filters, model=model)

    @staticmethod
    def _usage_of(body: Any) -> UsageOut:
        return UsageOut.model_validate(body)

    @staticmethod
    def _prices_of(body: Any) -> PriceTable:
        return PriceList.model_validate(body).prices

    @staticmethod
    def _prices_json(prices: Prices) -> dict[str, dict[str, Any]]:
        return {
            service: {m: p.model_dump() if isinstance(p, ModelPrice) else dict(p) for m, p in models.items()}
            for service, models in prices.items()
        }

    @staticmethod
    def _number(body: Any, key: Literal["count", "deleted"]) -> int:
        return int(body[key])

    @staticmethod
    def _missing(exc: MockHubError, missing_ok: bool) -> bool:
        """Whether a failed deletion means "it was already gone" and that is fine."""
        return exc.status == 404 and missing_ok

    def _export_failure(self, response: httpx.Response, fmt: str) -> MockHubError | None:
        """None when the server exported, or lacks `/calls/export` and JSONL can come from `/calls` instead."""
        if response.status_code == 404 and fmt == "jsonl":
            return None
        if response.status_code == 404:
            return MockHubError(
                404, "export_unsupported", f"{self.url} has no /calls/export: HAR needs a newer mockhub"
            )
        return _error(response)

    @staticmethod
    def _next_params(params: dict[str, Any], body: Any, limit: int | None, have: int) -> dict[str, Any] | None:
        """The query of the page after `body` (its `next` cursor), or None when there is none or enough is had.

        The next page is a plain listing (a long poll's answer is followed without waiting again).
        """
        cursor = body.get("next") if isinstance(body, dict) else None
        if not cursor or (limit is not None and have >= limit):
            return None
        query = {k: v for k, v in params.items() if k not in ("wait", "min", "cursor", "limit")}
        return {**query, "cursor": cursor, "limit": _PAGE if limit is None else min(_PAGE, limit - have)}

    @staticmethod
    def _found(kind: Literal["code", "link"], calls: list[Call], needle: str | None) -> str | None:
        """The first code (or link containing `needle`) of the newest of `calls` that has one."""
        for call in reversed(calls):
            for value in call.codes if kind == "code" else call.links:
                if needle is None or needle in value:
                    return value
        return None

    @staticmethod
    def _value_query(kind: Literal["code", "link"], filters: CallFilters) -> dict[str, Any]:
        wanted = filters.get("has")
        has = [wanted] if isinstance(wanted, str) else list(wanted or [])
        return {**filters, "has": list(dict.fromkeys([*has, kind]))}

    @staticmethod
    def _no_link(needle: str, seen: list[Call], timeout: float) -> str:
        links = list(dict.fromkeys(link for call in seen for link in call.links))
        shown = "\n".join(f"  {link}" for link in links[-20:])
        return (
            f"no link containing {needle!r} arrived within {timeout:g}s; "
            f"{len(seen)} matching message(s) carried these links:\n{shown}"
        )

    @staticmethod
    def _elsewhere_params(params: dict[str, Any]) -> dict[str, Any] | None:
        """`/calls` with a failed wait's filters in every namespace (None: the wait was not scoped)."""
        if "namespace" not in params:
            return None
        query = {k: v for k, v in params.items() if k not in ("wait", "min", "namespace")}
        return {**query, "limit": _ELSEWHERE_LIMIT, "order": "desc"}

    @staticmethod
    def _miss(
        params: dict[str, Any], count: int, got: list[Call], others: list[Call], timeout: float, elsewhere: list[Call]
    ) -> str:
        """Why `wait_for` failed: what was awaited, and what did arrive, most similar first."""
        wanted = {k: v for k, v in params.items() if k not in ("wait", "min")}
        return explain_miss(wanted, count, got, others, timeout, elsewhere=elsewhere, elsewhere_limit=_ELSEWHERE_LIMIT)
