"""The node's identity: its key, its certificate from the cluster CA, joining and renewal.

Kept in ``<state dir>/identity/`` (0700): ``node.key`` (0600, made once and kept, so a node
whose certificate expired while it was offline rejoins under its id with a fresh token),
``node.crt`` and ``ca.crt``.

Joining: the CA a controller presents is accepted only if its digest is the join token's; then,
over TLS verified with that CA, the token and a certificate request go to Identity.Join. A
certificate is renewed at a random 50-80 % of its life over the live session's controller,
without ending the session: the next connection uses the new one.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from pathlib import Path

import grpc
import structlog

from moorage import pki, tlsconfig
from moorage.fsutil import atomic_write
from moorage.tlsconfig import ClientTLS
from moorage.v1 import identity_pb2, identity_pb2_grpc

log = structlog.get_logger("moorage.agent.identity")

RETRY = 2.0


class JoinError(Exception):
    """The node could not join: no valid certificate and no usable token (the message says why)."""


class NodeIdentity:
    def __init__(self, state_dir: Path, node_id: str) -> None:
        self.dir = state_dir / "identity"
        self.node_id = node_id
        self.tls: ClientTLS | None = None

    @property
    def _key_path(self) -> Path:
        return self.dir / "node.key"

    def _key(self) -> bytes:
        """The node's key, made on first use and kept across certificates."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        if not self._key_path.exists():
            atomic_write(self._key_path, pki.new_key(), mode=0o600)
        return self._key_path.read_bytes()

    def load(self) -> ClientTLS | None:
        """The stored credentials if the certificate is this node's and still valid."""
        cert_path, ca_path = self.dir / "node.crt", self.dir / "ca.crt"
        if not (cert_path.exists() and ca_path.exists() and self._key_path.exists()):
            return None
        cert, ca = cert_path.read_bytes(), ca_path.read_bytes()
        try:
            who = pki.verify(cert, ca)
        except pki.PKIError as e:
            log.warning("stored certificate not usable", reason=str(e))
            return None
        if who.name != self.node_id:
            log.warning("stored certificate is another node's", certificate=who.name, node=self.node_id)
            return None
        self.tls = ClientTLS(ca, cert, self._key_path.read_bytes())
        return self.tls

    def _save(self, response: identity_pb2.JoinResponse) -> ClientTLS:
        atomic_write(self.dir / "ca.crt", response.ca_certificate, mode=0o644)
        atomic_write(self.dir / "node.crt", response.certificate, mode=0o644)
        self.tls = ClientTLS(response.ca_certificate, response.certificate, self._key())
        return self.tls

    async def ensure(self, controllers: Sequence[str], token: str | None) -> ClientTLS:
        """Valid credentials: the stored ones, else joined with ``token`` (retrying while no
        controller answers; a refusal is final)."""
        if (tls := self.load()) is not None:
            return tls
        if not token:
            raise JoinError(
                f"node {self.node_id!r} has no valid certificate in {self.dir}: start the agent with "
                "--join-token (moor cluster join-token worker prints one)"
            )
        try:
            pki.parse_token(token)
        except pki.PKIError as e:
            raise JoinError(str(e)) from None
        attempt = 0
        while True:
            controller = controllers[attempt % len(controllers)]
            attempt += 1
            try:
                return await self._join(controller, token)
            except pki.PKIError as e:
                raise JoinError(f"join with {controller}: {e}") from None
            except (OSError, grpc.aio.AioRpcError) as e:
                if isinstance(e, grpc.aio.AioRpcError) and e.code() in (
                    grpc.StatusCode.PERMISSION_DENIED,
                    grpc.StatusCode.INVALID_ARGUMENT,
                ):
                    raise JoinError(f"join refused by {controller}: {e.details()}") from None
                log.warning("join failed, retrying", controller=controller, reason=str(e)[:200])
                await asyncio.sleep(RETRY)

    async def _join(self, controller: str, token: str) -> ClientTLS:
        response = await tlsconfig.join(controller, token, self._key(), self.node_id)
        log.info("joined the cluster", cluster=response.cluster_id, until=f"{pki.identity(response.certificate).not_after:%Y-%m-%dT%H:%M}Z")
        return self._save(response)

    def renewal_delay(self) -> float:
        """Seconds until this certificate is due for renewal (a random 50-80 % of its life)."""
        assert self.tls is not None and self.tls.cert is not None
        due = pki.renewal_time(self.tls.cert, random.uniform(0.5, 0.8))
        return max(0.0, (due - pki.now()).total_seconds())

    async def renew(self, channel: grpc.aio.Channel) -> None:
        """Trade the current certificate for a new one over ``channel`` (the session's)."""
        request = identity_pb2.RenewRequest(csr=pki.make_csr(self._key(), self.node_id))
        response = await identity_pb2_grpc.IdentityStub(channel).Renew(request, timeout=10)
        if response.name != self.node_id:
            raise JoinError("the controller renewed a certificate for another node")
        self._save(response)
        log.info("certificate renewed", until=f"{pki.identity(response.certificate).not_after:%Y-%m-%dT%H:%M}Z")

    async def renew_forever(self, channel: grpc.aio.Channel) -> None:
        """While a session lasts: renew when due, retrying a failure every few seconds."""
        delay = self.renewal_delay()
        while True:
            await asyncio.sleep(delay)
            try:
                await self.renew(channel)
                delay = self.renewal_delay()
            except (grpc.aio.AioRpcError, JoinError, pki.PKIError) as e:
                log.warning("certificate renewal failed, retrying", reason=str(e)[:200])
                delay = RETRY
