"""The AWS Query protocol (SES v1, SNS): form-encoded requests in, XML answers out.

A Query request is `Action=...&Version=...` plus parameters flattened into dotted names: lists as
`Name.member.N` (`Destination.ToAddresses.member.1`), maps as `Name.entry.N.key` / `.value`
(SNS `MessageAttributes.entry.1.Name`, `.Value.DataType`, `.Value.StringValue`). Answers are
`<{Action}Response xmlns="...">` with an `<{Action}Result>` and `ResponseMetadata/RequestId`;
errors are `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`.
Also here: what the AWS fakes share beyond the protocol (request ids, the stub reply fields).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape as _escape

from pydantic import BaseModel, ConfigDict, Field

from mockhub.services.base import EnvVar, Reply

__all__ = [
    "CREDENTIAL_ENV",
    "AwsReply",
    "QueryError",
    "XmlMap",
    "entries",
    "member_structs",
    "members",
    "message_attributes",
    "parse_form",
    "query_error",
    "query_result",
    "request_id",
    "request_params",
]

_XML_CONTENT_TYPE = "text/xml"
_MEMBER = re.compile(r"^(.+)\.member\.(\d+)(?:\.(.+))?$")


# boto3 signs nothing without credentials: any pair will do, mockhub reads the signature and does not check it.
CREDENTIAL_ENV = (
    EnvVar(name="AWS_ACCESS_KEY_ID", value="mockhub", description="any access key id (see MOCKHUB_CREDENTIALS)"),
    EnvVar(name="AWS_SECRET_ACCESS_KEY", value="mockhub", description="any secret: signatures are not verified"),
)


class AwsReply(BaseModel):
    """The AWS fakes' fields of a stub's `reply`: the MessageId to answer, or an error in the API's shape."""

    model_config = ConfigDict(extra="ignore")

    message_id: str | None = Field(None, description="the MessageId answered (else a fresh one)")
    error: str | None = Field(None, description="an AWS error code to answer instead, e.g. MessageRejected")
    message: str | None = Field(None, description="the error's message")
    status: int | None = Field(None, ge=400, le=599, description="the error's HTTP status (default 400)")


class QueryError(Exception):
    """A Query request AWS refuses: its code, message and status (Type Sender below 500)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


# XML 1.0 has no way to write most control characters (not even as &#...;), and echoing a
# client's bytes in a message must never make the answer unparsable: they become U+FFFD.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def escape(text: str) -> str:
    """`text` as XML character data: markup escaped, characters XML cannot hold replaced."""
    return _escape(_NOT_XML.sub("\ufffd", text))


def request_id() -> str:
    return str(uuid.uuid4())


def parse_form(body: bytes) -> dict[str, str]:
    """A Query request's parameters (the first value of each name); QueryError when it cannot be read."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise QueryError("MalformedQueryString", "The request body is not valid UTF-8.", 404) from exc
    params: dict[str, str] = {}
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise QueryError("MalformedQueryString", f"The request body is not a valid query string: {exc}", 404) from exc
    for key, value in pairs:
        params.setdefault(key, value)
    return params


def request_params(method: str, body: bytes, query_string: bytes) -> dict[str, str]:
    """A Query call's parameters: a POST's form body, or a GET's query string (without a presigned URL's X-Amz-*)."""
    if method == "POST":
        return parse_form(body)
    if method == "GET":
        return {k: v for k, v in parse_form(query_string).items() if not k.startswith("X-Amz-")}
    raise QueryError("InvalidAction", f"The Query API takes GET and POST requests, not {method}.")


def members(params: Mapping[str, str], prefix: str) -> list[str] | None:
    """The list `prefix.member.N` in order of N; None when the list was not sent at all."""
    found: dict[int, str] = {}
    head = f"{prefix}.member."
    for key, value in params.items():
        if key.startswith(head) and key[len(head) :].isdigit():
            found[int(key[len(head) :])] = value
    if not found and prefix not in params:
        return None
    return [found[n] for n in sorted(found)]


def member_structs(params: Mapping[str, str], prefix: str) -> list[dict[str, str]]:
    """A list of structures, `prefix.member.N.Field`, each as {Field: value}."""
    found: dict[int, dict[str, str]] = {}
    for key, value in params.items():
        m = _MEMBER.match(key)
        if m is not None and m.group(1) == prefix and m.group(3):
            found.setdefault(int(m.group(2)), {})[m.group(3)] = value
    return [found[n] for n in sorted(found)]


def entries(params: Mapping[str, str], prefix: str, key: str = "key", value: str = "value") -> dict[str, str]:
    """A map, `prefix.entry.N.key` / `prefix.entry.N.value` (CreateTopic's Attributes)."""
    keys: dict[str, str] = {}
    values: dict[str, str] = {}
    head = f"{prefix}.entry."
    for name, text in params.items():
        if not name.startswith(head):
            continue
        n, _, field = name[len(head) :].partition(".")
        if field == key:
            keys[n] = text
        elif field == value:
            values[n] = text
    return {keys[n]: values.get(n, "") for n in sorted(keys, key=lambda s: int(s) if s.isdigit() else 0)}


def message_attributes(params: Mapping[str, str], prefix: str = "MessageAttributes") -> dict[str, dict[str, str]]:
    """SNS message attributes: `prefix.entry.N.Name` and `.Value.DataType` / `.StringValue` / `.BinaryValue`."""
    names: dict[str, str] = {}
    values: dict[str, dict[str, str]] = {}
    head = f"{prefix}.entry."
    for key, text in params.items():
        if not key.startswith(head):
            continue
        n, _, field = key[len(head) :].partition(".")
        if field == "Name":
            names[n] = text
        elif field.startswith("Value."):
            values.setdefault(n, {})[field[len("Value.") :]] = text
    return {names[n]: values.get(n, {}) for n in sorted(names, key=lambda s: int(s) if s.isdigit() else 0)}


class XmlMap(dict[str, str]):
    """A map in a Query answer: `<entry><key/><value/></entry>` elements (GetTopicAttributes)."""


def _xml(value: Any) -> str:
    if isinstance(value, XmlMap):
        return "".join(f"<entry><key>{escape(k)}</key><value>{escape(v)}</value></entry>" for k, v in value.items())
    if isinstance(value, Mapping):
        return "".join(f"<{k}>{_xml(v)}</{k}>" for k, v in value.items() if v is not None)
    if isinstance(value, list):
        return "".join(f"<member>{_xml(v)}</member>" for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def query_result(action: str, namespace: str, result: Mapping[str, Any] | None, rid: str | None = None) -> Reply:
    """`<{action}Response>` with its `<{action}Result>` (none when `result` is None) and the RequestId."""
    rid = rid or request_id()
    inner = "" if result is None else f"<{action}Result>{_xml(result)}</{action}Result>"
    body = (
        f'<{action}Response xmlns="{namespace}">{inner}'
        f"<ResponseMetadata><RequestId>{rid}</RequestId></ResponseMetadata></{action}Response>"
    )
    return Reply(200, body.encode(), [("content-type", _XML_CONTENT_TYPE), ("x-amzn-requestid", rid)])


def query_error(namespace: str, code: str, message: str, status: int = 400, rid: str | None = None) -> Reply:
    """The Query APIs' `<ErrorResponse>`: Type `Sender` for the caller's faults, `Receiver` for the service's."""
    rid = rid or request_id()
    kind = "Receiver" if status >= 500 else "Sender"
    body = (
        f'<ErrorResponse xmlns="{namespace}"><Error><Type>{kind}</Type><Code>{escape(code)}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>"
    )
    return Reply(status, body.encode(), [("content-type", _XML_CONTENT_TYPE), ("x-amzn-requestid", rid)])
