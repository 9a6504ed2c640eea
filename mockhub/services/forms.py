"""`multipart/form-data` bodies, shared by the fakes that accept file uploads (Mailgun, Discord).

Split on the boundary by hand (fast and byte-exact for binary parts); each part's headers are read
with the stdlib `email` parser, which knows the parameter quoting rules (RFC 2231 filenames).
"""

from __future__ import annotations

import email
import email.message
import email.policy
import email.utils
import secrets
from dataclasses import dataclass

__all__ = ["FormPart", "MultipartError", "encode_multipart", "parse_multipart"]


class MultipartError(ValueError):
    """The body is not the multipart/form-data its content type announces."""


@dataclass(slots=True)
class FormPart:
    """One field of a form: `filename` is set for file uploads."""

    name: str
    value: bytes
    filename: str | None = None
    content_type: str = "text/plain"

    @property
    def text(self) -> str:
        return self.value.decode("utf-8", "replace")


def _boundary(content_type: str) -> bytes:
    msg = email.message.Message()
    msg["content-type"] = content_type
    boundary = msg.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise MultipartError("multipart/form-data without a boundary")
    return boundary.encode("latin-1")


def parse_multipart(content_type: str, body: bytes) -> list[FormPart]:
    """The parts of a `multipart/form-data` body, in order; raises MultipartError when it is broken."""
    delimiter = b"--" + _boundary(content_type)
    # The first delimiter may open the body without a preceding CRLF.
    start = body.find(delimiter)
    if start < 0:
        raise MultipartError("boundary not found in body")
    chunks = (b"\r\n" + body[start:]).split(b"\r\n" + delimiter)
    parts: list[FormPart] = []
    closed = False
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            closed = True
            break
        head, sep, value = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise MultipartError("part without a header block")
        headers = email.message_from_bytes(head.lstrip(b"\r\n") + b"\r\n\r\n", policy=email.policy.HTTP)
        name = headers.get_param("name", header="content-disposition")
        if isinstance(name, tuple):
            name = email.utils.collapse_rfc2231_value(name)
        if not isinstance(name, str):
            raise MultipartError("part without a name")
        filename = headers.get_filename()
        parts.append(FormPart(name, value, filename, headers.get_content_type()))
    if not closed:
        raise MultipartError("multipart body is not closed")
    return parts


def _quoted(value: str) -> str:
    # What browsers (and the providers' posters) do in a quoted-string: escape the quote, drop CR/LF.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")


def encode_multipart(parts: list[FormPart]) -> tuple[str, bytes]:
    """A `multipart/form-data` body of `parts` (file parts when `filename` is set) and its content type."""
    boundary = "----mockhub" + secrets.token_hex(16)
    out: list[bytes] = []
    for part in parts:
        disposition = f'form-data; name="{_quoted(part.name)}"'
        head = ""
        if part.filename is not None:
            disposition += f'; filename="{_quoted(part.filename)}"'
            head = f"\r\nContent-Type: {part.content_type}"
        out.append(f"--{boundary}\r\nContent-Disposition: {disposition}{head}\r\n\r\n".encode() + part.value + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(out)
