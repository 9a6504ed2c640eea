"""Limits on what one body may make a parser do: parts, MIME nesting, headers per part.

A client chooses the bytes; without bounds a 1 MiB multipart body of 20,000 parts or a message
nested 5,000 deep keeps the one event loop busy for seconds. The parsers of the fakes (multipart
forms, MIME) read the current limits from `LIMITS`, which the HTTP pipeline and the SMTP handler
set from Settings for each call (a context variable, so it also reaches a worker thread), and raise
`ParseLimitExceeded` past them; the pipeline answers it in the fake's own shape (413).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["LIMITS", "ParseLimitExceeded", "ParseLimits", "too_deep", "too_many_headers", "too_many_parts"]


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Settings `max_parts`, `max_mime_depth`, `max_part_headers` (the defaults are the settings')."""

    max_parts: int = 1000
    max_depth: int = 64
    max_headers: int = 1000


# A frozen dataclass: the shared default cannot be changed.
LIMITS: ContextVar[ParseLimits] = ContextVar("mockhub_parse_limits", default=ParseLimits())  # noqa: B039


class ParseLimitExceeded(Exception):
    """A body past a parse limit. Not a ValueError on purpose: it is the pipeline's to answer (413)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error  # recorded as `data.error`: too_many_parts, too_deep, too_many_headers
        self.message = message


def too_many_parts() -> ParseLimitExceeded:
    limit = LIMITS.get().max_parts
    return ParseLimitExceeded("too_many_parts", f"body has more than {limit} parts (max_parts)")


def too_deep() -> ParseLimitExceeded:
    limit = LIMITS.get().max_depth
    return ParseLimitExceeded(
        "too_deep", f"MIME parts nested too deep to read (more than {limit} levels; max_mime_depth)"
    )


def too_many_headers() -> ParseLimitExceeded:
    limit = LIMITS.get().max_headers
    return ParseLimitExceeded("too_many_headers", f"a part has more than {limit} header lines (max_part_headers)")
