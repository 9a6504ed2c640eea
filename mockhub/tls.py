"""mockhub's certificate authority: one throwaway CA, and server certificates it signs on demand.

The SMTP listeners (STARTTLS, SMTPS), the HTTPS listener and the proxy's CONNECT tunnels all
present certificates signed by the same CA, so a client trusts one PEM (`GET /tls/ca.pem`).
Certificates for host names (`api.twilio.com`) are minted the first time a client asks for that
name (SNI) and cached: start-up creates only the CA, and only when something needs it.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import tempfile
import threading
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.responses import Response

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
    from cryptography.x509 import Certificate, Name
    from fastapi import APIRouter

__all__ = ["Authority", "local_names", "server_context", "tls_router"]

# Host certificates kept (each an SSLContext of a few KB); a client asking for more names re-mints.
_MAX_CONTEXTS = 1024


def local_names(hostname: str, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The names a certificate for mockhub itself covers: `hostname`, localhost, this machine, loopback."""
    names: list[str] = []
    for host in (hostname, "localhost", socket.gethostname(), "127.0.0.1", "::1", *extra):
        if host and host not in names and host not in ("0.0.0.0", "::"):
            names.append(host)
    return tuple(names)


def server_context(chain_pem: bytes, key_pem: bytes, alpn: tuple[str, ...] = ("http/1.1",)) -> ssl.SSLContext:
    """A server-side TLS context presenting `chain_pem`, offering `alpn` (HTTP/1.1 by default)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # HTTP/2 is not spoken: a client offering h2 and http/1.1 gets http/1.1 (docs/interception.md).
    if alpn:
        context.set_alpn_protocols(list(alpn))
    # load_cert_chain only reads files; the key lives on disk only for this moment.
    with tempfile.TemporaryDirectory(prefix="mockhub-tls-") as tmp:
        cert_path, key_path = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert_path.write_bytes(chain_pem)
        key_path.touch(mode=0o600)
        key_path.write_bytes(key_pem)
        context.load_cert_chain(cert_path, key_path)
    return context


class Authority:
    """A CA made when first needed, the certificates it signs, and TLS contexts that present them.

    `context_for(host)` is the context for one host name (minted once, then cached); every context
    it hands out switches to the right one for the name a client sends in SNI.
    """

    def __init__(self, default_names: tuple[str, ...] = ()) -> None:
        self.default_names = default_names or local_names("localhost")
        self._lock = threading.Lock()
        self._key: EllipticCurvePrivateKey | None = None
        self._cert: Certificate | None = None
        self._name: Name | None = None
        self._pem = b""
        self._contexts: OrderedDict[str, ssl.SSLContext] = OrderedDict()
        self._default: ssl.SSLContext | None = None
        # PEMs clients should trust beside the CA (an SMTP certificate given by path).
        self.extra_trust: list[bytes] = []

    # -- the CA ------------------------------------------------------------------------------------------
    def _ensure(self) -> None:
        if self._key is not None:
            return
        with self._lock:
            if self._key is not None:
                return
            from cryptography import x509
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import ec
            from cryptography.x509.oid import NameOID

            # EC keys: generated in about a millisecond, where RSA would cost a good part of start-up.
            now = datetime.now(UTC)
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mockhub test CA")])
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=True,
                        crl_sign=True,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256())
            )
            self._pem = cert.public_bytes(serialization.Encoding.PEM)
            self._cert, self._name = cert, name
            self._key = key

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate (PEM): what a client trusts."""
        self._ensure()
        return self._pem

    def trust_pem(self) -> bytes:
        """What `GET /tls/ca.pem` serves: the CA, then any certificate given by path (SMTP's)."""
        return b"".join([self.ca_pem, *self.extra_trust])

    def bundle_pem(self) -> bytes:
        """The `certifi` roots with the CA appended (`SSL_CERT_FILE` / `REQUESTS_CA_BUNDLE` replace the roots)."""
        import certifi

        roots = Path(certifi.where()).read_bytes()
        return roots.rstrip(b"\n") + b"\n\n# mockhub test CA\n" + self.trust_pem()

    # -- certificates ------------------------------------------------------------------------------------
    def mint(self, names: tuple[str, ...]) -> tuple[bytes, bytes]:
        """A server certificate for `names` (DNS names or IP addresses), signed by the CA: (chain PEM, key PEM)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        self._ensure()
        assert self._key is not None and self._name is not None
        alt: list[x509.GeneralName] = []
        for host in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                alt.append(x509.DNSName(host))
        now = datetime.now(UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            # Under 398 days: clients that cap a server certificate's lifetime (Apple's) still accept it.
            .not_valid_after(now + timedelta(days=397))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        chain = cert.public_bytes(serialization.Encoding.PEM) + self._pem
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return chain, key_pem

    def server_context(self, names: tuple[str, ...]) -> ssl.SSLContext:
        """A TLS context presenting a fresh certificate for `names` (no SNI switching: SMTP's)."""
        return server_context(*self.mint(names))

    def default_context(self) -> ssl.SSLContext:
        """The context for a client that names no host (or an IP address): mockhub's own names."""
        if self._default is None:
            context = self.server_context(self.default_names)
            context.sni_callback = self._sni
            self._default = context
        return self._default

    def context_for(self, host: str | None) -> ssl.SSLContext:
        """The context presenting a certificate for `host` (minted on first use, then cached)."""
        if not host:
            return self.default_context()
        host = host.lower().rstrip(".")
        context = self._contexts.get(host)
        if context is not None:
            self._contexts.move_to_end(host)
            return context
        if not _valid_name(host):
            return self.default_context()
        context = self.server_context((host,))
        context.sni_callback = self._sni
        self._contexts[host] = context
        if len(self._contexts) > _MAX_CONTEXTS:
            self._contexts.popitem(last=False)
        return context

    def _sni(self, sslobj: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        """SNI: present the certificate for the name the client asked for."""
        if server_name:
            try:
                sslobj.context = self.context_for(server_name)
            except Exception:  # a certificate that cannot be made: the handshake goes on with the default one
                return None
        return None


def _valid_name(host: str) -> bool:
    """A name a certificate can carry: an IP address, or DNS labels (a client's SNI is not trusted input)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    if len(host) > 253:
        return False
    labels = host.split(".")
    return all(0 < len(label) <= 63 and all(c.isalnum() or c in "-_" for c in label) for label in labels)


def tls_router(authority: Authority) -> APIRouter:
    """`GET /tls/ca.pem` and `GET /tls/bundle.pem`, for the inspection API (FastAPI is imported with it)."""
    from fastapi import APIRouter

    router = APIRouter(tags=["tls"])

    @router.get("/tls/ca.pem", response_class=Response)
    async def ca_pem() -> Response:
        """mockhub's CA (PEM): it signs the SMTP, HTTPS and proxy certificates (then any SMTP certificate given)."""
        return Response(authority.trust_pem(), media_type="application/x-pem-file")

    @router.get("/tls/bundle.pem", response_class=Response)
    async def bundle_pem() -> Response:
        """The `certifi` roots with mockhub's CA appended: for `SSL_CERT_FILE` / `REQUESTS_CA_BUNDLE`."""
        return Response(authority.bundle_pem(), media_type="application/x-pem-file")

    return router
