"""TLS for the SMTP listeners: a certificate signed by mockhub's CA, or the one given by path."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from mockhub.tls import Authority, local_names, server_context

__all__ = ["TlsMaterial"]


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """The SMTP listeners' TLS context, and the PEM a client should trust for it."""

    context: ssl.SSLContext
    ca_pem: bytes

    @classmethod
    def load(cls, cert: Path, key: Path) -> TlsMaterial:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        return cls(context, cert.read_bytes())

    @classmethod
    def generate(cls, authority: Authority, hostname: str, extra_hosts: tuple[str, ...] = ()) -> TlsMaterial:
        """A certificate for `hostname`, localhost and loopback, signed by mockhub's CA (`GET /tls/ca.pem`)."""
        chain, key = authority.mint(local_names(hostname, extra_hosts))
        return cls(server_context(chain, key, alpn=()), authority.ca_pem)
