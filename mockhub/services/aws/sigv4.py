"""AWS Signature Version 4: reading the `Authorization` header the SDKs send, without verifying it.

mockhub accepts any well-formed signature (it has no secret keys to check one against), and refuses
a missing or garbled one the way AWS does: `MissingAuthenticationToken` without any, then
`IncompleteSignature` for a header that cannot be a SigV4 signature, `SignatureDoesNotMatch` for a
scope naming another service or a signature that is not one, and `InvalidClientTokenId` for an
access key outside `MOCKHUB_CREDENTIALS` when that is set. `AuthError` carries both wordings of
each: the Query API's error code (SES v1, SNS) and the JSON APIs' `...Exception` (SES v2).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

__all__ = ["AuthError", "SigV4", "check", "scope_service"]

ALGORITHM = "AWS4-HMAC-SHA256"
_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")
_AMZ_DATE = re.compile(r"^\d{8}T\d{6}Z$")
_DAY = re.compile(r"^\d{8}$")
_REGION = re.compile(r"^[a-z0-9-]+$")
# The service of a credential scope, read leniently for routing (the parser checks the rest).
_SCOPE = re.compile(r"Credential=\s*[^/,\s]*/[^/,\s]*/[^/,\s]*/([A-Za-z0-9-]+)")
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)
_INVALID_TOKEN = "The security token included in the request is invalid."


class AuthError(Exception):
    """A request AWS would refuse before looking at it, in both the Query and the JSON wording."""

    def __init__(
        self,
        query_code: str,
        query_status: int,
        json_code: str,
        json_status: int,
        message: str,
        json_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.query_code = query_code
        self.query_status = query_status
        self.json_code = json_code
        self.json_status = json_status
        self.message = message
        self.json_message = json_message or message


def _missing() -> AuthError:
    return AuthError(
        "MissingAuthenticationToken",
        403,
        "MissingAuthenticationTokenException",
        403,
        "Request is missing Authentication Token",
        "Missing Authentication Token",
    )


def _incomplete(message: str) -> AuthError:
    # AWS's common errors: IncompleteSignature is a 400 on the Query APIs; the REST-JSON front ends answer 403.
    return AuthError("IncompleteSignature", 400, "IncompleteSignatureException", 403, message)


def _mismatch(message: str = _MISMATCH) -> AuthError:
    return AuthError("SignatureDoesNotMatch", 403, "InvalidSignatureException", 403, message)


@dataclass(frozen=True, slots=True)
class SigV4:
    """What a well-formed signature says: who signed, for which region and service."""

    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]


def scope_service(scope: Mapping[str, Any]) -> str | None:
    """The service named by a request's SigV4 credential scope (header or presigned query), for routing."""
    for key, value in scope.get("headers", ()):
        if key == b"authorization":
            found = _SCOPE.search(bytes(value).decode("latin-1"))
            return found.group(1).lower() if found else None
    query = scope.get("query_string", b"")
    if b"X-Amz-Credential" in query:
        credential = parse_qs(query.decode("latin-1")).get("X-Amz-Credential", [""])[0]
        parts = credential.split("/")
        return parts[3].lower() if len(parts) >= 4 else None
    return None


def check(
    headers: Mapping[str, str],
    query: Mapping[str, list[str]],
    services: Collection[str],
    pinned: Collection[str] | None,
) -> SigV4:
    """The request's signature, read; raises AuthError as AWS answers a missing or garbled one.

    `services` are the signing names the fake answers for (the first is named in errors); `pinned`
    the access keys accepted (any when None). The signature itself is not verified.
    """
    header = (headers.get("authorization") or "").strip()
    if not header:
        if "X-Amz-Credential" in query or "X-Amz-Signature" in query:
            return _presigned(query, services, pinned)
        raise _missing()
    algorithm, _, rest = header.partition(" ")
    if algorithm.startswith("AWS4-") and algorithm != ALGORITHM:
        raise _incomplete(f"Unsupported AWS 'algorithm': '{algorithm}'")
    params: dict[str, str] = {}
    if algorithm == ALGORITHM:
        for pair in (p.strip() for p in rest.split(",")):
            if not pair:
                continue
            key, eq, value = pair.partition("=")
            if not eq:
                raise _incomplete(
                    f"'{pair}' not a valid key=value pair (missing equal-sign) in Authorization header: '{header}'."
                )
            params[key.strip()] = value.strip()
    problems = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not params.get(name)
    ]
    amz_date = headers.get("x-amz-date")
    if not amz_date and not headers.get("date"):
        problems.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if problems:
        raise _incomplete(f"{' '.join(problems)} Authorization={header}")
    if amz_date and not _AMZ_DATE.match(amz_date):
        raise _incomplete(
            f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See http://en.wikipedia.org/wiki/ISO_8601"
        )
    signed = tuple(h.strip().lower() for h in params["SignedHeaders"].split(";"))
    if "host" not in signed:
        raise _incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    sig = _scope(params["Credential"], services, pinned, amz_date, signed)
    if not _SIGNATURE.match(params["Signature"]):
        raise _mismatch()
    return sig


def _scope(
    credential: str,
    services: Collection[str],
    pinned: Collection[str] | None,
    amz_date: str | None,
    signed: tuple[str, ...],
) -> SigV4:
    parts = credential.split("/")
    if len(parts) != 5 or not parts[0]:
        raise _incomplete(
            f"Credential '{credential}' is not of the form <access key>/<date>/<region>/<service>/aws4_request."
        )
    access_key, day, region, service, terminator = parts
    if terminator != "aws4_request":
        raise _mismatch(f"Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'.")
    if not _DAY.match(day):
        raise _incomplete("Invalid credential date. Date is not the required format: yyyyMMdd.")
    if amz_date and not amz_date.startswith(day):
        raise _mismatch(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{day}' != '{amz_date[:8]}', from '{amz_date}'."
        )
    if not _REGION.match(region):
        raise _mismatch("Credential should be scoped to a valid region. ")
    if service not in services:
        raise _mismatch(f"Credential should be scoped to correct service: '{next(iter(services))}'. ")
    if pinned is not None and access_key not in pinned:
        raise AuthError("InvalidClientTokenId", 403, "UnrecognizedClientException", 403, _INVALID_TOKEN)
    return SigV4(access_key, day, region, service, signed)


def _presigned(query: Mapping[str, list[str]], services: Collection[str], pinned: Collection[str] | None) -> SigV4:
    """A signature in the query string (a presigned URL): the same checks on its X-Amz-* parameters."""

    def one(name: str) -> str:
        return (query.get(name) or [""])[0]

    if one("X-Amz-Algorithm") != ALGORITHM:
        raise _incomplete(f"Unsupported AWS 'algorithm': '{one('X-Amz-Algorithm')}'")
    missing = [name for name in ("X-Amz-Credential", "X-Amz-Signature", "X-Amz-SignedHeaders") if not one(name)]
    if missing:
        raise _incomplete(" ".join(f"AWS query-string parameters must include '{n}'." for n in missing))
    signed = tuple(h.strip().lower() for h in one("X-Amz-SignedHeaders").split(";"))
    sig = _scope(one("X-Amz-Credential"), services, pinned, one("X-Amz-Date") or None, signed)
    if not _SIGNATURE.match(one("X-Amz-Signature")):
        raise _mismatch()
    return sig
