"""The cluster's public-key infrastructure: its CA, the certificates it issues, join tokens.

Swarmkit's model. One cluster CA (ECDSA P-256) signs every certificate; a certificate names
who holds it in its subject:

    CN = the holder's name (a node id, a controller id, a user name)
    OU = its role: admin, readonly, worker (agents) or controller
    O  = the cluster id

A join token ``MOOR1-<sha256 of the CA certificate, hex>-<secret>`` pins the CA (a joining agent
checks the certificate the controller presents against the digest before it sends anything) and
carries a secret the controller compares with the hash it keeps per role. Only this module
touches `cryptography`; callers pass PEM bytes around.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from moorage.tlsconfig import CONTROLLER_NAME

ADMIN = "admin"
READONLY = "readonly"
WORKER = "worker"
CONTROLLER = "controller"
ROLES = (ADMIN, READONLY, WORKER, CONTROLLER)
USER_ROLES = (ADMIN, READONLY)
TOKEN_ROLES = (WORKER, ADMIN)


CA_LIFETIME = dt.timedelta(days=3650)
NODE_CERT_LIFETIME = dt.timedelta(days=7)
USER_CERT_LIFETIME = dt.timedelta(days=365)
BACKDATE = dt.timedelta(minutes=5)  # tolerate clocks a little behind the CA's

MAX_PEM = 16 * 1024
MAX_NAME = 128
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_TOKEN = re.compile(r"MOOR1-([0-9a-f]{64})-([a-z2-7]{26,64})")


class PKIError(ValueError):
    """A certificate, request or token that cannot be used; the message says why."""


@dataclass(frozen=True)
class Identity:
    """Who a certificate names."""

    name: str
    role: str
    cluster_id: str
    serial: int
    not_after: dt.datetime

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")


@dataclass(frozen=True)
class Token:
    ca_digest: str
    secret: str


# --- keys, requests, certificates -------------------------------------------------------------


def new_key() -> bytes:
    """A fresh ECDSA P-256 private key, PEM (PKCS#8, unencrypted: callers keep it 0600)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PKIError("the key is not an ECDSA key")
    return key


def check_name(name: str, what: str = "name") -> str:
    if not (0 < len(name) <= MAX_NAME and _NAME.fullmatch(name)):
        raise PKIError(f"{what} {name[:MAX_NAME]!r} must be 1-{MAX_NAME} letters, digits, '.', '_' or '-'")
    return name


def make_csr(key_pem: bytes, name: str) -> bytes:
    """A certificate signing request for ``name`` (the CA decides the role and cluster, not the request)."""
    request = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, check_name(name))])
    )
    return request.sign(_load_key(key_pem), hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def new_ca(cluster_id: str, at: dt.datetime | None = None) -> tuple[bytes, bytes]:
    """A self-signed cluster CA: (certificate PEM, key PEM)."""
    at = at or now()
    key_pem = new_key()
    key = _load_key(key_pem)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "moorage cluster CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, check_name(cluster_id, "cluster id")),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(at - BACKDATE)
        .not_valid_after(at + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def issue(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    csr_pem: bytes,
    *,
    name: str,
    role: str,
    lifetime: dt.timedelta,
    server_names: tuple[str, ...] = (),
    at: dt.datetime | None = None,
) -> bytes:
    """Sign ``csr_pem`` as ``name`` in ``role``; the request's own subject is ignored.

    The request must be signed by the key it carries (proof of possession). Controller
    certificates are also server certificates: they carry ``CONTROLLER_NAME`` and
    ``server_names`` (host names or IP addresses) as subject alternative names.
    """
    if role not in ROLES:
        raise PKIError(f"unknown role {role[:32]!r}")
    csr = load_csr(csr_pem)
    ca_cert = load_cert(ca_cert_pem)
    ca_key = _load_key(ca_key_pem)
    at = at or now()
    not_after = min(at + lifetime, ca_cert.not_valid_after_utc)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, check_name(name)),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_of(ca_cert)),
        ]
    )
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(at - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if role == CONTROLLER:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        builder = builder.add_extension(x509.SubjectAlternativeName(_alt_names(server_names)), critical=False)
    builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _alt_names(server_names: tuple[str, ...]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(CONTROLLER_NAME)]
    for item in dict.fromkeys(server_names):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(item)))
        except ValueError:
            names.append(x509.DNSName(item))
    return names


def load_csr(pem: bytes) -> x509.CertificateSigningRequest:
    if len(pem) > MAX_PEM:
        raise PKIError(f"the certificate request is larger than {MAX_PEM} bytes")
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError as e:
        raise PKIError(f"not a PEM certificate request: {e}") from None
    if not csr.is_signature_valid:
        raise PKIError("the certificate request's signature does not match its key")
    if not isinstance(csr.public_key(), ec.EllipticCurvePublicKey):
        raise PKIError("the certificate request must carry an ECDSA key")
    return csr


def load_cert(pem: bytes) -> x509.Certificate:
    if len(pem) > MAX_PEM:
        raise PKIError(f"the certificate is larger than {MAX_PEM} bytes")
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as e:
        raise PKIError(f"not a PEM certificate: {e}") from None


def cluster_of(ca_cert: x509.Certificate) -> str:
    values = ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    if not values:
        raise PKIError("the CA certificate names no cluster")
    return str(values[0].value)


@lru_cache(maxsize=4096)
def identity(cert_pem: bytes) -> Identity:
    """Who ``cert_pem`` names (cached: the server asks on every call)."""
    cert = load_cert(cert_pem)

    def one(oid: x509.ObjectIdentifier) -> str:
        values = cert.subject.get_attributes_for_oid(oid)
        if len(values) != 1:
            raise PKIError("the certificate's subject must name exactly one CN, OU and O")
        return str(values[0].value)

    return Identity(
        name=one(NameOID.COMMON_NAME),
        role=one(NameOID.ORGANIZATIONAL_UNIT_NAME),
        cluster_id=one(NameOID.ORGANIZATION_NAME),
        serial=cert.serial_number,
        not_after=cert.not_valid_after_utc,
    )


def verify(cert_pem: bytes, ca_cert_pem: bytes, at: dt.datetime | None = None) -> Identity:
    """``cert_pem``'s identity once it is checked as issued by this CA and valid now."""
    cert, ca = load_cert(cert_pem), load_cert(ca_cert_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise PKIError("the certificate was not issued by this cluster's CA") from None
    at = at or now()
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise PKIError(f"the certificate is not valid now (valid until {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)")
    return identity(cert_pem)


def public_key_digest(pem: bytes) -> str:
    """sha256 of the public key in a certificate or request (PEM), hex: a node keeps its key across rejoins."""
    obj: x509.Certificate | x509.CertificateSigningRequest
    obj = load_csr(pem) if b"CERTIFICATE REQUEST" in pem else load_cert(pem)
    der = obj.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def ca_digest(ca_cert_pem: bytes) -> str:
    """sha256 of the CA certificate's DER form, hex: what a join token pins."""
    return hashlib.sha256(load_cert(ca_cert_pem).public_bytes(serialization.Encoding.DER)).hexdigest()


def renewal_time(cert_pem: bytes, fraction: float) -> dt.datetime:
    """When to renew a certificate: at ``fraction`` (0.5-0.8, chosen at random by the holder) of its life."""
    cert = load_cert(cert_pem)
    return cert.not_valid_before_utc + (cert.not_valid_after_utc - cert.not_valid_before_utc) * fraction


# --- join tokens --------------------------------------------------------------------------------


def new_secret() -> str:
    """A token secret: 160 random bits, base32 without padding (lowercase: easy to paste)."""
    import base64

    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=").lower()


def format_token(ca_cert_pem: bytes, secret: str) -> str:
    return f"MOOR1-{ca_digest(ca_cert_pem)}-{secret}"


def parse_token(text: str) -> Token:
    match = _TOKEN.fullmatch(text.strip())
    if match is None:
        raise PKIError("not a Moorage join token (MOOR1-<CA digest>-<secret>)")
    return Token(ca_digest=match.group(1), secret=match.group(2))


def secrets_equal(given: str, stored: str) -> bool:
    """Compare token secrets in constant time."""
    return hmac.compare_digest(given.encode(), stored.encode())


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
