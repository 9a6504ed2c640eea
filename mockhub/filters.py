"""The call filters: one definition of `service`, `to`, `contains`, ... and what each one means.

`CallFilters` names the filters and their types once; everything else is derived from it: the
journal's matcher (`CallFilter`), the inspection API's query models (`with_filters`), the rules'
`Match`, the client's keyword arguments (`**filters: Unpack[CallFilters]`) and the CLI's flags.
`MATCHERS` says how each filter tests a call; the client's near-miss explanation uses the same
functions, so "what a wait found" and "why a call did not count" cannot disagree.

Which `data` fields hold a call's recipients, text and subject is a fact of each fake
(`DataFields`, declared in its own module and registered in `FIELDS` when the fake's class is
defined); this module names no fake.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    Protocol,
    TypedDict,
    TypeVar,
    get_args,
    get_origin,
    get_type_hints,
)

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_validator
from pydantic.fields import FieldInfo

from mockhub.extract import codes_in, links_in, nested_strings

__all__ = [
    "FIELDS",
    "FILTER_NAMES",
    "HAS_KINDS",
    "MATCHERS",
    "MESSAGES",
    "CallFilter",
    "CallFilters",
    "DataFields",
    "Filterable",
    "Match",
    "features_of",
    "filter_fields",
    "message_facts",
    "norm_recipient",
    "with_filters",
]


HasKind = Literal["link", "code", "attachment"]
HAS_KINDS: tuple[str, ...] = get_args(HasKind)


def split_has(value: Any) -> Any:
    """`has` as a list: `"link,code"`, `["link", "code"]` and a repeated query parameter all say the same."""
    if isinstance(value, str):
        return [v.strip().lower() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return [v.strip() for item in value for v in (split_has(item) if isinstance(item, str) else [item])]
    return value


class CallFilters(TypedDict, total=False):
    """The `/calls` filters besides `service` (every one optional; given together they combine with AND)."""

    namespace: Annotated[str, Field(description="only this namespace")]
    method: Annotated[str, Field(description="HTTP method, any case (DATA for a mail message)")]
    path: Annotated[str, Field(description="path, or a glob such as /services/*")]
    host: Annotated[
        str,
        Field(description="host the call was going to (api.twilio.com, 127.0.0.1:8080), or a glob such as *.slack.com"),
    ]
    direction: Annotated[
        Literal["inbound", "outbound"], Field(description="inbound (sent to mockhub) or outbound (sent by mockhub)")
    ]
    contains: Annotated[
        str, Field(description="substring of the body or of the call's text (an email's decoded parts)")
    ]
    to: Annotated[str, Field(description="any recipient: an email address, a phone number, a channel")]
    subject: Annotated[str, Field(description="substring of the subject, any case")]
    after: Annotated[int, Field(ge=0, description="only calls with a greater seq")]
    has: Annotated[
        HasKind | list[HasKind],
        BeforeValidator(split_has),
        Field(
            description="only messages that carry all of these: link, code, attachment "
            "(repeat the parameter or give a comma list)"
        ),
    ]


SERVICE_FIELD: Any = Field(None, description="journal name of the fake (see GET /services)")


def filter_fields(exclude: Iterable[str] = ()) -> dict[str, tuple[Any, FieldInfo]]:
    """Each filter as `(type, FieldInfo)`, optional with a None default: what `create_model` takes."""
    skip = set(exclude)
    out: dict[str, tuple[Any, FieldInfo]] = {}
    for name, hint in get_type_hints(CallFilters, include_extras=True).items():
        if name in skip:
            continue
        base, *meta = get_args(hint) if get_origin(hint) is Annotated else (hint,)
        info = FieldInfo.merge_field_infos(*(m for m in meta if isinstance(m, FieldInfo)), default=None)
        # Validators (BeforeValidator) stay with the type; `has` is parsed to a list of known kinds.
        others = tuple(m for m in meta if not isinstance(m, FieldInfo))
        kind = _WIRE_TYPES.get(name, base)
        out[name] = (Annotated[(kind | None, *others)] if others else kind | None, info)
    return out


# The type a filter's value is validated as where it arrives (a query string), when the client's is wider:
# the client passes `has="code"` or `has=["link", "code"]`, the server checks each against the kinds.
_WIRE_TYPES: dict[str, Any] = {"has": list[HasKind]}

FILTER_NAMES: tuple[str, ...] = ("service", *get_type_hints(CallFilters))

M = TypeVar("M", bound=BaseModel)


def with_filters(base: type[M], *, service: bool = True, exclude: Iterable[str] = ()) -> type[M]:
    """`base` with every filter added as an optional field (`service` too unless told otherwise)."""
    fields: dict[str, Any] = dict(filter_fields(exclude))
    if service:
        fields = {"service": (str | None, SERVICE_FIELD), **fields}
    model: type[M] = create_model(base.__name__, __base__=base, __module__=base.__module__, **fields)
    model.__doc__ = base.__doc__
    return model


# -- what a fake's `data` holds ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataFields:
    """Which keys of a call's `data` the common filters read: `to`, `text` (for `contains`) and `subject`.

    A value may be a string or a list of strings. The defaults suit most message-like fakes.
    """

    to: tuple[str, ...] = ("to", "cc", "bcc", "rcpt_to", "channel", "recipients")
    text: tuple[str, ...] = ("subject", "text", "html", "body", "reply", "summary")
    # The first key that holds something wins: a message sent under several subjects lists them all.
    subject: tuple[str, ...] = ("subjects", "subject")
    # Keys holding structured content (Slack blocks, Discord embeds, Teams cards) whose `text`, `url`,
    # `title`, ... strings a message's links and codes are read from too, beside `text`.
    rich: tuple[str, ...] = ()
    # Keys holding the files a call carried (non-empty lists): what `has=attachment` looks for.
    files: tuple[str, ...] = ("attachments",)


DEFAULT_FIELDS = DataFields()
FIELDS: dict[str, DataFields] = {}
"""service name -> its `DataFields`; filled by each fake's class (`Service.__init_subclass__`)."""


def fields_for(service: str) -> DataFields:
    return FIELDS.get(service, DEFAULT_FIELDS)


def norm_recipient(value: str) -> str:
    """`"Ops Team <ops@example.com>"` -> `ops@example.com`; `"#alerts"` -> `alerts`; any case."""
    value = value.strip().lower()
    if value.endswith(">") and "<" in value:
        value = value[value.rindex("<") + 1 : -1]
    return value.lstrip("#")


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        yield from (v for v in value if isinstance(v, str))


def recipients_of(service: str, data: Mapping[str, Any]) -> frozenset[str]:
    found: set[str] = set()
    for key in fields_for(service).to:
        found.update(norm_recipient(v) for v in _strings(data.get(key)))
    return frozenset(found)


def texts_of(service: str, data: Mapping[str, Any]) -> list[str]:
    return [v for key in fields_for(service).text if isinstance(v := data.get(key), str)]


MESSAGES: set[str] = set()
"""The services whose calls are messages (`Service.message`): their calls get `data.links` and `data.codes`."""


def message_texts(service: str, data: Mapping[str, Any]) -> list[str]:
    """The texts a message's links and codes are read from: its `text` fields, then its `rich` content."""
    fields = fields_for(service)
    texts = [v for key in fields.text if isinstance(v := data.get(key), str) and v]
    for key in fields.rich:
        nested_strings(data.get(key), texts)
    return texts


def message_facts(service: str, data: dict[str, Any]) -> None:
    """Set `data.links` and `data.codes` of a message-like call that carries text (once, when recorded)."""
    if service not in MESSAGES or "codes" in data:
        return
    texts = message_texts(service, data)
    if texts:
        try:
            links, codes = links_in(texts), codes_in(texts)
        except Exception:  # reading links and codes must never cost a call its record
            return
        data["links"] = links
        data["codes"] = codes


def features_of(service: str, data: Mapping[str, Any]) -> frozenset[str]:
    """What the `has` filter sees in a call: `link`, `code`, `attachment`."""
    found = set()
    if data.get("links"):
        found.add("link")
    if data.get("codes"):
        found.add("code")
    if any(isinstance(v := data.get(key), list) and v for key in fields_for(service).files):
        found.add("attachment")
    return frozenset(found)


def subjects_of(service: str, data: Mapping[str, Any]) -> list[str]:
    for key in fields_for(service).subject:
        found = list(_strings(data.get(key)))
        if found:
            return found
    return []


# -- matching ------------------------------------------------------------------------------------------


class Filterable(Protocol):
    """What a filter reads of a call: the journal's `Call` and the client's `Call` both provide it."""

    @property
    def service(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def direction(self) -> str: ...
    @property
    def seq(self) -> int: ...
    def recipients(self) -> frozenset[str]: ...
    def search_text(self) -> str: ...
    def subjects(self) -> list[str]: ...
    def features(self) -> frozenset[str]: ...


Test = Callable[[Filterable], bool]


@dataclass(frozen=True, slots=True)
class Matcher:
    """How one filter tests a call (`compile(value)` -> predicate), and what it compares (`seen`)."""

    compile: Callable[[Any], Test]
    seen: Callable[[Filterable], str]


def _path(value: str) -> Test:
    if any(c in value for c in "*?["):
        regex = re.compile(fnmatch.translate(value))
        return lambda c: regex.match(c.path) is not None
    return lambda c: c.path == value


def _host(value: str) -> Test:
    # Host names are case-insensitive; the journal records them in lower case.
    wanted = value.lower()
    if any(c in wanted for c in "*?["):
        regex = re.compile(fnmatch.translate(wanted))
        return lambda c: regex.match(c.host) is not None
    return lambda c: c.host == wanted


def _subject(value: str) -> Test:
    needle = value.lower()
    return lambda c: any(needle in s.lower() for s in c.subjects())


def _has(value: Any) -> Test:
    wanted = frozenset(split_has(value))
    return lambda c: wanted <= c.features()


def _equal(attr: str, fold: Callable[[str], str] = str) -> Matcher:
    def test(value: Any) -> Test:
        wanted = fold(str(value))
        return lambda c: getattr(c, attr) == wanted

    return Matcher(test, lambda c: str(getattr(c, attr)))


MATCHERS: dict[str, Matcher] = {
    "service": _equal("service"),
    "namespace": _equal("namespace"),
    "method": _equal("method", str.upper),
    "path": Matcher(_path, lambda c: c.path),
    "host": Matcher(_host, lambda c: c.host),
    "direction": _equal("direction"),
    "contains": Matcher(lambda v: lambda c: v in c.search_text(), lambda c: c.search_text()),
    "to": Matcher(
        lambda v: (lambda wanted: lambda c: wanted in c.recipients())(norm_recipient(v)),
        lambda c: " ".join(sorted(c.recipients())),
    ),
    "subject": Matcher(_subject, lambda c: " | ".join(c.subjects())),
    "after": Matcher(lambda v: lambda c: c.seq > v, lambda c: str(c.seq)),
    "has": Matcher(_has, lambda c: ",".join(sorted(c.features())) or "nothing"),
}
assert set(MATCHERS) == set(FILTER_NAMES), "every filter in CallFilters needs a matcher, and only those"

# Cheapest first: a call usually fails on service, namespace or seq before any text is built.
_ORDER = {name: i for i, name in enumerate(("service", "namespace", "after", "method", "direction", "path", "host"))}


class CallFilter:
    """A compiled set of filters (AND). `CallFilter()` matches every call."""

    __slots__ = ("_tests", "after", "namespace", "service", "values")

    def __init__(self, service: str | None = None, **filters: Any) -> None:
        values = {k: v for k, v in {"service": service, **filters}.items() if v is not None}
        unknown = set(values) - set(MATCHERS)
        if unknown:
            raise TypeError(f"unknown call filter(s): {', '.join(sorted(unknown))}")
        self.values: dict[str, Any] = values
        self.service: str | None = values.get("service")
        self.namespace: str | None = values.get("namespace")
        self.after: int | None = values.get("after")
        names = sorted(values, key=lambda n: _ORDER.get(n, len(_ORDER)))
        self._tests: tuple[Test, ...] = tuple(MATCHERS[n].compile(values[n]) for n in names)

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> CallFilter:
        """The filter named by a mapping (a query model's dump), ignoring keys that are not filters."""
        return cls(**{k: v for k, v in values.items() if k in MATCHERS})

    def matches(self, call: Filterable) -> bool:
        # A loop, not all(<generator>): this runs per rule and per waiter on every call.
        for test in self._tests:  # noqa: SIM110
            if not test(call):
                return False
        return True

    @property
    def empty(self) -> bool:
        return not self.values

    def only(self, *names: str) -> bool:
        """Whether the filter uses no other filters than `names` (and at least one of them)."""
        return bool(self.values) and set(self.values) <= set(names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CallFilter) and other.values == self.values

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.values.items())))

    def __repr__(self) -> str:
        return f"CallFilter({', '.join(f'{k}={v!r}' for k, v in self.values.items())})"


def closeness(name: str, value: Any, call: Filterable) -> tuple[bool, float]:
    """Whether `call` meets one filter, and how close it comes (0..1) when it does not."""
    matcher = MATCHERS.get(name)
    if matcher is None:
        return True, 1.0
    if matcher.compile(value)(call):
        return True, 1.0
    wanted, have = str(value).lower(), matcher.seen(call).lower()
    if name == "contains":
        # Closeness of the best same-length window: "disk ful" is near "disk full", "cpu" is not.
        best = difflib.SequenceMatcher(None, wanted, have).find_longest_match()
        return False, best.size / max(len(wanted), 1)
    return False, difflib.SequenceMatcher(None, wanted, have).ratio()


# -- the rules' match ------------------------------------------------------------------------------------


class MatchOptions(BaseModel):
    """Which calls a rule applies to; the same fields as the `/calls` filters, all optional (AND)."""

    model_config = ConfigDict(extra="forbid")

    regex: str | None = Field(None, description="regular expression searched in the body / decoded text")
    data: dict[str, Any] | None = Field(
        None, description="fields that must equal the call's parsed `data` fields (e.g. {'model': 'gpt-4o'})"
    )

    @model_validator(mode="after")
    def _regex_compiles(self) -> MatchOptions:
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"match.regex is not a valid regular expression: {exc}") from exc
        return self

    def filters(self) -> dict[str, Any]:
        """The filter fields given, as `CallFilter` keywords."""
        return {k: v for k, v in self.model_dump(exclude={"regex", "data"}).items() if v is not None}

    def scope(self) -> str | None:
        """The namespace the rule is limited to, if any."""
        value = self.filters().get("namespace")
        return value if isinstance(value, str) else None


# A rule's service is the rule's own field, and a rule acts on what arrives, so it never looks at
# `direction` or `after`; nor at `has`, whose links and codes are read when the call is recorded.
_MATCH_EXCLUDES = ("direction", "after", "has")
if TYPE_CHECKING:
    Match = MatchOptions
else:
    Match = with_filters(MatchOptions, service=False, exclude=_MATCH_EXCLUDES)
