"""The Python client of the inspection API: `MockHub` (sync) and `AsyncMockHub` (async), both on httpx.

It talks HTTP only (no server imports), so it works the same against a sidecar container and against
the in-process server of the pytest plugin. A client may be bound to a namespace: then every query,
wait and reset is scoped to it, rules it creates match only it, and `urls` / `env()` point an
application at that namespace's fakes.

The modules: `models` (what the API answers), `options` (the keyword options of `fault` / `stub`),
`base` (all the non-I/O logic both clients share), `sync` (`MockHub`), `aio` (`AsyncMockHub`),
`urls` (where the fakes live) and `explain` (failure messages).
"""

from __future__ import annotations

from mockhub.client.aio import AsyncMockHub
from mockhub.client.base import DEFAULT_URL, MockHubError, default_url
from mockhub.client.base import _lenient as _lenient  # the tests' own use
from mockhub.client.explain import call_text, describe, explain_miss
from mockhub.client.models import (
    ActiveFault,
    ActiveStub,
    AsyncActiveFault,
    AsyncActiveStub,
    AsyncRule,
    Call,
    CallFilters,
    CallResponse,
    FaultHit,
    Health,
    ResetResult,
    SimulationResult,
    StubHit,
)
from mockhub.client.options import FaultOptions, MatchOptions, StubOptions
from mockhub.client.sync import MockHub
from mockhub.client.urls import Urls, app_env
from mockhub.usage import ModelPrice, UsageOut, UsageRow

__all__ = [
    "DEFAULT_URL",
    "ActiveFault",
    "ActiveStub",
    "AsyncActiveFault",
    "AsyncActiveStub",
    "AsyncMockHub",
    "AsyncRule",
    "Call",
    "CallFilters",
    "CallResponse",
    "FaultHit",
    "FaultOptions",
    "Health",
    "MatchOptions",
    "MockHub",
    "MockHubError",
    "ModelPrice",
    "ResetResult",
    "SimulationResult",
    "StubHit",
    "StubOptions",
    "Urls",
    "UsageOut",
    "UsageRow",
    "app_env",
    "call_text",
    "default_url",
    "describe",
    "explain_miss",
]
