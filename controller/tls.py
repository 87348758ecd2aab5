"""The controller's TLS server: its own certificate, renewed while it serves.

gRPC's Python API can require and verify client certificates or not ask for them at all, not
"verify one if given". So a controller has two kinds of port: its API ports require a client
certificate of the cluster CA; its join ports (by default the API port + 1) ask for none, and
controller/authz.py refuses every call but Identity.Join on them (a joiner has no certificate yet).
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Sequence

import grpc
import structlog

from controller.identity import Authority
from moorage import pki

log = structlog.get_logger("controller.tls")


def server_names(listen: Sequence[str]) -> list[str]:
    """The names and addresses a controller's certificate lists besides CONTROLLER_NAME."""
    names = [socket.gethostname(), "localhost", "127.0.0.1"]
    for address in listen:
        host = address.rpartition(":")[0].strip("[]")
        if host and host not in ("0.0.0.0", "::"):
            names.append(host)
    return names


class ServerCertificate:
    """This controller's certificate, issued by the cluster CA at start and renewed at a random
    50-80 % of its life; gRPC asks ``fetch`` before each new handshake, so a renewal takes effect
    for new connections without touching the open ones."""

    def __init__(self, authority: Authority, controller_id: str, names: Sequence[str]) -> None:
        self._authority = authority
        self._id = controller_id
        self._names = list(names)
        self._key, self._chain = authority.controller_credentials(controller_id, self._names)

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(self._key, self._chain)], root_certificates=self._authority.ca_cert
        )

    def credentials(self, *, client_certificates: bool) -> grpc.ServerCredentials:
        """For an API port (``client_certificates``: required and verified) or a join port (none asked)."""
        sent = [self._chain]

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            if sent[0] is self._chain:
                return None
            sent[0] = self._chain
            return self._configuration()

        return grpc.dynamic_ssl_server_credentials(
            self._configuration(), fetch, require_client_authentication=client_certificates
        )

    @property
    def certificate(self) -> bytes:
        return self._chain

    async def renew_forever(self) -> None:
        while True:
            due = pki.renewal_time(self._chain, random.uniform(0.5, 0.8))
            await asyncio.sleep(max(1.0, (due - pki.now()).total_seconds()))
            self._key, self._chain = self._authority.controller_credentials(self._id, self._names)
            log.info("controller certificate renewed", until=f"{pki.identity(self._chain).not_after:%Y-%m-%dT%H:%M}Z")
