"""Client-side TLS: the credentials a CLI user, an agent or a test presents to the controllers.

A controller's certificate carries the name ``CONTROLLER_NAME``; clients verify it by that
name (gRPC's target name override) against the cluster CA, whatever address they dial.
`cryptography` (moorage.pki) loads only when a certificate is read, not for every `moor` command.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import grpc

    from moorage import pki
    from moorage.v1 import identity_pb2

# Every controller certificate carries this DNS name; clients verify controllers by it (with
# gRPC's target name override), so a controller reached at any address or through any proxy
# is still checked, as swarmkit checks managers by "swarm-manager".
CONTROLLER_NAME = "moorage-controller"
NAME_OVERRIDE = ("grpc.ssl_target_name_override", CONTROLLER_NAME)


@dataclass(frozen=True)
class ClientTLS:
    """The cluster CA to trust, and the holder's certificate and key (PEM); no certificate: a joiner."""

    ca: bytes
    cert: bytes | None = None
    key: bytes | None = None

    @classmethod
    def from_files(cls, ca: Path, cert: Path | None = None, key: Path | None = None) -> ClientTLS:
        return cls(ca.read_bytes(), cert.read_bytes() if cert else None, key.read_bytes() if key else None)

    def credentials(self) -> grpc.ChannelCredentials:
        import grpc

        return grpc.ssl_channel_credentials(root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert)

    def identity(self) -> pki.Identity | None:
        from moorage import pki

        return pki.identity(self.cert) if self.cert else None


def join_address(address: str) -> str:
    """A controller's join port beside its API address: the same host, the next port
    (see controller/tls.py for why joins have a port of their own)."""
    host, _, port = address.rpartition(":")
    return f"{host}:{int(port) + 1}"


def channel_options(options: list[tuple[str, Any]] | None = None) -> list[tuple[str, Any]]:
    return [*(options or []), NAME_OVERRIDE]


def secure_channel(address: str, tls: ClientTLS, options: list[tuple[str, Any]] | None = None) -> grpc.Channel:
    import grpc

    return grpc.secure_channel(address, tls.credentials(), options=channel_options(options))


def aio_channel(address: str, tls: ClientTLS | None, options: list[tuple[str, Any]] | None = None) -> grpc.aio.Channel:
    """An asyncio channel to ``address``: TLS with ``tls``, plaintext when None (an --insecure cluster)."""
    import grpc

    if tls is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, tls.credentials(), options=channel_options(options))


def fetch_ca(address: str, ca_digest: str, timeout: float = 5.0) -> bytes:
    """The cluster CA certificate a controller presents, checked against a join token's digest.

    Nothing is trusted yet, so the TLS handshake verifies nothing; the chain the controller sends
    ends with the CA, which is accepted only if its sha256 is the token's. Anyone in the path can
    answer, nobody can answer with another CA.
    """
    from moorage import pki

    host, _, port = address.rpartition(":")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=CONTROLLER_NAME) as tls:
            # Public from Python 3.13; the same method of the underlying object before.
            chain_of = getattr(tls, "get_unverified_chain", None) or tls._sslobj.get_unverified_chain  # type: ignore[attr-defined]
            chain = chain_of() or []
    for cert in reversed(chain):
        pem = cert if isinstance(cert, bytes) else cert.public_bytes(ssl._ssl.ENCODING_PEM).encode()  # type: ignore[attr-defined]
        if pki.ca_digest(pem) == ca_digest:
            return pem
    raise pki.PKIError(f"controller {address} does not present the CA this join token pins")


async def join(controller: str, token: str, key: bytes, name: str) -> identity_pb2.JoinResponse:
    """Trade a join token and a request for ``key`` for a certificate of ``name`` (Identity.Join on
    the controller's join port, verified with the CA the token pins)."""
    import asyncio

    from moorage import pki
    from moorage.v1 import identity_pb2, identity_pb2_grpc

    digest = pki.parse_token(token).ca_digest
    joining = join_address(controller)
    ca = await asyncio.to_thread(fetch_ca, joining, digest)
    request = identity_pb2.JoinRequest(token=token, csr=pki.make_csr(key, name), name=name)
    async with aio_channel(joining, ClientTLS(ca)) as channel:
        response: identity_pb2.JoinResponse = await identity_pb2_grpc.IdentityStub(channel).Join(request, timeout=10)
    if response.name != name or pki.ca_digest(response.ca_certificate) != digest:
        raise pki.PKIError("the controller answered with a certificate for another name or cluster")
    return response
