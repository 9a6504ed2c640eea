"""LLM usage, summed from the journal: `GET /usage` and its price table (`/usage/prices`).

Each fake says which of its calls were billed and for what (`Service.usage(call)`: the model and the
tokens its answer reported), and what its models cost (`Service.prices`, USD per million tokens).
This module only sums: it knows no fake. Because the sums come from the journal, they follow its
filters, namespaces and resets: `POST /reset` starts them at zero, `?namespace=` keeps to one test.

A price key names a model or the start of model names (`gpt-4o` prices `gpt-4o-2024-08-06`); the
longest key that fits wins, so `gpt-4o-mini` is not priced as `gpt-4o`; `*` fits every model of its
service. Over the fakes' prices go a file (`llm_prices`, MOCKHUB_LLM_PRICES) and then what
`PUT /usage/prices` set.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mockhub.journal import Call

__all__ = ["Billed", "ModelPrice", "PriceError", "PriceTable", "Prices", "UsageOut", "UsageRow", "summarize"]


class ModelPrice(BaseModel):
    """What one model costs, in USD per million tokens."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0, description="USD per million input (prompt) tokens")
    output: float = Field(0.0, ge=0, description="USD per million output (completion) tokens")


# service -> model (or start of model names, or `*`) -> price
PriceTable = dict[str, dict[str, ModelPrice]]


class PriceList(BaseModel):
    """The price table in force (`GET /usage/prices`): the fakes' own, a file's and `PUT`'s, merged."""

    currency: Literal["USD"] = "USD"
    per: Literal["1M tokens"] = "1M tokens"
    prices: PriceTable


@dataclass(frozen=True, slots=True)
class Billed:
    """What one call was billed for: its model and the tokens its answer reported."""

    model: str
    input_tokens: int
    output_tokens: int = 0


class UsageTotals(BaseModel):
    requests: int = Field(0, description="billed calls: answered with 2xx by the fake (not faults, not raw stubs)")
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = Field(0.0, description="estimated from the price table; 0 for models it has no price for")


class UsageRow(UsageTotals):
    """The usage of one model of one service."""

    service: str
    model: str
    price: ModelPrice | None = Field(description="the price applied (per million tokens); null: none known")


class UsageOut(UsageTotals):
    """`GET /usage`: the totals, and one row per service and model (most used first)."""

    currency: Literal["USD"] = "USD"
    models: list[UsageRow]
    unpriced: list[str] = Field(description="`service/model` of the rows without a price (their cost counts as 0)")


class PriceError(ValueError):
    """A price table that cannot be used; the message says where."""


def _validate(raw: Any, where: str) -> PriceTable:
    if not isinstance(raw, Mapping):
        raise PriceError(f"{where}: a price table is an object of services, each an object of models")
    table: PriceTable = {}
    for service, models in raw.items():
        if not isinstance(models, Mapping):
            raise PriceError(f"{where}: {service}: an object of models, each {{input, output}}")
        table[str(service)] = {}
        for model, price in models.items():
            try:
                table[str(service)][str(model)] = ModelPrice.model_validate(price)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'price'}: {e['msg']}" for e in exc.errors()
                )
                raise PriceError(f"{where}: {service}.{model}: {problems}") from None
    return table


def load_price_file(path: Path) -> PriceTable:
    """A JSON or YAML price table (`llm_prices`)."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PriceError(f"llm_prices {path}: cannot read: {exc}") from exc
    try:
        if path.suffix == ".json":
            import json

            raw = json.loads(text)
        else:
            import yaml

            raw = yaml.safe_load(text)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError: either way the file is unusable
        raise PriceError(f"llm_prices {path}: {exc}") from exc
    return _validate(raw or {}, f"llm_prices {path}")


class Prices:
    """The price table: the fakes' own, then the file's, then what `PUT /usage/prices` set (which wins)."""

    def __init__(self, builtin: Mapping[str, Mapping[str, ModelPrice]], file: Path | None = None) -> None:
        self._base: PriceTable = {s: dict(m) for s, m in builtin.items() if m}
        if file is not None:
            for service, models in load_price_file(file).items():
                self._base.setdefault(service, {}).update(models)
        self._user: PriceTable = {}
        self._merged = self._merge()
        self._lock = threading.Lock()

    def _merge(self) -> PriceTable:
        merged = {s: dict(m) for s, m in self._base.items()}
        for service, models in self._user.items():
            merged.setdefault(service, {}).update(models)
        return merged

    def table(self) -> PriceTable:
        return self._merged

    def replace(self, raw: Any) -> PriceTable:
        """Set the user's prices (all of them: a second PUT replaces the first); returns the table in force."""
        user = _validate(raw, "prices")
        with self._lock:
            self._user = user
            self._merged = self._merge()
        return self._merged

    def clear(self) -> PriceTable:
        """Forget the user's prices: the fakes' and the file's are in force again."""
        return self.replace({})

    def of(self, service: str, model: str) -> ModelPrice | None:
        """The price of `model`: an exact key, else the longest key it starts with, else `*`."""
        models = self._merged.get(service)
        if not models:
            return None
        name = model.removeprefix("models/")
        exact = models.get(name)
        if exact is not None:
            return exact
        best = max((k for k in models if k != "*" and name.startswith(k)), key=len, default=None)
        if best is not None:
            return models[best]
        return models.get("*")


def summarize(
    calls: Iterable[Call],
    readers: Mapping[str, Callable[[Call], Billed | None]],
    prices: Prices,
    model: str | None = None,
) -> UsageOut:
    """Sum the billed calls among `calls` (per service and model), `model` an exact name or a glob."""
    rows: dict[tuple[str, str], list[int]] = {}
    for call in calls:
        reader = readers.get(call.service)
        billed = reader(call) if reader is not None else None
        if billed is None:
            continue
        if model is not None and billed.model != model and not fnmatch.fnmatchcase(billed.model, model):
            continue
        row = rows.setdefault((call.service, billed.model), [0, 0, 0])
        row[0] += 1
        row[1] += billed.input_tokens
        row[2] += billed.output_tokens
    out: list[UsageRow] = []
    for (service, name), (requests, tokens_in, tokens_out) in rows.items():
        price = prices.of(service, name)
        cost = (tokens_in * price.input + tokens_out * price.output) / 1_000_000 if price is not None else 0.0
        out.append(
            UsageRow(
                service=service,
                model=name,
                requests=requests,
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                total_tokens=tokens_in + tokens_out,
                cost_usd=round(cost, 9),
                price=price,
            )
        )
    out.sort(key=lambda r: (-r.total_tokens, r.service, r.model))
    return UsageOut(
        requests=sum(r.requests for r in out),
        input_tokens=sum(r.input_tokens for r in out),
        output_tokens=sum(r.output_tokens for r in out),
        total_tokens=sum(r.total_tokens for r in out),
        cost_usd=round(sum(r.cost_usd for r in out), 9),
        models=out,
        unpriced=[f"{r.service}/{r.model}" for r in out if r.price is None],
    )
